"""Atheris target ``wire_records``: ``l2session.wire.records.decode_records``.

Run: ``python fuzz/fuzz_wire_records.py fuzz/corpus/wire_records``
(fuzz/README.md).  The target is ``wire_records`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "wire_records"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
