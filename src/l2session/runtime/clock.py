"""The wall clock, for production use.

The core takes ``now`` as UNIX seconds (handshake timestamps and tickets are
compared across machines).  Timers are armed on the event loop's monotonic
clock from the difference, so a wall-clock step only shifts when a timer
fires; the core tolerates a deadline in the past.
"""

from __future__ import annotations

import time


class SystemClock:
    """:class:`~l2session.core.clock.TimeSource` backed by ``time.time``."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()
