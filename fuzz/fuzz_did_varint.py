"""Atheris target ``did_varint``: ``l2session.identity.did.decode_varint``.

Run: ``python fuzz/fuzz_did_varint.py fuzz/corpus/did_varint``
(fuzz/README.md).  The target is ``did_varint`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "did_varint"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
