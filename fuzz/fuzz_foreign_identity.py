"""Atheris target ``foreign_identity``: ``l2session.identity.foreign.ForeignIdentity.parse``.

Run: ``python fuzz/fuzz_foreign_identity.py fuzz/corpus/foreign_identity``
(fuzz/README.md).  The target is ``foreign_identity`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "foreign_identity"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
