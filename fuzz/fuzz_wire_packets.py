"""Atheris target ``wire_packets``: ``l2session.wire.packets.decode_packet``.

Run: ``python fuzz/fuzz_wire_packets.py fuzz/corpus/wire_packets``
(fuzz/README.md).  The target is ``wire_packets`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "wire_packets"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
