"""Sliding anti-replay window over 64-bit packet sequence numbers.

The receiver remembers the highest sequence number it accepted and a bitmap
of the ``size`` numbers below it (WireGuard keeps 8,192 bits; so do we by
default; at least 2,048).  A number above the highest is new; one inside the
window is new unless its bit is set; one below the window is too old to tell
and is refused.

The window is consulted *after* the AEAD check succeeds and updated only
then: an attacker who cannot forge a tag cannot move the window, so forged
packets can never make genuine ones look like replays.  Hence the two-step
API, :meth:`ReplayWindow.check` then :meth:`ReplayWindow.commit`.
"""

from __future__ import annotations

from typing import Final

from l2session.codec import Reader, Writer
from l2session.errors import ConfigError, MalformedMessage, ReplayDetected

MIN_WINDOW: Final = 2048
DEFAULT_WINDOW: Final = 8192
MAX_WINDOW: Final = 1 << 16
MAX_SEQUENCE: Final = (1 << 64) - 1


class ReplayWindow:
    """Accepts each sequence number at most once (see the module docstring)."""

    __slots__ = ("_bits", "_mask", "_size", "_top")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if not isinstance(size, int) or not MIN_WINDOW <= size <= MAX_WINDOW or size % 64:
            raise ConfigError(
                f"replay window size must be a multiple of 64 in "
                f"[{MIN_WINDOW}, {MAX_WINDOW}], got {size!r}"
            )
        self._size = size
        self._mask = (1 << size) - 1
        self._top = -1  # highest accepted sequence number; -1 = none yet
        self._bits = 0  # bit i set <=> (top - i) was accepted

    @property
    def size(self) -> int:
        return self._size

    @property
    def highest(self) -> int | None:
        """The highest sequence number accepted so far, if any."""
        return None if self._top < 0 else self._top

    def check(self, seq: int) -> None:
        """Raise :class:`ReplayDetected` if ``seq`` was accepted before or is
        below the window.  Changes nothing."""
        if seq < 0 or seq > MAX_SEQUENCE:
            raise MalformedMessage(f"sequence number {seq} outside the 64-bit range")
        if seq > self._top:
            return
        distance = self._top - seq
        if distance >= self._size:
            raise ReplayDetected(
                f"packet {seq} is older than the replay window ({self._size} below {self._top})"
            )
        if (self._bits >> distance) & 1:
            raise ReplayDetected(f"packet {seq} was already received")

    def commit(self, seq: int) -> None:
        """Record ``seq`` as accepted.  Call only after :meth:`check` passed
        and the packet authenticated."""
        if seq > self._top:
            shift = seq - self._top
            self._bits = ((self._bits << shift) | 1) & self._mask if shift < self._size else 1
            self._top = seq
        else:
            self._bits |= 1 << (self._top - seq)

    def accept(self, seq: int) -> None:
        """:meth:`check` then :meth:`commit`, for already-authenticated input."""
        self.check(seq)
        self.commit(seq)

    def copy(self) -> ReplayWindow:
        clone = ReplayWindow(self._size)
        clone._top = self._top
        clone._bits = self._bits
        return clone

    # ----------------------------------------------------------------------
    # persistence

    def write(self, out: Writer) -> None:
        out.u32(self._size)
        out.flag(self._top >= 0)
        out.u64(max(self._top, 0))
        out.fixed(self._bits.to_bytes(self._size // 8, "big"), self._size // 8, "window bits")

    @classmethod
    def read(cls, reader: Reader) -> ReplayWindow:
        size = reader.u32("window size")
        if not MIN_WINDOW <= size <= MAX_WINDOW or size % 64:
            raise MalformedMessage(f"stored replay window size {size} is invalid")
        window = cls(size)
        has_top = reader.flag("window has top")
        top = reader.u64("window top")
        bits = int.from_bytes(reader.fixed(size // 8, "window bits"), "big")
        if has_top:
            window._top = top
            window._bits = bits
        elif top or bits:
            raise MalformedMessage("stored replay window is empty but has bits set")
        return window

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self._size}, highest={self.highest})"
