"""Atheris target ``trust_statement``:
``l2session.membrane.trust_statement.TrustStatement.from_bytes``.

Run: ``python fuzz/fuzz_trust_statement.py fuzz/corpus/trust_statement``
(fuzz/README.md).  The target is ``trust_statement`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "trust_statement"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
