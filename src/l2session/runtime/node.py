"""The asyncio node: identity, store, transports and the session manager.

A :class:`Node` is the thin runtime of DESIGN.md §1.  It owns

* the identity and private prekeys (from the store, or given),
* the store (SQLite file, or in memory, or none),
* one transport per path (QUIC first, μTCP second), all listening on the
  same port number, so one ``host:port`` reaches the node on every path,
* the core :class:`~l2session.core.management.manager.SessionManager`,

and starts, rebinds and stops them.  The work is its parts' (each reaches
the node through a narrow port, docs/ARCHITECTURE.md): the packet pump
(runtime/pump.py) feeds each packet into the manager, drains the manager's
packets onto the transports once per loop iteration (:meth:`kick`) and
arms one timer from ``get_timer()``; the handle table (runtime/sessions.py)
turns the manager's events into wake-ups for waiting application code;
runtime/establishing.py waits for a handshake; runtime/node_ops.py holds
the operator's calls (discovery, trust, relay routes, federation).

Path health comes from the transports as edges (connected, lost) and goes
to ``SessionManager.connectivity`` (runtime/paths.py), which is how a
session falls back from QUIC to μTCP; QUIC is probed again every
``quic_probe_interval`` seconds while it is down.  A QUIC connection that
goes silent while it should be speaking is declared down after
``quic_stall_timeout`` seconds (runtime/stall.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from l2session.core.config import SessionConfig
from l2session.core.management.context import Context, LocalKeys
from l2session.core.management.federated import FederationConfig
from l2session.core.management.manager import SessionManager
from l2session.crypto.rng import RandomSource
from l2session.errors import ConfigError, InvalidState, StoreError
from l2session.identity.identity import Identity
from l2session.identity.resolver import DidResolver, checked_resolve, default_resolver
from l2session.membrane.membrane import Membrane
from l2session.membrane.policy import MembranePolicy
from l2session.runtime import establishing, policyfile
from l2session.runtime.clock import SystemClock
from l2session.runtime.directory import AddressBook
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.events import Bridge, NodeEvent, NodeListener
from l2session.runtime.faults import Faults
from l2session.runtime.federation import Federation
from l2session.runtime.handle import SessionHandle
from l2session.runtime.limits import NodeLimits
from l2session.runtime.listening import bind_paths, make_transport
from l2session.runtime.node_ops import NodeOperations
from l2session.runtime.options import DEFAULT_PATHS, RELAY_SCHEME, check_options
from l2session.runtime.options import quic_idle_timeout as idle_timeout
from l2session.runtime.paths import PathMonitor
from l2session.runtime.pump import Pump
from l2session.runtime.reachability import Reachability
from l2session.runtime.relaying import Relaying
from l2session.runtime.sessions import HandleTable
from l2session.runtime.stall import StallWatch
from l2session.runtime.storage import NodeStorage
from l2session.runtime.traffic import Traffic
from l2session.store.durability import Durability, check_durability
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore
from l2session.transports.address import format_address, parse_address
from l2session.transports.base import Transport
from l2session.transports.discovery import DiscoveryEndpoint
from l2session.transports.relay import relay_address
from l2session.transports.relay_server import RelayLimits

_log = logging.getLogger("l2session.node")

#: Sessions opened by peers and not yet taken by accept().
MAX_PENDING_ACCEPTS: Final = 1024


class Node(NodeOperations):
    """A running l2session node (an async context manager; see module doc).

    ``store``: a path (an SQLite file, created 0600 if missing), an open
    :class:`SqliteStore` or :class:`MemoryStore`, or None (nothing
    persisted; an existing empty file is refused).  ``durability`` (for a
    path): ``"power"`` (default) fsyncs before every packet that makes a
    promise, so acknowledgements survive power loss; ``"process"`` saves
    those fsyncs but **a power cut may then lose messages the peers were
    told had arrived, and let a replayed handshake spend a ticket or
    one-time prekey twice** (docs/STORE.md).  ``identity``: given, else
    loaded from the SQLite store (``l2session init`` creates one), else
    generated for this run -- unless ``create_identity`` is False, as for
    ``l2session node``: then a store without one is refused.
    ``outbound_only``: this node is not reachable where it listens (behind
    a NAT or firewall): its μTCP HELLO says port 0, so peers route it by
    its live connections and never dial it; it reaches out itself.
    ``relays``: ``DID@host:port`` of relays to hold reservations on (peers
    then reach this node as ``relay://host:port``); ``relay=True`` serves
    as a relay itself, within ``relay_limits`` (runtime/relaying.py).
    ``limits``: the caps of the transports and runtime tables
    (runtime/limits.py, docs/NETWORK.md).
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
        quic_stall_timeout: float | None = 5.0,
        discovery: str | None = None,
        discovery_targets: Sequence[str] = (),
        rng: RandomSource | None = None,
        policy: MembranePolicy | str | Path | None = None,
        durability: Durability = "power",
        outbound_only: bool = False,
        relay: bool = False,
        relays: Sequence[str] = (),
        relay_limits: RelayLimits | None = None,
        create_identity: bool = True,
        limits: NodeLimits | None = None,
        bridges: Mapping[str, Mapping[str, Any]] | None = None,
        federation: FederationConfig | None = None,
    ) -> None:
        self._host, self._requested_port = parse_address(listen, allow_zero_port=True)
        self._discovery_at = (
            None if discovery is None else parse_address(discovery, allow_zero_port=True)
        )
        self.config = config or SessionConfig()
        check_options(
            paths=paths,
            config=self.config,
            connect_timeout=connect_timeout,
            quic_probe_interval=quic_probe_interval,
            quic_stall_timeout=quic_stall_timeout,
            discovery_targets=discovery_targets,
            limits=limits,
        )
        self.discovery_targets = list(discovery_targets)
        self.discovery: DiscoveryEndpoint | None = None
        #: The capability policy (a file is read now, so errors come early).
        self.policy = policyfile.load_policy(policy) if isinstance(policy, str | Path) else policy
        #: With a policy, the Membrane that screens peers' requests (from start).
        self.membrane: Membrane | None = None
        self._storage = NodeStorage(
            store, check_durability(durability), create_identity=create_identity
        )
        self._passphrase = passphrase
        self._identity = identity
        self.paths = paths
        #: Caps of the transports and runtime tables (runtime/limits.py).
        self.limits = limits or NodeLimits()
        self.directory = AddressBook()
        for peer_did, peer_address in (peers or {}).items():
            self._learn_peer(peer_did, peer_address)  # host:port or relay://host:port
        #: Addresses the operator gave (``--peer``): they win over the
        #: addresses stored sessions remember (the peer may have moved).
        self._given_peers = {
            did: address
            for did, address in (peers or {}).items()
            if not address.startswith(RELAY_SCHEME)
        }
        self.resolver = resolver or default_resolver()
        self.connect_timeout = connect_timeout
        self.outbound_only = outbound_only
        #: The relay path, and the relay service when ``relay`` is set.
        self._relay_args = (list(relays), relay, relay_limits)
        self.relaying = Relaying(self, *self._relay_args)
        self.quic_idle_timeout = idle_timeout(quic_idle_timeout, self.config)
        self.quic_probe_interval = quic_probe_interval
        #: Silence after which a QUIC connection that should be speaking is
        #: declared down (runtime/stall.py); None: wait for the idle timeout.
        self.quic_stall_timeout = quic_stall_timeout
        self.rng: RandomSource = rng or SystemRandom()
        self.clock = SystemClock()
        self.faults = Faults()
        #: Packets and bytes each way by peer address (runtime/traffic.py).
        self.traffic = Traffic()
        #: Told the duration (seconds) of each pump that committed the store
        #: (the metrics exporter's commit latency histogram).
        self.commit_observer: Callable[[float], None] | None = None
        #: Why the node stopped on its own (a store failure), else None.
        self.failure: StoreError | None = None
        #: Set when the node stops (by stop() or on a failure).
        self.stopped = asyncio.Event()
        self.transports: dict[str, Transport] = {}
        self.port = 0
        self.store: SqliteStore | MemoryStore | None = None
        self._manager: SessionManager | None = None
        self._listeners: list[NodeListener] = []
        #: The session handles, accept queue and queue waiters (per run).
        self.handles = HandleTable(self, self.limits.max_pending_accepts, self.tell)
        #: The packet pump of the current run (runtime/pump.py).
        self._pump: Pump | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.paths_seen = PathMonitor(self, self.limits.max_tracked_addresses)
        self.stall_watch: StallWatch | None = None
        #: What peers told us about our reachability (runtime/reachability.py).
        self.reachability = Reachability()
        self._reachability_task: asyncio.Task[None] | None = None
        self._running = False
        #: Bridges to foreign networks, by protocol name (``{"nostr":
        #: {"relays": [...]}}``), started with the node (docs/FEDERATION.md).
        self.bridge_options = dict(bridges or {})
        self.federation_config = federation or FederationConfig()
        self.federation: Federation | None = None

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
        """Open (and lock) the store, load the identity, listen, and resume
        stored sessions.  Raises StoreError subclasses (StoreLocked: another
        node runs on this store), TransportFailed (port in use),
        ConfigError; on failure everything opened so far is closed."""
        if self._running:
            raise InvalidState("the node is already running")
        self._loop = asyncio.get_running_loop()
        self._reset()
        try:
            await self._start()
        except BaseException:
            self._running = False
            await self._teardown()
            raise
        _log.info("node %s listening on %s (%s)", self.did, self.address, ", ".join(self.paths))
        if self.stall_watch is not None and "quic" in self.transports:
            self.stall_watch.start()
        if self.bridge_options:
            self.federation = Federation(self, self.bridge_options, self.federation_config)
            try:
                await self.federation.start()
            except BaseException:
                await self.stop()
                raise
        if self.discovery is not None and self.discovery_targets:
            self._reachability_task = asyncio.get_running_loop().create_task(
                self._check_in_background()
            )
        self.kick()

    async def _check_in_background(self) -> None:
        try:
            await self.check_reachability()
        except Exception:  # advice only: never let it take the node down
            _log.exception("the reachability check failed")

    async def _start(self) -> None:
        journal = self._storage.open()
        self.store = journal
        identity = self._identity = self._storage.identity(
            self._identity, self._passphrase, self.rng
        )
        prekeys = self._storage.prekeys(identity, self.rng, self.clock.now())
        guard = self._storage.replay_guard(self.clock.now(), self.config.handshake_max_skew)
        ctx = Context(
            rng=self.rng,
            time=self.clock,
            did_resolve=self.resolver,
            crypto_pqxdh=LocalKeys(identity, prekeys, guard),
            net_connect=self.directory,
            store=journal,
        )
        self._manager = SessionManager(ctx, config=self.config, paths=self.paths)
        assert self._loop is not None  # start() set it
        self._pump = Pump(self, self._manager, self.handles, self._loop)
        self._manager.path_progress = self._path_progress
        self._manager.outbound_only = self._outbound_only
        self._manager.fixed_path = self.relaying.fixed_path
        self._manager.reflexive = self.relaying.reflexive
        if self.policy is not None:
            now = ctx.now()
            self.membrane = policyfile.node_membrane(self.policy, journal, identity.did_text, now)
            self._manager.gate = self.membrane
        await self._listen()
        await self.relaying.start()
        self.transports["relay"] = self.relaying.client_transport()
        if self._discovery_at is not None:
            self.discovery = await DiscoveryEndpoint.open(
                *self._discovery_at,
                identity=identity,
                listen_address=self.address,
                resolver=self.resolver,
                broadcast=True,
                rng=self.rng,
            )
        self._running = True
        if journal is not None:
            for session in self._manager.restore():
                if session.address is not None:
                    self.directory.learn(session.peer_did, session.address)
                self.handles.handle(session)
            for did, address in self._given_peers.items():
                self.directory.learn(did, address)
                self._manager.redirect(did, address)

    def _reset(self) -> None:
        """Fresh per-run state (a node object can be started again)."""
        self.handles = HandleTable(self, self.limits.max_pending_accepts, self.tell)
        self._pump = None
        self.paths_seen = PathMonitor(self, self.limits.max_tracked_addresses)
        self.stall_watch = (
            None
            if self.quic_stall_timeout is None
            else StallWatch(self, self.quic_stall_timeout, self.limits.max_tracked_addresses)
        )
        self.relaying = Relaying(self, *self._relay_args)
        self.failure = None
        self.stopped = asyncio.Event()

    async def stop(self) -> None:
        """Stop listening and close the store.  Persistent sessions are not
        closed: they resume when the node starts again.  Waiting calls on
        its sessions raise SessionClosed."""
        if not self._running:
            return
        self._running = False
        if self.federation is not None:
            await self.federation.stop()
            self.federation = None
        if self._pump is not None:
            with contextlib.suppress(StoreError):
                self._pump.run()  # what is queued is committed and handed to the transports
        await asyncio.sleep(0)
        try:
            await self._teardown()
        finally:
            # Whatever closing the store raised, the node is stopped: its
            # waiters wake and the CLI exits (issue 21: a failed store left
            # ``l2session node`` hanging).
            self.handles.stopped()
            self.stopped.set()

    async def _teardown(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._reachability_task is not None:
            self._reachability_task.cancel()
            self._reachability_task = None
        self.paths_seen.cancel_probes()
        await self.relaying.close()
        if self.stall_watch is not None:
            self.stall_watch.cancel()
        if self.discovery is not None:
            self.discovery.close()
            self.discovery = None
        await self._close_transports()
        try:
            self._storage.close()
        except StoreError:
            if self.failure is None:
                raise
            # The store already failed (``failure`` says how): its final
            # commit failing too is the same failure, not news.
        finally:
            self.store = None

    async def _listen(self) -> None:
        """Bind every path to one port number (runtime/listening.py)."""
        self.transports, self.port = await bind_paths(
            self.paths,
            self._host,
            self._requested_port,
            partial(
                make_transport,
                limits=self.limits,
                connect_timeout=self.connect_timeout,
                quic_idle_timeout=self.quic_idle_timeout,
                advertise=not self.outbound_only,
            ),
            partial(Bridge, self),
        )
        if self.relaying.client is not None:  # a rebind keeps the relay path
            self.transports["relay"] = self.relaying.client

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
        if self.stall_watch is not None:
            self.stall_watch.reset()
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

    def _outbound_only(self, address: str) -> bool:
        return any(not t.dialable(address) for t in self.transports.values())

    def _path_progress(self, address: str, path: str) -> bool:
        transport = self.transports.get(path)
        return transport is not None and transport.progressed(address)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the node runs on (None before start)."""
        return self._loop

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        """A transport delivered a packet (see :class:`Bridge`)."""
        if self._pump is not None:
            self._pump.receive(data, address, path)

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
        return [self.handles.handle(s) for s in self.manager.sessions.values()]

    def session(self, peer_did: str) -> SessionHandle | None:
        session = self.manager.session(peer_did)
        return None if session is None else self.handles.handle(session)

    def add_listener(self, listener: NodeListener) -> None:
        """Call ``listener`` with every session event and path change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: NodeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _learn_peer(self, did: str, address: str) -> bool:
        """Put ``address`` in the address book; True for a relay route
        (``relay://host:port``: the peer is reached through that relay)."""
        if address.startswith(RELAY_SCHEME):
            self.directory.learn(did, relay_address(address[len(RELAY_SCHEME) :], did))
            return True
        parse_address(address)
        self.directory.add(did, address)
        return False

    def add_peer(self, did: str, address: str) -> bool:
        """Tell the node where ``did`` listens (``host:port``), or through
        which relay it is reached (``relay://host:port``): the address
        book is updated, and a session with ``did`` that carries no traffic
        (failed, suspended, degraded, still handshaking) moves to a direct
        address and retries at once (True).  A working session keeps its
        authenticated route and is offered the address as a new one (False);
        see :meth:`SessionManager.redirect`."""
        if self._learn_peer(did, address):
            return False
        if self._manager is None:
            return False
        self.paths_seen.forget_errors(address)
        moved = self._manager.redirect(did, address)
        self.kick()
        return moved

    def forget_peer(self, did: str) -> bool:
        """Drop ``did`` from the address book and close its session (queued
        messages included): ``l2session peer forget``.  Whether there was
        anything to forget."""
        known = self.directory.forget(did)
        return self.close_session(did, "peer forgotten by the operator") or known

    def close_session(self, did: str, reason: str = "closed by the operator") -> bool:
        """Close the session with ``did`` (the peer is told, best effort);
        its stored state and queue are dropped.  Whether there was one."""
        session = self.manager.session(did)
        if session is None:
            return False
        session.close(reason)
        self.kick()
        return True

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
        checked_resolve(self.resolver, peer_did)  # a DID we cannot verify fails here
        if self._identity is not None and peer_did == self._identity.did_text:
            raise ConfigError(f"{peer_did} is this node's own DID; a session needs another node")
        if address is not None:
            self.add_peer(peer_did, address)
        return await establishing.establish(self, peer_did, timeout)

    def wake(self, address: str) -> None:
        """Wake the waiters of every session at ``address`` (a path to it
        changed: an establishment may give up early)."""
        self.handles.wake(address)

    async def accept(self, timeout: float | None = None) -> SessionHandle:
        """The next session a peer opened with this node (the last
        ``limits.max_pending_accepts`` are kept).  Raises SessionTimeout, or
        SessionClosed once the node stops."""
        return await self.handles.accept(timeout)

    # ------------------------------------------------------------------
    # the pump

    def kick(self) -> None:
        """Drain the manager at the end of this loop iteration (once)."""
        if self._pump is not None:
            self._pump.kick()

    @property
    def queue_waiters(self) -> set[SessionHandle]:
        """Handles waiting for their queue to shrink (runtime/sessions.py)."""
        return self.handles.queue_waiters

    @property
    def waiting(self) -> set[SessionHandle]:
        """Handles with a coroutine waiting on them (runtime/sessions.py)."""
        return self.handles.waiting

    def store_failed(self, error: StoreError) -> None:
        """The store cannot commit: nothing may leave (write-ahead), so the
        node stops and says why (``failure``; the CLI exits 1)."""
        if self.failure is None:
            self.failure = error
            _log.critical(
                "the store failed, stopping the node: %s",
                error,
                extra={"l2session": {"event": "store_failed"}},
            )
            if self._loop is not None and self._running:
                self._loop.create_task(self.stop())

    def tell(self, event: NodeEvent) -> None:
        """Pass ``event`` to every listener (one that raises is logged)."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("a node listener raised on %s", type(event).__name__)
