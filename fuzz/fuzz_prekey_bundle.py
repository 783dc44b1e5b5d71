"""Atheris target ``prekey_bundle``: ``l2session.identity.bundle.PrekeyBundle.decode``.

Run: ``python fuzz/fuzz_prekey_bundle.py fuzz/corpus/prekey_bundle``
(fuzz/README.md).  The target is ``prekey_bundle`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "prekey_bundle"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
