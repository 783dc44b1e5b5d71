"""Atheris target ``audit_checkpoint``: ``l2session.membrane.audit.Checkpoint.parse``.

Run: ``python fuzz/fuzz_audit_checkpoint.py fuzz/corpus/audit_checkpoint``
(fuzz/README.md).  The target is ``audit_checkpoint`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "audit_checkpoint"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
