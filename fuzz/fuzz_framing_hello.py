"""Atheris target ``framing_hello``: ``l2session.transports.framing.decode_hello``.

Run: ``python fuzz/fuzz_framing_hello.py fuzz/corpus/framing_hello``
(fuzz/README.md).  The target is ``framing_hello`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "framing_hello"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
