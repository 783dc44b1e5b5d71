"""Atheris target ``did_b64url``: ``l2session.identity.did.b64url_decode``.

Run: ``python fuzz/fuzz_did_b64url.py fuzz/corpus/did_b64url``
(fuzz/README.md).  The target is ``did_b64url`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "did_b64url"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
