"""Length framing for byte streams (μTCP, and the QUIC stream).

Each frame is a 4-byte big-endian length and that many bytes.  The decoder
never buffers more than one frame plus a header: a length above
``max_frame`` is refused before any of its body is read, so a peer cannot
make us allocate what it claims.  Frames carry whole session packets, so
they are bounded by :data:`l2session.wire.packets.MAX_PACKET`.

The first frame of a connection is a HELLO (magic ``L2S1`` and the sender's
listening port, 0 if none): with it the accepting side learns the address
the connector can be reached at again, not the ephemeral port it dialled
from, so both sides key the connection by the same canonical address.

An acceptor at one of its limits sends a REFUSE frame instead of its HELLO
(magic ``L2SR`` and a reason code) and closes: the connector learns that a
node is there but will not take it now, instead of seeing a reset.
"""

from __future__ import annotations

import struct
from typing import Final

from l2session.errors import MalformedMessage
from l2session.wire.packets import MAX_PACKET

HEADER: Final = 4
MAX_FRAME: Final = MAX_PACKET
HELLO_MAGIC: Final = b"L2S1"
HELLO_SIZE: Final = len(HELLO_MAGIC) + 2
REFUSE_MAGIC: Final = b"L2SR"
#: REFUSE reasons: the acceptor is at its connection limit, or at its limit
#: of connections that have not sent their HELLO yet.
REFUSE_CONNECTIONS: Final = 1
REFUSE_UNIDENTIFIED: Final = 2
REFUSE_REASONS: Final = {
    REFUSE_CONNECTIONS: "at its connection limit",
    REFUSE_UNIDENTIFIED: "at its limit of connections still without a HELLO",
}
_LEN = struct.Struct(">I")


class FrameTooLarge(MalformedMessage):
    """A frame header announces more than the limit: the stream is closed."""


def encode_frame(data: bytes) -> bytes:
    if len(data) > MAX_FRAME:
        raise FrameTooLarge(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    return _LEN.pack(len(data)) + data


def encode_frames(frames: list[bytes]) -> bytes:
    """Many frames in one buffer (one write, one syscall)."""
    parts: list[bytes] = []
    pack = _LEN.pack
    for data in frames:
        if len(data) > MAX_FRAME:
            raise FrameTooLarge(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
        parts.append(pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def encode_hello(listen_port: int) -> bytes:
    return encode_frame(HELLO_MAGIC + listen_port.to_bytes(2, "big"))


def encode_refuse(reason: int) -> bytes:
    return encode_frame(REFUSE_MAGIC + reason.to_bytes(2, "big"))


def decode_hello(frame: bytes) -> int:
    """The listening port a HELLO frame announces (0: not listening)."""
    if len(frame) != HELLO_SIZE or frame[:4] != HELLO_MAGIC:
        raise MalformedMessage("the first frame of a connection must be an L2S1 HELLO")
    return int.from_bytes(frame[4:], "big")


class FrameDecoder:
    """Incremental decoder: ``feed(chunk)`` returns the frames completed."""

    __slots__ = ("_buffer", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += chunk
        frames: list[bytes] = []
        offset = 0
        size = len(buffer)
        unpack = _LEN.unpack_from
        while size - offset >= HEADER:
            (length,) = unpack(buffer, offset)
            if length > self.max_frame:
                raise FrameTooLarge(
                    f"frame header announces {length} bytes (limit {self.max_frame})"
                )
            end = offset + HEADER + length
            if end > size:
                break
            frames.append(bytes(buffer[offset + HEADER : end]))
            offset = end
        if offset:
            del buffer[:offset]
        return frames
