"""Path health as the transports report it, for one running node.

Transports report edges (connected, lost) per canonical address and path;
this turns them into ``SessionManager.connectivity`` calls (how QUIC ->
μTCP fallback and its return happen), remembers why a path failed (for the
error a user gets from ``establish``), and probes QUIC again every
``quic_probe_interval`` while a session uses another path.

Only addresses a session uses are tracked: anyone can open connections
from many ports, and none of that may grow the node's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final, Protocol

from l2session.core.management.manager import SessionManager
from l2session.runtime.events import NodeEvent, PathChanged
from l2session.transports.base import REFUSED_PREFIX, Transport

#: Failure reasons kept (the oldest forgotten first).
MAX_ERRORS: Final = 4096


class QuicWatch(Protocol):
    """Who hears that QUIC to an address came up (runtime/stall.py)."""

    def path_up(self, address: str) -> None: ...


class PathHost(Protocol):
    """The port a :class:`PathMonitor` uses (the Node satisfies it): the
    paths and transports, the manager to report connectivity to, and the
    node's listeners, waiters and pump to tell of a change."""

    @property
    def paths(self) -> tuple[str, ...]: ...

    @property
    def running(self) -> bool: ...

    @property
    def manager(self) -> SessionManager: ...

    @property
    def transports(self) -> Mapping[str, Transport]: ...

    @property
    def quic_probe_interval(self) -> float: ...

    @property
    def stall_watch(self) -> QuicWatch | None: ...

    def tell(self, event: NodeEvent) -> None: ...

    def wake(self, address: str) -> None: ...

    def kick(self) -> None: ...


class PathMonitor:
    """The node's path edges: connectivity, failure reasons, QUIC probes."""

    def __init__(self, node: PathHost, max_errors: int = MAX_ERRORS) -> None:
        self.node = node
        self.max_errors = max_errors
        self._errors: dict[tuple[str, str], str] = {}
        self._probes: dict[str, asyncio.TimerHandle] = {}
        #: Addresses an ``establish`` waits on, set once every path to it
        #: was refused by the node there (transports/base.py REFUSED_PREFIX).
        self._refusals: dict[str, asyncio.Event] = {}

    def refusal(self, address: str) -> asyncio.Event:
        """An event set when every path to ``address`` has been refused."""
        event = self._refusals.get(address)
        if event is None:
            event = self._refusals[address] = asyncio.Event()
            # A refusal may have come before anyone waited for it (the
            # μTCP probe establish starts answers at once).
            self._note_refusal(address)
        return event

    def refusal_done(self, address: str) -> None:
        self._refusals.pop(address, None)

    def _note_refusal(self, address: str) -> None:
        event = self._refusals.get(address)
        if event is None:
            return
        errors = self._errors
        if all(
            errors.get((address, path), "").startswith(REFUSED_PREFIX) for path in self.node.paths
        ):
            event.set()

    def errors_for(self, address: str) -> list[tuple[str, str]]:
        """(path, reason) of each path to ``address`` that last failed."""
        errors = self._errors
        return [(p, errors[(address, p)]) for p in self.node.paths if (address, p) in errors]

    def forget_errors(self, address: str) -> None:
        for path in self.node.paths:
            self._errors.pop((address, path), None)

    def cancel_probes(self) -> None:
        for probe in self._probes.values():
            probe.cancel()
        self._probes.clear()

    def nothing_listens(self, address: str) -> str | None:
        """Why no node can be listening at ``address``, if μTCP's connect
        was refused: a node listens on every path at one port, so a refused
        TCP connection settles it at once (no need to wait for QUIC's
        handshake timeout and blame UDP).  A node that answered with a
        refusal at one of its limits (REFUSED_PREFIX) is listening: that
        case is :meth:`refusal`'s."""
        reason = self._errors.get((address, "tcp"))
        if reason is None or reason.startswith(REFUSED_PREFIX) or "refused" not in reason.lower():
            return None
        return (
            f"nothing listens at {address} (TCP: {reason}); "
            "is the peer's node running, and is that its address?"
        )

    def _in_use(self, address: str) -> bool:
        return bool(self.node.manager.sessions_at(address))

    def path_up(self, address: str, path: str) -> None:
        node = self.node
        if not node.running or not self._in_use(address):
            return
        self._errors.pop((address, path), None)
        if path == "quic" and node.stall_watch is not None:
            node.stall_watch.path_up(address)
        probe = self._probes.pop(address, None) if path == "quic" else None
        if probe is not None:
            probe.cancel()
        node.manager.connectivity(address, path, True)
        node.tell(PathChanged(address, path, True))
        node.kick()

    def path_down(self, address: str, path: str, reason: str) -> None:
        node = self.node
        if not node.running or not self._in_use(address):
            return
        self._errors.pop((address, path), None)
        self._errors[(address, path)] = reason
        while len(self._errors) > self.max_errors:
            del self._errors[next(iter(self._errors))]
        if reason.startswith(REFUSED_PREFIX):
            self._note_refusal(address)
        node.manager.connectivity(address, path, False)
        node.tell(PathChanged(address, path, False, reason))
        node.wake(address)
        if path == "quic" and address not in self._probes:
            self._schedule_probe(address)
        node.kick()

    def _schedule_probe(self, address: str) -> None:
        loop = asyncio.get_running_loop()
        self._probes[address] = loop.call_later(
            self.node.quic_probe_interval, self._probe_quic, address
        )

    def _probe_quic(self, address: str) -> None:
        """QUIC was lost to ``address``: try it again while a session there
        uses another path; a success reports path_up and the core moves the
        session back to QUIC."""
        self._probes.pop(address, None)
        node = self.node
        transport = node.transports.get("quic")
        if not node.running or transport is None or not self._in_use(address):
            return
        transport.probe(address)
        self._schedule_probe(address)
