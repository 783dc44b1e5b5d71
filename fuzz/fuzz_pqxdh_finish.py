"""Atheris target ``pqxdh_finish``:
``l2session.crypto.pqxdh.ResponderHandshake.receive_finish``.

Run: ``python fuzz/fuzz_pqxdh_finish.py fuzz/corpus/pqxdh_finish``
(fuzz/README.md).  The target is ``pqxdh_finish`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "pqxdh_finish"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
