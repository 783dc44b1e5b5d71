"""Atheris target ``pqxdh_response``:
``l2session.crypto.pqxdh.InitiatorHandshake.receive_response``.

Run: ``python fuzz/fuzz_pqxdh_response.py fuzz/corpus/pqxdh_response``
(fuzz/README.md).  The target is ``pqxdh_response`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "pqxdh_response"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
