"""Atheris target ``address``: ``l2session.transports.address.parse_address``.

Run: ``python fuzz/fuzz_address.py fuzz/corpus/address``
(fuzz/README.md).  The target is ``address`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "address"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
