"""Atheris target ``peer``: ``l2session.runtime.directory.parse_peer``.

Run: ``python fuzz/fuzz_peer.py fuzz/corpus/peer``
(fuzz/README.md).  The target is ``peer`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "peer"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
