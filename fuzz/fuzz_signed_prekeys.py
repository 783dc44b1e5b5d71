"""Atheris target ``signed_prekeys``:
``l2session.crypto.prekey_records.SignedPrekeySet.decode``.

Run: ``python fuzz/fuzz_signed_prekeys.py fuzz/corpus/signed_prekeys``
(fuzz/README.md).  The target is ``signed_prekeys`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "signed_prekeys"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
