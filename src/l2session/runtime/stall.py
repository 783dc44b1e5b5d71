"""Stalled QUIC connections: declare QUIC down to an address when it has
gone silent while it should not be, so the session falls back to μTCP in
seconds instead of waiting for QUIC's idle timeout.

When a network starts dropping UDP mid-session (a firewall change, a
captive portal, a mobile carrier), the QUIC connection looks alive to qh3
until its idle timeout -- by default three heartbeat intervals, at least
30 s -- and the session retransmits into it all that time.  A connection is
*stalled* when nothing has been heard over it for ``timeout`` seconds
(since the later of its last packet and its last ``path_up``) although
the peer should have spoken: the session has messages waiting for their
acknowledgement, a heartbeat is unanswered, or the peer is sending over
another transport to the same address (it fell back first).  An idle
session's silence is normal and never stalls.

A stalled connection is closed and reported as ``path_down``, which moves
the session to its next route (QUIC -> μTCP, core/paths/multipath.py) and starts
the QUIC probes of :class:`~l2session.runtime.paths.PathMonitor` that bring
it back when UDP passes again.  A false alarm (a peer frozen for longer
than ``timeout``) costs a switch to μTCP and back.

The watch does work in proportion to what is due, not to the number of
sessions: an address enters a *waiting* table (in order of since when)
when we send to it over QUIC or hear from it over another transport, and
leaves it when anything arrives from it over QUIC.  Each check (every
``timeout / 4``) looks only at the entries older than ``timeout`` at the
front of the table, decides each one (silent for a good reason: dropped;
expecting an answer: suspected, and checked again one interval later, when
it is declared stalled if still nothing arrived -- so a message sent just
before a check, after an older send that needed no answer, has a quarter
timeout to be acknowledged before it counts).  An idle session that is not sent to costs nothing;
one heartbeat every 30 s costs one entry that its answer removes.  The
table holds at most ``max_addresses`` entries: past that the oldest is
dropped unchecked (a stall it would have found is found at the next send;
an eviction never raises an alarm).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from l2session.core.clock import TimeSource
from l2session.core.management.manager import SessionManager
from l2session.core.states import CARRYING
from l2session.runtime.events import PathLoss
from l2session.transports.base import Transport


class StallHost(Protocol):
    """The port a :class:`StallWatch` uses (the Node satisfies it): the
    clock, the sessions at an address, the QUIC transport to disconnect,
    and the path monitor a stall is reported to as a lost path."""

    @property
    def clock(self) -> TimeSource: ...

    @property
    def running(self) -> bool: ...

    @property
    def manager(self) -> SessionManager: ...

    @property
    def transports(self) -> Mapping[str, Transport]: ...

    @property
    def paths_seen(self) -> PathLoss: ...


class StallWatch:
    """Watches the QUIC route of every carrying session (one timer)."""

    def __init__(self, node: StallHost, timeout: float, max_addresses: int = 65_536) -> None:
        self.node = node
        self.timeout = timeout
        self.max_addresses = max_addresses
        #: Addresses QUIC should hear from, and since when nothing arrived
        #: over QUIC while it should (insertion order is that order).
        self._waiting: dict[str, float] = {}
        #: Waiting addresses the peer spoke from over another transport
        #: meanwhile (it fell back first: QUIC is not reaching it).
        self._elsewhere: set[str] = set()
        #: Waiting addresses found expecting an answer at the last check.
        self._suspect: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        #: Connections declared stalled so far.
        self.stalls = 0
        #: Waiting entries dropped unchecked at ``max_addresses``.
        self.evicted = 0
        #: Entries decided by the checks (the work they did).
        self.checked = 0

    def start(self) -> None:
        self._schedule()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def reset(self) -> None:
        """Forget every history (the node moved: its connections are new,
        and silence on the old ones says nothing about them)."""
        self._waiting.clear()
        self._elsewhere.clear()
        self._suspect.clear()

    @property
    def waiting(self) -> int:
        """Addresses in the waiting table now."""
        return len(self._waiting)

    def _wait_for(self, address: str) -> None:
        waiting = self._waiting
        if address not in waiting:
            waiting[address] = self.node.clock.now()
            if len(waiting) > self.max_addresses:
                oldest = next(iter(waiting))
                del waiting[oldest]
                self._elsewhere.discard(oldest)
                self._suspect.discard(oldest)
                self.evicted += 1

    def sent(self, address: str) -> None:
        """We sent to ``address`` over QUIC (hot path: one lookup)."""
        if address not in self._waiting:
            self._wait_for(address)

    def heard(self, address: str, path: str) -> None:
        """A packet arrived (hot path: one or two lookups)."""
        if path == "quic":
            if self._waiting.pop(address, None) is not None:
                self._elsewhere.discard(address)
                self._suspect.discard(address)
            return
        if address not in self._waiting:
            self._wait_for(address)
        self._elsewhere.add(address)

    def path_up(self, address: str) -> None:
        """QUIC to ``address`` came up: a fresh connection has had no chance
        to be heard yet, so its wait starts now."""
        if self._waiting.pop(address, None) is not None:
            self._waiting[address] = self.node.clock.now()
            self._suspect.discard(address)

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.05, self.timeout / 4), self._check)

    def _check(self) -> None:
        self._timer = None
        node = self.node
        if not node.running:
            return
        try:
            for address in self.stalled(node.clock.now()):
                self._declare(address)
        finally:
            self._schedule()

    def stalled(self, now: float) -> list[str]:
        """Addresses whose QUIC connection is stalled now; every entry
        waiting longer than ``timeout`` is decided and dropped."""
        waiting, elsewhere = self._waiting, self._elsewhere
        due = now - self.timeout
        found: list[str] = []
        manager = self.node.manager
        while waiting:
            address, since = next(iter(waiting.items()))
            if since > due:
                break  # the rest waited less (insertion order)
            del waiting[address]
            self.checked += 1
            if not manager.route_down(address, "quic") and self._expecting(address):
                if address in self._suspect:
                    found.append(address)
                else:  # look again one check later
                    self._suspect.add(address)
                    waiting[address] = due + self.timeout / 4
                    continue
            elsewhere.discard(address)
            self._suspect.discard(address)
        return found

    def _expecting(self, address: str) -> bool:
        """Whether a session at ``address`` carries over QUIC and should
        have heard from its peer: messages unacknowledged, a heartbeat
        unanswered, or the peer speaking over another transport."""
        for session in self.node.manager.sessions_at(address):
            if (
                session.address == address
                and session.path == "quic"
                and session.state in CARRYING
                and (len(session.outbound) or session.hb_outstanding or address in self._elsewhere)
            ):
                return True
        return False

    def _declare(self, address: str) -> None:
        node = self.node
        transport = node.transports.get("quic")
        if transport is None:
            return
        self.stalls += 1
        transport.disconnect(address)
        node.paths_seen.path_down(
            address, "quic", f"QUIC stalled: nothing heard for {self.timeout:g} s"
        )
