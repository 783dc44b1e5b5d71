"""Atheris target ``capability_request``: ``l2session.core.link.envelope.Request.parse``.

Run: ``python fuzz/fuzz_capability_request.py fuzz/corpus/capability_request``
(fuzz/README.md).  The target is ``capability_request`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "capability_request"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
