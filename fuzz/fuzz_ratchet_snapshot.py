"""Atheris target ``ratchet_snapshot``: ``l2session.crypto.ratchet_state.decode_snapshot``
and ``l2session.crypto.replay.ReplayWindow.read``.

Run: ``python fuzz/fuzz_ratchet_snapshot.py fuzz/corpus/ratchet_snapshot``
(fuzz/README.md).  The target is ``ratchet_snapshot`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "ratchet_snapshot"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
