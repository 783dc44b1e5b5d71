"""The node's packet pump: transports -> core -> transports, and the timer.

The pump is the only place where packets and the core meet in a running
node.  Inbound, :meth:`Pump.receive` takes a datagram a transport
delivered (through :class:`~l2session.runtime.events.Bridge` and
``Node.packet_received``), lets the relay service take its own packets,
notes it for the stall watch and the traffic counters, and hands it to
``SessionManager.receive_datagram``.  Nothing is sent from there: every
input only *kicks* the pump, and the pump drains the manager once at the
end of the loop iteration (:meth:`run`), so a burst of packets shares one
store commit and one write per connection.  Outbound, :meth:`run` takes
the manager's datagrams (``datagrams_to_send`` commits the store first:
write-ahead), puts each on its path's transport, hands the core's events
to the handle table, and arms one loop timer at ``get_timer()``, whose
expiry calls ``SessionManager.tick`` and pumps again.

State is per run: the node makes a pump when it starts, for its manager.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from l2session.core.clock import TimeSource
from l2session.core.management.manager import SessionManager
from l2session.errors import StoreError
from l2session.runtime.directory import AddressBook
from l2session.runtime.faults import Faults
from l2session.runtime.sessions import HandleTable
from l2session.runtime.stall import StallWatch
from l2session.runtime.traffic import Traffic
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore
from l2session.transports.base import Transport


class RelayIntake(Protocol):
    """Who takes relay packets before the core sees them (runtime/relaying.py)."""

    def intercept(self, data: bytes, address: str, path: str) -> bool: ...


class PumpHost(Protocol):
    """The port a :class:`Pump` uses (the Node satisfies it): the store it
    commits through the manager, the transports, the fault injector, the
    stall watch and traffic counters it keeps current, the relay intake,
    the address book the core's migrations update, and who stops the node
    when the store fails."""

    @property
    def running(self) -> bool: ...

    @property
    def clock(self) -> TimeSource: ...

    @property
    def store(self) -> SqliteStore | MemoryStore | None: ...

    @property
    def commit_observer(self) -> Callable[[float], None] | None: ...

    @property
    def transports(self) -> Mapping[str, Transport]: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def traffic(self) -> Traffic: ...

    @property
    def stall_watch(self) -> StallWatch | None: ...

    @property
    def relaying(self) -> RelayIntake: ...

    @property
    def directory(self) -> AddressBook: ...

    def store_failed(self, error: StoreError) -> None: ...


class Pump:
    """Drains one manager onto the transports, once per loop iteration."""

    __slots__ = ("_host", "_kicked", "_loop", "_timer", "_timer_at", "handles", "manager")

    def __init__(
        self,
        host: PumpHost,
        manager: SessionManager,
        handles: HandleTable,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._host = host
        self.manager = manager
        self.handles = handles
        self._loop = loop
        self._kicked = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def kick(self) -> None:
        """Drain the manager at the end of this loop iteration (once)."""
        if not self._kicked and self._host.running:
            self._kicked = True
            self._loop.call_soon(self.run)

    def receive(self, data: bytes, address: str, path: str) -> None:
        """A transport delivered a packet."""
        host = self._host
        if not host.running or host.faults.drops(address, path):
            return
        if host.relaying.intercept(data, address, path):
            self.kick()
            return
        watch = host.stall_watch
        if watch is not None:
            watch.heard(address, path)
        host.traffic.received(address, len(data), host.clock.now())
        if self.manager.receive_datagram(data, address, path):
            transport = host.transports.get(path)
            if transport is not None:
                transport.confirm(address)  # μTCP: this connection is the peer's
        self.kick()

    def run(self) -> None:
        """Commit and send what the manager has, dispatch its events."""
        self._kicked = False
        host, manager = self._host, self.manager
        store, observer = host.store, host.commit_observer
        commits = 0 if store is None else store.commits
        started = time.perf_counter()
        try:
            outgoing = manager.datagrams_to_send()
            if observer is not None and store is not None and store.commits != commits:
                observer(time.perf_counter() - started)
        except StoreError as error:
            host.store_failed(error)
            return
        try:
            faults, transports, watch = host.faults, host.transports, host.stall_watch
            now = host.clock.now() if outgoing else 0.0
            for packet in outgoing:
                transport = transports.get(packet.path)
                if transport is None or faults.drops(packet.address, packet.path):
                    continue
                transport.send(packet.address, packet.data)
                host.traffic.sent(packet.address, len(packet.data), now)
                if watch is not None and packet.path == "quic":
                    watch.sent(packet.address)
            self.handles.dispatch(manager.events(), manager, host.directory)
            self.handles.wake_queue_waiters()
        finally:
            self._arm_timer()  # whatever happened, the timers keep running

    def cancel(self) -> None:
        """Stop the core's timer (the node stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_timer(self) -> None:
        deadline = self.manager.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self._host.clock.now())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._host.running:
            try:
                self.manager.tick()
            finally:
                self.run()
