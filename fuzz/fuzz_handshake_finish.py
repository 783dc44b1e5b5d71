"""Atheris target ``handshake_finish``:
``l2session.crypto.handshake_messages.HandshakeFinish.decode``.

Run: ``python fuzz/fuzz_handshake_finish.py fuzz/corpus/handshake_finish``
(fuzz/README.md).  The target is ``handshake_finish`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "handshake_finish"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
