"""Atheris target ``envelope``: ``l2session.core.link.envelope.unwrap``.

Run: ``python fuzz/fuzz_envelope.py fuzz/corpus/envelope``
(fuzz/README.md).  The target is ``envelope`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "envelope"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
