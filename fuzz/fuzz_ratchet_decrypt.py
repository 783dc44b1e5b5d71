"""Atheris target ``ratchet_decrypt``: ``l2session.crypto.ratchet.DoubleRatchet.decrypt``.

Run: ``python fuzz/fuzz_ratchet_decrypt.py fuzz/corpus/ratchet_decrypt``
(fuzz/README.md).  The target is ``ratchet_decrypt`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "ratchet_decrypt"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
