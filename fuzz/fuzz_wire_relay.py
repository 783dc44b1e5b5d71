"""Atheris target ``wire_relay``:
``l2session.wire.relay.decode_relay``.

Run: ``python fuzz/fuzz_wire_relay.py fuzz/corpus/wire_relay``
(fuzz/README.md).  The target is ``wire_relay`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "wire_relay"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
