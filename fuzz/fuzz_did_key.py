"""Atheris target ``did_key``: ``l2session.identity.did.ed25519_from_did_key``.

Run: ``python fuzz/fuzz_did_key.py fuzz/corpus/did_key``
(fuzz/README.md).  The target is ``did_key`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "did_key"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
