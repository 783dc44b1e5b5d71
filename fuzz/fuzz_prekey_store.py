"""Atheris target ``prekey_store``: ``l2session.identity.prekeys.PrekeyStore.from_bytes``.

Run: ``python fuzz/fuzz_prekey_store.py fuzz/corpus/prekey_store``
(fuzz/README.md).  The target is ``prekey_store`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "prekey_store"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
