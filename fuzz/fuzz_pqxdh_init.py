"""Atheris target ``pqxdh_init``:
``l2session.crypto.pqxdh.ResponderHandshake.receive_init``.

Run: ``python fuzz/fuzz_pqxdh_init.py fuzz/corpus/pqxdh_init``
(fuzz/README.md).  The target is ``pqxdh_init`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "pqxdh_init"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
