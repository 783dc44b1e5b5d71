"""Atheris target ``base58``: ``l2session.identity.base58.decode``.

Run: ``python fuzz/fuzz_base58.py fuzz/corpus/base58``
(fuzz/README.md).  The target is ``base58`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "base58"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
