"""Atheris target ``did_document``: ``l2session.identity.document.DidDocument.from_json``.

Run: ``python fuzz/fuzz_did_document.py fuzz/corpus/did_document``
(fuzz/README.md).  The target is ``did_document`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "did_document"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
