"""Atheris target ``discovery_responder``:
``l2session.transports.discovery_wire.DiscoveryResponder.receive``.

Run: ``python fuzz/fuzz_discovery_responder.py fuzz/corpus/discovery_responder``
(fuzz/README.md).  The target is ``discovery_responder`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "discovery_responder"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
