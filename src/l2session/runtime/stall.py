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
the session to its next route (QUIC -> μTCP, core/multipath.py) and starts
the QUIC probes of :class:`~l2session.runtime.paths.PathMonitor` that bring
it back when UDP passes again.  A false alarm (a peer frozen for longer
than ``timeout``) costs a switch to μTCP and back.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from l2session.core.states import CARRYING

if TYPE_CHECKING:
    from l2session.runtime.node import Node

#: (address, path) pairs remembered for "last heard" (oldest dropped first).
MAX_HEARD: Final = 4096


class StallWatch:
    """Watches the QUIC route of every carrying session (one timer)."""

    def __init__(self, node: Node, timeout: float) -> None:
        self.node = node
        self.timeout = timeout
        #: When a packet last arrived, per (address, path) of a watched address.
        self._heard: dict[tuple[str, str], float] = {}
        #: Addresses whose sessions run over QUIC (refreshed by each check).
        self._watched: set[str] = set()
        #: When QUIC to an address last came up (a fresh connection has had
        #: no chance to be heard yet).
        self._up_at: dict[str, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: Connections declared stalled so far.
        self.stalls = 0

    def start(self) -> None:
        self._schedule()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def reset(self) -> None:
        """Forget every history (the node moved: its connections are new,
        and silence on the old ones says nothing about them)."""
        self._heard.clear()
        self._up_at.clear()
        self._watched = set()

    def heard(self, address: str, path: str) -> None:
        """A packet arrived (hot path: two lookups when watched)."""
        if address in self._watched:
            self._heard[(address, path)] = self.node.clock.now()

    def path_up(self, address: str) -> None:
        self._up_at[address] = self.node.clock.now()
        while len(self._up_at) > MAX_HEARD:
            del self._up_at[next(iter(self._up_at))]

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
        """Addresses whose QUIC connection is stalled now (and refresh the
        set of watched addresses)."""
        watched: set[str] = set()
        found: list[str] = []
        manager = self.node.manager
        for session in manager.sessions.values():
            address = session.address
            if address is None or session.path != "quic" or session.state not in CARRYING:
                continue
            watched.add(address)
            if address in found or manager.route_down(address, "quic"):
                continue
            heard = self._heard.get((address, "quic"), 0.0)
            since = max(heard, self._up_at.get(address, 0.0))
            if address not in self._watched:
                since = max(since, now)  # just started watching: no history
                self._up_at[address] = now
            if now - since <= self.timeout:
                continue
            elsewhere = any(
                now - at <= self.timeout
                for (a, path), at in self._heard.items()
                if a == address and path != "quic"
            )
            if len(session.outbound) or session.hb_outstanding or elsewhere:
                found.append(address)
        self._watched = watched
        for key in [k for k in self._heard if k[0] not in watched]:
            del self._heard[key]
        while len(self._heard) > MAX_HEARD:
            del self._heard[next(iter(self._heard))]
        return found

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
