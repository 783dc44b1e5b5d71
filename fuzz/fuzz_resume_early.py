"""Atheris target ``resume_early``: ``l2session.core.lifecycle.early.open_records``.

Run: ``python fuzz/fuzz_resume_early.py fuzz/corpus/resume_early``
(fuzz/README.md).  The target is ``resume_early`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "resume_early"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
