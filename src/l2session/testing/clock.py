"""A clock that moves only when the test says so.

:class:`ManualClock` implements :class:`~l2session.core.clock.TimeSource` for
tests: time stands still until :meth:`ManualClock.advance` or
:meth:`ManualClock.set` moves it, so a test can cross a 30-second heartbeat
interval or a 24-hour rotation deadline in one call, and land exactly on (or
just before) a deadline to test its edge.

It refuses to go backwards, because the session core is entitled to assume a
monotonic clock; a test that moved time backwards would test a situation
production cannot produce.
"""

from __future__ import annotations

import math

from l2session.errors import ConfigError


def _finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return result


class ManualClock:
    """A :class:`~l2session.core.clock.TimeSource` on virtual time.

    ``ManualClock(start)`` reads ``start`` until moved.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = _finite(start, "start")

    def now(self) -> float:
        """The current virtual time in seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        step = _finite(seconds, "seconds")
        if step < 0:
            raise ConfigError(f"seconds must be >= 0 (time never goes backwards), got {seconds!r}")
        self._now += step
        return self._now

    def set(self, t: float) -> float:
        """Jump to time ``t`` (not earlier than now) and return it."""
        target = _finite(t, "t")
        if target < self._now:
            raise ConfigError(
                f"t must not be earlier than the current time {self._now!r}, got {t!r}"
            )
        self._now = target
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"
