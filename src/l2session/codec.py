"""Bounds-checked binary reading and writing, shared by every encoder.

All integers are big-endian.  Variable-length fields carry a length prefix and
a declared maximum; reading past the end, a length above its maximum, bytes
left over after the last field, or text that is not UTF-8 raise
:class:`~l2session.errors.MalformedMessage` naming the field, and nothing
else.  The reader never copies more than one field at a time and never
allocates more than the input's size, so hostile lengths cannot balloon memory.

This module sits below every layer (crypto records, handshake messages and,
later, the wire frames) so that there is exactly one place where untrusted
lengths are checked.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from l2session.errors import MalformedMessage, MessageTooLarge

_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")

U16_MAX: Final = 0xFFFF
U32_MAX: Final = 0xFFFF_FFFF
U64_MAX: Final = 0xFFFF_FFFF_FFFF_FFFF


class Reader:
    """Reads fields from ``data``; every method names the field it reads."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str = "message") -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MalformedMessage(f"{what}: expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    @property
    def data(self) -> bytes:
        """The whole input (for callers with a fast path of their own)."""
        return self._data

    @property
    def position(self) -> int:
        return self._pos

    def seek(self, position: int) -> None:
        """Continue reading at ``position`` (within the input)."""
        if not 0 <= position <= len(self._data):
            raise ValueError(f"position {position} is outside the input")
        self._pos = position

    def _take(self, n: int, field: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise MalformedMessage(
                f"{self._what}: truncated in {field} (needs {n} bytes, {self.remaining} left)"
            )
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def u8(self, field: str) -> int:
        return self._take(1, field)[0]

    def u16(self, field: str) -> int:
        value: int = _U16.unpack(self._take(2, field))[0]
        return value

    def u32(self, field: str) -> int:
        value: int = _U32.unpack(self._take(4, field))[0]
        return value

    def u64(self, field: str) -> int:
        value: int = _U64.unpack(self._take(8, field))[0]
        return value

    def fixed(self, n: int, field: str) -> bytes:
        """Exactly ``n`` bytes."""
        return self._take(n, field)

    def struct(self, layout: struct.Struct, field: str) -> tuple[Any, ...]:
        """A fixed layout in one step (for the hot fixed-size parts of a
        message); the caller validates the values' ranges."""
        return layout.unpack(self._take(layout.size, field))

    def var16(self, field: str, *, max_len: int, min_len: int = 0) -> bytes:
        """A u16 length followed by that many bytes, ``min_len <= len <= max_len``."""
        n = self.u16(field)
        if n > max_len or n < min_len:
            raise MalformedMessage(
                f"{self._what}: {field} length {n} outside [{min_len}, {max_len}]"
            )
        return self._take(n, field)

    def var32(self, field: str, *, max_len: int, min_len: int = 0) -> bytes:
        """A u32 length followed by that many bytes, ``min_len <= len <= max_len``."""
        n = self.u32(field)
        if n > max_len or n < min_len:
            raise MalformedMessage(
                f"{self._what}: {field} length {n} outside [{min_len}, {max_len}]"
            )
        return self._take(n, field)

    def text16(self, field: str, *, max_len: int) -> str:
        """UTF-8 text with a u16 byte-length prefix."""
        raw = self.var16(field, max_len=max_len, min_len=1)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage(f"{self._what}: {field} is not valid UTF-8") from None

    def flag(self, field: str) -> bool:
        """A u8 that must be 0 or 1."""
        value = self.u8(field)
        if value > 1:
            raise MalformedMessage(f"{self._what}: {field} must be 0 or 1, got {value}")
        return value == 1

    def rest(self) -> bytes:
        """Everything not read yet (possibly empty)."""
        return self._take(self.remaining, "rest")

    def finish(self) -> None:
        """Refuse trailing bytes after the last field."""
        if self._pos != len(self._data):
            raise MalformedMessage(f"{self._what}: {self.remaining} unexpected trailing bytes")


class Writer:
    """Builds an encoding; the mirror image of :class:`Reader`.

    Writing a value that does not fit its field is a programming error on our
    side (or an oversized local input) and raises :class:`MessageTooLarge`.
    """

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self._parts.append(bytes((value,)))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value))
        return self

    def fixed(self, data: bytes, n: int, field: str) -> Writer:
        if len(data) != n:
            raise MessageTooLarge(f"{field}: expected {n} bytes, got {len(data)}")
        self._parts.append(bytes(data))
        return self

    def var16(self, data: bytes, field: str, *, max_len: int) -> Writer:
        if len(data) > max_len:
            raise MessageTooLarge(f"{field}: {len(data)} bytes exceeds the maximum {max_len}")
        self._parts.append(_U16.pack(len(data)))
        self._parts.append(bytes(data))
        return self

    def var32(self, data: bytes, field: str, *, max_len: int) -> Writer:
        if len(data) > max_len:
            raise MessageTooLarge(f"{field}: {len(data)} bytes exceeds the maximum {max_len}")
        self._parts.append(_U32.pack(len(data)))
        self._parts.append(bytes(data))
        return self

    def text16(self, text: str, field: str, *, max_len: int) -> Writer:
        return self.var16(text.encode("utf-8"), field, max_len=max_len)

    def flag(self, value: bool) -> Writer:
        return self.u8(1 if value else 0)

    def raw(self, data: bytes) -> Writer:
        self._parts.append(bytes(data))
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def clip_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary
    (reasons carried in bounded fields)."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def length_prefixed(*parts: bytes) -> bytes:
    """Unambiguous concatenation: each part as u32 length || bytes.

    Used wherever several byte strings feed one hash or KDF, so that no two
    different tuples of inputs produce the same byte string.
    """
    pack = _U32.pack
    out: list[bytes] = []
    for part in parts:
        out.append(pack(len(part)))
        out.append(part)
    return b"".join(out)
