"""Atheris target ``discovery_message``:
``l2session.transports.discovery_messages.decode_message`` and
``l2session.transports.discovery_messages._decode``.

Run: ``python fuzz/fuzz_discovery_message.py fuzz/corpus/discovery_message``
(fuzz/README.md).  The target is ``discovery_message`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "discovery_message"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
