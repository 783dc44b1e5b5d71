"""Atheris target ``resume_answer``: ``l2session.core.lifecycle.resumption.answer_resume``.

Run: ``python fuzz/fuzz_resume_answer.py fuzz/corpus/resume_answer``
(fuzz/README.md).  The target is ``resume_answer`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "resume_answer"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
