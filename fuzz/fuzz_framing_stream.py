"""Atheris target ``framing_stream``: ``l2session.transports.framing.FrameDecoder.feed``.

Run: ``python fuzz/fuzz_framing_stream.py fuzz/corpus/framing_stream``
(fuzz/README.md).  The target is ``framing_stream`` in ``l2session.testing.fuzz_targets``.
"""

import _harness

TARGET = "framing_stream"


def TestOneInput(data: bytes) -> None:
    _harness.run(TARGET, data)


if __name__ == "__main__":
    _harness.main(TARGET, TestOneInput)
