"""The asyncio node: identity, store, transports and the session manager.

A :class:`Node` is the thin runtime of DESIGN.md §1.  It owns

* the identity and private prekeys (from the store, or given),
* the store (SQLite file, or in memory, or none),
* one transport per path (QUIC first, μTCP second), all listening on the
  same port number, so one ``host:port`` reaches the node on every path,
* the core :class:`~l2session.core.manager.SessionManager`,

and does only four things: feed each packet a transport delivers into the
manager, drain the manager's packets onto the transports, turn the
manager's events into wake-ups for waiting application code, and arm one
timer from ``get_timer()``.  Packets that arrive in one loop iteration are
processed together and drained once (:meth:`kick`), so a burst shares one
store commit and one write per connection.

Path health comes from the transports as edges (connected, lost) and goes
to ``SessionManager.connectivity``, which is how a session falls back from
QUIC to μTCP; QUIC is probed again every ``quic_probe_interval`` seconds
while it is down, and the core moves the session back when it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from l2session.core.config import SessionConfig
from l2session.core.context import Context, LocalKeys
from l2session.core.events import (
    MessagesAvailable,
    PathMigrated,
    SessionAccepted,
    SessionClosedEvent,
    SessionEvent,
    StateChanged,
)
from l2session.core.manager import SessionManager
from l2session.core.persistence import Journal
from l2session.core.session import Session
from l2session.crypto.rng import RandomSource
from l2session.errors import ConfigError, InvalidState, StoreError, StoreNotFound, TransportFailed
from l2session.identity.did import Did
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.identity.resolver import DidResolver, default_resolver
from l2session.runtime.clock import SystemClock
from l2session.runtime.directory import AddressBook
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.events import Bridge, NodeEvent, NodeListener, PathChanged
from l2session.runtime.faults import Faults
from l2session.runtime.handle import SessionHandle
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore
from l2session.transports.address import format_address, parse_address
from l2session.transports.base import Transport
from l2session.transports.discovery import DiscoveryEndpoint
from l2session.transports.quic import QuicTransport
from l2session.transports.tcp import TcpTransport

_log = logging.getLogger("l2session.node")

#: Paths in order of preference (the core falls back along this order).
DEFAULT_PATHS: Final = ("quic", "tcp")
#: Attempts to find a port free on both UDP and TCP when listening on port 0.
_PORT_ATTEMPTS: Final = 20


class Node:
    """A running l2session node (an async context manager; see module doc).

    ``store``: a path (an SQLite file, created 0600 if missing), an open
    :class:`SqliteStore` or :class:`MemoryStore`, or None (nothing
    persisted).  ``identity``: given, else loaded from the SQLite store
    (``l2session init`` creates one), else generated for this run.
    """

    def __init__(
        self,
        identity: Identity | None = None,
        *,
        store: str | Path | SqliteStore | MemoryStore | None = None,
        passphrase: str | None = None,
        listen: str = "127.0.0.1:0",
        paths: tuple[str, ...] = DEFAULT_PATHS,
        config: SessionConfig | None = None,
        peers: Mapping[str, str] | None = None,
        resolver: DidResolver | None = None,
        connect_timeout: float = 5.0,
        quic_idle_timeout: float | None = None,
        quic_probe_interval: float = 30.0,
        discovery: str | None = None,
        discovery_targets: Sequence[str] = (),
        rng: RandomSource | None = None,
    ) -> None:
        self._host, self._requested_port = parse_address(listen, allow_zero_port=True)
        self._discovery_at = (
            None if discovery is None else parse_address(discovery, allow_zero_port=True)
        )
        for target in discovery_targets:
            parse_address(target)
        self.discovery_targets = list(discovery_targets)
        self.discovery: DiscoveryEndpoint | None = None
        unknown = [p for p in paths if p not in DEFAULT_PATHS]
        if not paths or unknown or len(set(paths)) != len(paths):
            raise ConfigError(f"paths must be distinct names from {DEFAULT_PATHS}, got {paths!r}")
        if quic_probe_interval <= 0 or connect_timeout <= 0:
            raise ConfigError("connect_timeout and quic_probe_interval must be positive")
        self._store_arg = store
        self._passphrase = passphrase
        self._identity = identity
        self.paths = paths
        self.config = config or SessionConfig()
        self.directory = AddressBook(peers or {})
        self.resolver = resolver or default_resolver()
        self.connect_timeout = connect_timeout
        # Heartbeats are the only traffic of an idle session: QUIC's idle
        # timeout must outlast several of them or the connection churns.
        self.quic_idle_timeout = (
            quic_idle_timeout
            if quic_idle_timeout is not None
            else max(30.0, 3 * self.config.heartbeat_interval)
        )
        self.quic_probe_interval = quic_probe_interval
        self.rng: RandomSource = rng or SystemRandom()
        self.clock = SystemClock()
        self.faults = Faults()
        self.transports: dict[str, Transport] = {}
        self.port = 0
        self.store: SqliteStore | MemoryStore | None = None
        self._owns_store = False
        self._manager: SessionManager | None = None
        self._handles: dict[str, SessionHandle] = {}
        #: Handles waiting for their queue to shrink (flush, send at the
        #: limit): acknowledgements raise no event, so each pump wakes them.
        self.queue_waiters: set[SessionHandle] = set()
        self._incoming: asyncio.Queue[SessionHandle] = asyncio.Queue()
        self._listeners: list[NodeListener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kicked = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._probes: dict[str, asyncio.TimerHandle] = {}
        self.path_errors: dict[tuple[str, str], str] = {}
        self._running = False

    # ------------------------------------------------------------------
    # lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the store, load the identity, listen, and resume stored
        sessions.  Raises StoreError subclasses, TransportFailed (port in
        use), ConfigError."""
        if self._running:
            raise InvalidState("the node is already running")
        self._loop = asyncio.get_running_loop()
        self._open_store()
        identity = self._load_identity()
        prekeys = self._load_prekeys(identity)
        journal: Journal | None = self.store
        ctx = Context(
            rng=self.rng,
            time=self.clock,
            did_resolve=self.resolver,
            crypto_pqxdh=LocalKeys(identity, prekeys),
            net_connect=self.directory,
            store=journal,
        )
        self._manager = SessionManager(ctx, config=self.config, paths=self.paths)
        try:
            await self._listen()
        except BaseException:
            await self._close_transports()
            self._close_store()
            raise
        if self._discovery_at is not None:
            try:
                self.discovery = await DiscoveryEndpoint.open(
                    *self._discovery_at,
                    identity=identity,
                    listen_address=self.address,
                    resolver=self.resolver,
                    broadcast=True,
                    rng=self.rng,
                )
            except BaseException:
                await self._close_transports()
                self._close_store()
                raise
        self._running = True
        if journal is not None:
            for session in self._manager.restore():
                if session.address is not None:
                    self.directory.learn(session.peer_did, session.address)
                self._handle(session)
        _log.info("node %s listening on %s (%s)", self.did, self.address, ", ".join(self.paths))
        self.kick()

    async def stop(self) -> None:
        """Stop listening and close the store.  Persistent sessions are not
        closed: they resume when the node starts again."""
        if not self._running:
            return
        self._running = False
        if self._manager is not None:
            with contextlib.suppress(StoreError):
                self._pump()  # what is queued is committed and handed to the transports
        await asyncio.sleep(0)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for probe in self._probes.values():
            probe.cancel()
        self._probes.clear()
        if self.discovery is not None:
            self.discovery.close()
            self.discovery = None
        await self._close_transports()
        self._close_store()
        for handle in self._handles.values():
            handle.notify()

    def _open_store(self) -> None:
        store = self._store_arg
        if isinstance(store, str | Path):
            self.store = SqliteStore.open(Path(store))
            self._owns_store = True
        else:
            self.store = store

    def _close_store(self) -> None:
        if self.store is not None and self._owns_store and isinstance(self.store, SqliteStore):
            self.store.close()

    def _load_identity(self) -> Identity:
        if self._identity is not None:
            return self._identity
        if isinstance(self.store, SqliteStore):
            try:
                self._identity = self.store.load_identity(self._passphrase)
            except StoreNotFound:
                self._close_store()
                raise
        else:
            self._identity = Identity.generate(self.rng)
        return self._identity

    def _load_prekeys(self, identity: Identity) -> PrekeyStore:
        prekeys = None
        if isinstance(self.store, SqliteStore):
            prekeys = self.store.load_prekeys(identity)
        elif isinstance(self.store, MemoryStore):
            state = self.store.load().prekeys
            prekeys = None if state is None else PrekeyStore.from_bytes(state, identity)
        if prekeys is None:
            prekeys = PrekeyStore.create(identity, rng=self.rng, now=self.clock.now())
            if self.store is not None:
                self.store.put_prekeys(prekeys.to_bytes())
                self.store.commit()
        elif prekeys.maintain(rng=self.rng, now=self.clock.now()) and self.store is not None:
            self.store.put_prekeys(prekeys.to_bytes())
            self.store.commit()
        return prekeys

    async def _listen(self) -> None:
        """Bind every path to one port number (UDP for QUIC, TCP for μTCP)."""
        attempts = _PORT_ATTEMPTS if self._requested_port == 0 else 1
        last: Exception | None = None
        for _ in range(attempts):
            port = self._requested_port
            started: dict[str, Transport] = {}
            try:
                for path in self.paths:
                    transport = self._make_transport(path)
                    port = await transport.start(Bridge(self, path), self._host, port)
                    started[path] = transport
            except TransportFailed as error:
                last = error
                for transport in started.values():
                    await transport.close()
                continue
            self.transports = started
            self.port = port
            return
        raise TransportFailed(
            f"cannot listen on {format_address(self._host, self._requested_port)}: {last}"
        )

    def _make_transport(self, path: str) -> Transport:
        if path == "quic":
            return QuicTransport(
                connect_timeout=self.connect_timeout, idle_timeout=self.quic_idle_timeout
            )
        return TcpTransport(connect_timeout=self.connect_timeout)

    async def rebind(self, listen: str) -> str:
        """Move this node to another address (an interface or port change,
        as after a network switch): listen there, close the old sockets,
        and announce MIGRATE on every session.  Peers validate the new
        address by PATH_CHALLENGE before they send data there; keys stay.
        Returns the new address."""
        host, port = parse_address(listen, allow_zero_port=True)
        old_host, old_port, old = self._host, self._requested_port, self.transports
        self._host, self._requested_port = host, port
        try:
            await self._listen()
        except BaseException:
            self._host, self._requested_port = old_host, old_port
            self.transports = old
            raise
        for transport in old.values():
            await transport.close()
        if self.discovery is not None:
            self.discovery.responder.listen_address = self.address
        self.manager.local_address_changed(self.address)
        _log.info("node %s moved to %s", self.did, self.address)
        self.kick()
        return self.address

    async def _close_transports(self) -> None:
        transports, self.transports = self.transports, {}
        for transport in transports.values():
            await transport.close()

    # ------------------------------------------------------------------
    # introspection

    @property
    def manager(self) -> SessionManager:
        if self._manager is None:
            raise InvalidState("the node is not started: use 'async with Node(...)' or start()")
        return self._manager

    @property
    def running(self) -> bool:
        return self._running

    @property
    def did(self) -> str:
        if self._identity is None:
            raise InvalidState("the node is not started (its identity is loaded at start)")
        return self._identity.did_text

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            raise InvalidState("the node is not started (its identity is loaded at start)")
        return self._identity

    @property
    def address(self) -> str:
        """Where peers reach this node on every path (``host:port``)."""
        return format_address(self._host, self.port)

    def sessions(self) -> list[SessionHandle]:
        return [self._handle(s) for s in self.manager.sessions.values()]

    def session(self, peer_did: str) -> SessionHandle | None:
        session = self.manager.session(peer_did)
        return None if session is None else self._handle(session)

    def add_listener(self, listener: NodeListener) -> None:
        """Call ``listener`` with every session event and path change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: NodeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def add_peer(self, did: str, address: str) -> None:
        """Tell the node where ``did`` listens (``host:port``)."""
        parse_address(address)
        self.directory.add(did, address)

    # ------------------------------------------------------------------
    # sessions

    async def establish(
        self, peer_did: str, address: str | None = None, *, timeout: float = 15.0
    ) -> SessionHandle:
        """An established session with ``peer_did`` (PQXDH, or resumption
        if a ticket is stored), reusing one that exists.  Raises
        AuthenticationFailed, PeerQuarantined, TransportFailed (no address,
        peer unreachable on every path) or SessionTimeout; a session this
        call created and that never came up is removed again."""
        if address is not None:
            self.add_peer(peer_did, address)
        manager = self.manager
        existing = manager.session(peer_did)
        if existing is None and self.directory.address_of(peer_did) is None:
            if not (self.discovery is not None and self.discovery_targets):
                Did.parse(peer_did)
                raise TransportFailed(
                    f"no address is known for {peer_did}: pass one (host:port, CLI --to) "
                    "or configure discovery targets"
                )
            if await self.discover(peer_did) is None:
                raise TransportFailed(
                    f"no address is known for {peer_did}, and no node answered for it at "
                    f"{', '.join(self.discovery_targets)}"
                )
        session = existing or manager.establish(peer_did)
        self.kick()
        handle = self._handle(session)
        try:
            await handle.established(timeout)
        except TransportFailed as error:
            if existing is None and not session.established_once:
                self._forget(session)
            target = self.directory.address_of(peer_did)
            reasons = self._unreachable(target) if target else ""
            raise TransportFailed(f"{error}{reasons}") from None
        except Exception:
            if existing is None and not session.established_once:
                self._forget(session)
            raise
        return handle

    async def discover(
        self, peer_did: str, targets: Sequence[str] | None = None, timeout: float = 2.0
    ) -> str | None:
        """Ask ``targets`` (default: ``discovery_targets``; unicast or
        broadcast ``host:port`` of discovery endpoints) who has
        ``peer_did``; a signed answer's address is learned and returned."""
        if self.discovery is None:
            raise InvalidState("this node has no discovery endpoint: pass Node(discovery=...)")
        found = await self.discovery.who_has(
            peer_did, list(targets or self.discovery_targets), timeout
        )
        if found is not None:
            self.directory.add(peer_did, found)
        return found

    def _unreachable(self, address: str) -> str:
        reasons = [f"{p}: {r}" for (a, p), r in self.path_errors.items() if a == address]
        if reasons:
            return f" ({address} unreachable: {'; '.join(reasons)})"
        return f" (no answer from {address}: is a node running there?)"

    def _forget(self, session: Session) -> None:
        if not session.closed:
            session.close("establishment abandoned")
        self._handles.pop(session.peer_did, None)
        self.kick()

    async def accept(self, timeout: float | None = None) -> SessionHandle:
        """The next session a peer opened with this node."""
        if timeout is None:
            return await self._incoming.get()
        return await asyncio.wait_for(self._incoming.get(), timeout)

    def _handle(self, session: Session) -> SessionHandle:
        handle = self._handles.get(session.peer_did)
        if handle is None or handle.session is not session:
            handle = self._handles[session.peer_did] = SessionHandle(self, session)
        return handle

    # ------------------------------------------------------------------
    # the pump

    def kick(self) -> None:
        """Drain the manager at the end of this loop iteration (once)."""
        if not self._kicked and self._loop is not None and self._running:
            self._kicked = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._kicked = False
        manager = self._manager
        if manager is None:
            return
        try:
            outgoing = manager.datagrams_to_send()
        except StoreError:
            _log.critical("the store failed: nothing more is sent", exc_info=True)
            raise
        faults, transports = self.faults, self.transports
        for packet in outgoing:
            transport = transports.get(packet.path)
            if transport is None or faults.drops(packet.address, packet.path):
                continue
            transport.send(packet.address, packet.data)
        self._dispatch(manager.events())
        if self.queue_waiters:
            for handle in list(self.queue_waiters):
                handle.notify()
        self._arm_timer()

    def _dispatch(self, events: list[SessionEvent]) -> None:
        for event in events:
            if isinstance(event, StateChanged | MessagesAvailable):
                handle = self._handles.get(event.peer_did)
                if handle is not None:
                    handle.notify()
            elif isinstance(event, SessionAccepted):
                session = self.manager.session(event.peer_did)
                if session is not None:
                    self._incoming.put_nowait(self._handle(session))
            elif isinstance(event, PathMigrated):
                self.directory.learn(event.peer_did, event.address)
                handle = self._handles.get(event.peer_did)
                if handle is not None:
                    handle.notify()
            elif isinstance(event, SessionClosedEvent):
                handle = self._handles.pop(event.peer_did, None)
                if handle is not None:
                    handle.notify(event.reason)
            self._tell(event)

    def _tell(self, event: NodeEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("a node listener raised on %s", type(event).__name__)

    def _arm_timer(self) -> None:
        deadline = self.manager.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            delay = max(0.0, deadline - self.clock.now())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._running:
            self.manager.tick()
            self._pump()

    # ------------------------------------------------------------------
    # transport callbacks

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        if not self._running or self.faults.drops(address, path):
            return
        self.manager.receive_datagram(data, address, path)
        self.kick()

    def path_up(self, address: str, path: str) -> None:
        if not self._running:
            return
        self.path_errors.pop((address, path), None)
        probe = self._probes.pop(address, None) if path == "quic" else None
        if probe is not None:
            probe.cancel()
        self.manager.connectivity(address, path, True)
        self._tell(PathChanged(address, path, True))
        self.kick()

    def path_down(self, address: str, path: str, reason: str) -> None:
        if not self._running:
            return
        self.path_errors[(address, path)] = reason
        self.manager.connectivity(address, path, False)
        self._tell(PathChanged(address, path, False, reason))
        if path == "quic" and address not in self._probes and self._loop is not None:
            self._probes[address] = self._loop.call_later(
                self.quic_probe_interval, self._probe_quic, address
            )
        self.kick()

    def _probe_quic(self, address: str) -> None:
        """QUIC was lost to ``address``: try it again while a session there
        uses another path; a success reports path_up and the core moves the
        session back to QUIC."""
        self._probes.pop(address, None)
        transport = self.transports.get("quic")
        if not self._running or transport is None:
            return
        if any(s.address == address for s in self.manager.sessions.values()):
            transport.probe(address)
            if self._loop is not None:
                self._probes[address] = self._loop.call_later(
                    self.quic_probe_interval, self._probe_quic, address
                )
