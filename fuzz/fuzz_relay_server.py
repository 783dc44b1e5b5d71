"""Atheris target ``relay_server``:
``l2session.transports.relay_server.RelayServer.receive``.

Run: ``python fuzz/fuzz_relay_server.py fuzz/corpus/relay_server``
(fuzz/README.md).  The target is ``relay_server`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "relay_server"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
