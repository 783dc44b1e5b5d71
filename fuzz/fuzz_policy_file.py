"""Atheris target ``policy_file``: ``l2session.membrane.policy_file.parse_policy``.

Run: ``python fuzz/fuzz_policy_file.py fuzz/corpus/policy_file``
(fuzz/README.md).  The target is ``policy_file`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "policy_file"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
