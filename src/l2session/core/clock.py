"""Injected time (SPEC-018 §6.3, "Injectable TimeSource").

The session core is sans-I/O: it never reads the clock.  Every method that
depends on time (heartbeats, retries with backoff, quarantine, TTL, key
rotation, the degraded -> suspended timeout) takes ``now`` as an argument, and
the core asks for a wake-up with ``get_timer()`` instead of sleeping.  The
runtime reads a :class:`TimeSource` and passes the value in.

Why inject time rather than read it:

* **Tests run on virtual time.**  A 24-hour key rotation, a 60-second
  suspension or thirty seconds of missed heartbeats take microseconds to test,
  and the result does not depend on how loaded the machine is.
* **Runs are reproducible.**  With a seeded network and a manual clock, the
  same test produces the same events in the same order every time, so a
  failure can be replayed and bisected.
* **One clock per decision.**  The core reads ``now`` once per input and uses
  that value throughout, so no timing decision sees two different times.

The time is UNIX seconds (``time.time`` in the runtime): handshake
timestamps, prekey validity periods and resumption tickets are compared
across machines, so they need the shared wall clock.  Tests use
:class:`l2session.testing.ManualClock`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TimeSource(Protocol):
    """Anything that tells the current time.

    ``now()`` returns UNIX time in seconds as a float.  Timers tolerate
    a clock step (a deadline in the past just fires), but prekeys and
    handshake timestamps are checked against it, so keep it synchronised.
    """

    def now(self) -> float:
        """Return the current time in seconds."""
        ...
