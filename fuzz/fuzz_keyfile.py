"""Atheris target ``keyfile``: ``l2session.identity.keyfile.decode_identity``.

Run: ``python fuzz/fuzz_keyfile.py fuzz/corpus/keyfile``
(fuzz/README.md).  The target is ``keyfile`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "keyfile"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
