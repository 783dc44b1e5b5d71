"""Atheris target ``did_multibase``: ``l2session.identity.did.decode_multibase_key``.

Run: ``python fuzz/fuzz_did_multibase.py fuzz/corpus/did_multibase``
(fuzz/README.md).  The target is ``did_multibase`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "did_multibase"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
