"""Atheris target ``one_time_prekey``:
``l2session.crypto.prekey_records.OneTimePrekey.decode``.

Run: ``python fuzz/fuzz_one_time_prekey.py fuzz/corpus/one_time_prekey``
(fuzz/README.md).  The target is ``one_time_prekey`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "one_time_prekey"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
