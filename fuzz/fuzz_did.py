"""Atheris target ``did``: ``l2session.identity.did.Did.parse``.

Run: ``python fuzz/fuzz_did.py fuzz/corpus/did``
(fuzz/README.md).  The target is ``did`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "did"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
