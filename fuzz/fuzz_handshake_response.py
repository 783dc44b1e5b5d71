"""Atheris target ``handshake_response``:
``l2session.crypto.handshake_messages.HandshakeResponse.decode``.

Run: ``python fuzz/fuzz_handshake_response.py fuzz/corpus/handshake_response``
(fuzz/README.md).  The target is ``handshake_response`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "handshake_response"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
