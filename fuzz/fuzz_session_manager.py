"""Atheris target ``session_manager``:
``l2session.core.management.manager.SessionManager.receive_datagram``.

Run: ``python fuzz/fuzz_session_manager.py fuzz/corpus/session_manager``
(fuzz/README.md).  The target is ``session_manager`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "session_manager"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
