"""Atheris target ``stored_session``:
``l2session.core.lifecycle.resumption.StoredSession.from_bytes``.

Run: ``python fuzz/fuzz_stored_session.py fuzz/corpus/stored_session``
(fuzz/README.md).  The target is ``stored_session`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "stored_session"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
