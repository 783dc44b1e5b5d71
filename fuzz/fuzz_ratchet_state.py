"""Atheris target ``ratchet_state``: ``l2session.crypto.ratchet.DoubleRatchet.from_bytes``.

Run: ``python fuzz/fuzz_ratchet_state.py fuzz/corpus/ratchet_state``
(fuzz/README.md).  The target is ``ratchet_state`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "ratchet_state"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
