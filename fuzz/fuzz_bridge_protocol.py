"""Atheris target ``bridge_protocol``: ``l2session.identity.foreign.BridgeProtocol.parse``.

Run: ``python fuzz/fuzz_bridge_protocol.py fuzz/corpus/bridge_protocol``
(fuzz/README.md).  The target is ``bridge_protocol`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "bridge_protocol"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
