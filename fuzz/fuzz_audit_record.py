"""Atheris target ``audit_record``: ``l2session.membrane.audit.decode_record``.

Run: ``python fuzz/fuzz_audit_record.py fuzz/corpus/audit_record``
(fuzz/README.md).  The target is ``audit_record`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "audit_record"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
