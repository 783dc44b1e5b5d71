"""Length framing: round trips in any chunking, oversize refused, HELLO."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.errors import MalformedMessage
from l2session.transports.framing import (
    HEADER,
    HELLO_MAGIC,
    HELLO_SIZE,
    MAX_FRAME,
    FrameDecoder,
    FrameTooLarge,
    decode_hello,
    encode_frame,
    encode_frames,
    encode_hello,
)

frames_strategy = st.lists(st.binary(max_size=300), max_size=30)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, start = [], 0
    for point in [*points, len(data)]:
        chunks.append(data[start:point])
        start = point
    return chunks


@settings(max_examples=300, deadline=None)
@given(frames=frames_strategy, cuts=st.lists(st.integers(min_value=0), max_size=40))
def test_round_trip_in_any_chunking(frames: list[bytes], cuts: list[int]) -> None:
    stream = encode_frames(frames)
    decoder = FrameDecoder()
    out: list[bytes] = []
    for chunk in _split(stream, cuts):
        out.extend(decoder.feed(chunk))
    assert out == frames
    assert decoder.buffered == 0


@settings(max_examples=100, deadline=None)
@given(frames=frames_strategy)
def test_byte_by_byte(frames: list[bytes]) -> None:
    stream = encode_frames(frames)
    decoder = FrameDecoder()
    out: list[bytes] = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i : i + 1]))
    assert out == frames


@given(frames=frames_strategy)
def test_encode_frames_is_concatenated_encode_frame(frames: list[bytes]) -> None:
    assert encode_frames(frames) == b"".join(encode_frame(f) for f in frames)


def test_header_layout() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    assert HEADER == 4


def test_partial_frame_stays_buffered() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x00\x00\x05ab") == []
    assert decoder.buffered == 6
    assert decoder.feed(b"cde\x00\x00") == [b"abcde"]
    assert decoder.buffered == 2


def test_oversize_header_refused_before_the_body() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLarge, match="announces"):
        decoder.feed(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(b"\xff\xff\xff\xff")
    # After good frames in the same chunk as well.
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(encode_frame(b"ok") + struct.pack(">I", MAX_FRAME + 1))


def test_frame_at_the_limit_is_accepted() -> None:
    payload = bytes(MAX_FRAME)
    assert FrameDecoder().feed(encode_frame(payload)) == [payload]


def test_custom_limit() -> None:
    decoder = FrameDecoder(max_frame=10)
    assert decoder.feed(encode_frame(b"x" * 10)) == [b"x" * 10]
    with pytest.raises(FrameTooLarge, match="limit 10"):
        decoder.feed(encode_frame(b"x" * 11))


def test_encoders_refuse_oversize() -> None:
    with pytest.raises(FrameTooLarge):
        encode_frame(bytes(MAX_FRAME + 1))
    with pytest.raises(FrameTooLarge):
        encode_frames([b"ok", bytes(MAX_FRAME + 1)])
    assert issubclass(FrameTooLarge, MalformedMessage)


@pytest.mark.parametrize("port", [0, 1, 7000, 65535])
def test_hello_round_trip(port: int) -> None:
    wire = encode_hello(port)
    assert len(wire) == HEADER + HELLO_SIZE
    frames = FrameDecoder().feed(wire)
    assert len(frames) == 1
    assert frames[0].startswith(HELLO_MAGIC)
    assert decode_hello(frames[0]) == port


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        HELLO_MAGIC,
        HELLO_MAGIC + b"\x00",
        HELLO_MAGIC + b"\x00\x00\x00",
        b"L2S2\x1b\x58",
        b"l2s1\x1b\x58",
        b"\x00" * HELLO_SIZE,
    ],
)
def test_bad_hello_refused(frame: bytes) -> None:
    with pytest.raises(MalformedMessage, match="HELLO"):
        decode_hello(frame)


def test_hello_port_out_of_range() -> None:
    with pytest.raises(OverflowError):
        encode_hello(65536)
