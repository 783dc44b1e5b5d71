"""Atheris target ``resume_finish``: ``l2session.core.lifecycle.resumption.finish_resume``.

Run: ``python fuzz/fuzz_resume_finish.py fuzz/corpus/resume_finish``
(fuzz/README.md).  The target is ``resume_finish`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "resume_finish"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
