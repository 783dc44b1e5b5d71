"""Atheris target ``handshake_init``:
``l2session.crypto.handshake_messages.HandshakeInit.decode``.

Run: ``python fuzz/fuzz_handshake_init.py fuzz/corpus/handshake_init``
(fuzz/README.md).  The target is ``handshake_init`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "handshake_init"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
