"""The asyncio node: identity, store, transports and the session manager.

A :class:`Node` is the thin runtime of DESIGN.md §1.  It owns

* the identity and private prekeys (from the store, or given),
* the store (SQLite file, or in memory, or none),
* one transport per path (QUIC first, μTCP second), all listening on the
  same port number, so one ``host:port`` reaches the node on every path,
* the core :class:`~l2session.core.management.manager.SessionManager`,

and does only four things: feed each packet a transport delivers into the
manager, drain the manager's packets onto the transports, turn the
manager's events into wake-ups for waiting application code, and arm one
timer from ``get_timer()``.  Packets that arrive in one loop iteration are
processed together and drained once (:meth:`kick`), so a burst shares one
store commit and one write per connection.

Path health comes from the transports as edges (connected, lost) and goes
to ``SessionManager.connectivity``, which is how a session falls back from
QUIC to μTCP; QUIC is probed again every ``quic_probe_interval`` seconds
while it is down, and the core moves the session back when it works.  A
QUIC connection that goes silent while it should be speaking is declared
down after ``quic_stall_timeout`` seconds (runtime/stall.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from l2session.core.config import SessionConfig
from l2session.core.events import (
    MessagesAvailable,
    PathMigrated,
    SessionAccepted,
    SessionClosedEvent,
    SessionEvent,
    StateChanged,
)
from l2session.core.link.session import Session
from l2session.core.management.context import Context, LocalKeys
from l2session.core.management.federated import FederationConfig
from l2session.core.management.manager import SessionManager
from l2session.crypto.rng import RandomSource
from l2session.errors import (
    BridgeUnavailable,
    ConfigError,
    InvalidState,
    PeerRefused,
    SessionClosed,
    SessionTimeout,
    StoreError,
    TransportFailed,
)
from l2session.identity.identity import Identity
from l2session.identity.resolver import DidResolver, checked_resolve, default_resolver
from l2session.membrane.membrane import Membrane
from l2session.membrane.policy import MembranePolicy
from l2session.membrane.trust_statement import TrustStatement
from l2session.runtime import policyfile
from l2session.runtime.clock import SystemClock
from l2session.runtime.directory import AddressBook
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.events import Bridge, NodeEvent, NodeListener
from l2session.runtime.faults import Faults
from l2session.runtime.federation import FederatedHandle, Federation
from l2session.runtime.handle import SessionHandle
from l2session.runtime.limits import NodeLimits
from l2session.runtime.listening import bind_paths
from l2session.runtime.paths import PathMonitor
from l2session.runtime.reachability import Reachability
from l2session.runtime.reachability import check as check_reachability
from l2session.runtime.relaying import Relaying
from l2session.runtime.stall import StallWatch
from l2session.runtime.storage import NodeStorage
from l2session.runtime.traffic import Traffic
from l2session.store.durability import Durability, check_durability
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore
from l2session.transports.address import format_address, parse_address
from l2session.transports.base import Transport
from l2session.transports.discovery import DiscoveryEndpoint
from l2session.transports.quic import QuicTransport
from l2session.transports.relay import relay_address
from l2session.transports.relay import split as relay_split
from l2session.transports.relay_server import RelayLimits
from l2session.transports.tcp import TcpTransport

_log = logging.getLogger("l2session.node")

#: Paths in order of preference (the core falls back along this order).
DEFAULT_PATHS: Final = ("quic", "tcp")
#: How a peer reached through a relay is written (``relay://host:port``).
RELAY_SCHEME: Final = "relay://"
#: Sessions opened by peers and not yet taken by accept().
MAX_PENDING_ACCEPTS: Final = 1024


class Node:
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
        for target in discovery_targets:
            parse_address(target)
        self.discovery_targets = list(discovery_targets)
        self.discovery: DiscoveryEndpoint | None = None
        unknown = [p for p in paths if p not in DEFAULT_PATHS]
        if not paths or unknown or len(set(paths)) != len(paths):
            raise ConfigError(f"paths must be distinct names from {DEFAULT_PATHS}, got {paths!r}")
        if quic_probe_interval <= 0 or connect_timeout <= 0:
            raise ConfigError("connect_timeout and quic_probe_interval must be positive")
        if quic_stall_timeout is not None and not quic_stall_timeout > 0:
            raise ConfigError(
                f"quic_stall_timeout must be positive (or None: off), got {quic_stall_timeout!r}"
            )
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
        self.config = config or SessionConfig()
        race = self.config.path_race_delay
        if race is not None and connect_timeout <= race:
            raise ConfigError(
                f"connect_timeout ({connect_timeout!r}) must be longer than "
                f"SessionConfig.path_race_delay ({self.config.path_race_delay!r}): a path "
                "would be declared failed before the next one joins the race"
            )
        if limits is not None and not isinstance(limits, NodeLimits):
            raise ConfigError(f"limits must be a NodeLimits, got {type(limits).__name__}")
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
        # Heartbeats are the only traffic of an idle session: QUIC's idle
        # timeout must outlast several of them or the connection churns.
        self.quic_idle_timeout = (
            quic_idle_timeout
            if quic_idle_timeout is not None
            else max(30.0, 3 * self.config.heartbeat_interval)
        )
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
        self._handles: dict[str, SessionHandle] = {}
        #: Handles waiting for their queue to shrink (flush, send at the
        #: limit): acknowledgements raise no event, so each pump wakes them.
        self.queue_waiters: set[SessionHandle] = set()
        #: Sessions peers opened, for accept() (bounded: the oldest unaccepted
        #: is dropped from this list, not closed).
        self._incoming: deque[SessionHandle] = deque(maxlen=self.limits.max_pending_accepts)
        self._accepted = asyncio.Event()
        self._listeners: list[NodeListener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kicked = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
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

    async def check_reachability(self, targets: Sequence[str] | None = None) -> Reachability:
        """Ask discovery ``targets`` (default: ``discovery_targets``) where
        they see us and whether a new connection to our μTCP port gets
        through (runtime/reachability.py); the result is kept in
        :attr:`reachability` and shown by ``l2session sessions``."""
        if self.discovery is None:
            raise InvalidState("this node has no discovery endpoint: pass Node(discovery=...)")
        asked = list(targets or self.discovery_targets)
        if not asked:
            raise ConfigError("no discovery targets to ask")
        result = await check_reachability(self.discovery, asked, self.port, self.clock.now())
        self.reachability = result
        _log.info("node %s: %s", self.did, result.describe())
        return result

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
                self._handle(session)
            for did, address in self._given_peers.items():
                self.directory.learn(did, address)
                self._manager.redirect(did, address)

    def _reset(self) -> None:
        """Fresh per-run state (a node object can be started again)."""
        self._handles = {}
        self._incoming = deque(maxlen=self.limits.max_pending_accepts)
        self._accepted = asyncio.Event()
        self.paths_seen = PathMonitor(self, self.limits.max_tracked_addresses)
        self.stall_watch = (
            None
            if self.quic_stall_timeout is None
            else StallWatch(self, self.quic_stall_timeout, self.limits.max_tracked_addresses)
        )
        self.queue_waiters = set()
        self.relaying = Relaying(self, *self._relay_args)
        self._timer = None
        self._timer_at = None
        self._kicked = False
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
        if self._manager is not None:
            with contextlib.suppress(StoreError):
                self._pump()  # what is queued is committed and handed to the transports
        await asyncio.sleep(0)
        try:
            await self._teardown()
        finally:
            # Whatever closing the store raised, the node is stopped: its
            # waiters wake and the CLI exits (issue 21: a failed store left
            # ``l2session node`` hanging).
            for handle in self._handles.values():
                handle.notify("the node stopped")
            self._accepted.set()
            self.stopped.set()

    async def _teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
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
            self._make_transport,
            partial(Bridge, self),
        )
        if self.relaying.client is not None:  # a rebind keeps the relay path
            self.transports["relay"] = self.relaying.client

    def _make_transport(self, path: str) -> Transport:
        limits = self.limits
        if path == "quic":
            return QuicTransport(
                connect_timeout=self.connect_timeout,
                idle_timeout=self.quic_idle_timeout,
                max_connections=limits.quic_max_connections,
                max_queue=limits.quic_max_queue,
            )
        return TcpTransport(
            connect_timeout=self.connect_timeout,
            advertise=not self.outbound_only,
            max_connections=limits.tcp_max_connections,
            max_unidentified=limits.tcp_max_unidentified,
            max_buffered_bytes=limits.tcp_max_buffered_bytes,
            max_queue_bytes=limits.tcp_max_queue_bytes,
            hello_timeout=limits.tcp_hello_timeout,
            frame_timeout=limits.tcp_frame_timeout,
        )

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
        if not self._running or self.faults.drops(address, path):
            return
        if self.relaying.intercept(data, address, path):
            self.kick()
            return
        if self.stall_watch is not None:
            self.stall_watch.heard(address, path)
        self.traffic.received(address, len(data), self.clock.now())
        if self.manager.receive_datagram(data, address, path):
            transport = self.transports.get(path)
            if transport is not None:
                transport.confirm(address)  # μTCP: this connection is the peer's
        self.kick()

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

    def federate(self, peer: str) -> FederatedHandle:
        """The federated session with a foreign peer (``nostr:npub1…``,
        an npub or hex key), opened if new; sends queue until a relay is up.
        Raises InvalidForeignIdentity, or BridgeUnavailable without the bridge."""
        if self.federation is None:
            raise BridgeUnavailable(
                f"this node runs no bridge for {peer!r}: start it with bridges=… "
                "(CLI: l2session node --nostr-relay ws://…)"
            )
        return self.federation.open(peer)

    def session(self, peer_did: str) -> SessionHandle | None:
        session = self.manager.session(peer_did)
        return None if session is None else self._handle(session)

    def add_listener(self, listener: NodeListener) -> None:
        """Call ``listener`` with every session event and path change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: NodeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def trust(self, did: str, weight: float) -> None:
        """Sign and keep this node's trust in ``did`` (-1..1; 0 revokes):
        an edge of the QVL trust graph the Membrane scores peers with."""
        if self.membrane is None:
            raise InvalidState("the node has no Membrane: start it with a policy")
        now = self.clock.now()
        at = policyfile.next_issue_time(self.membrane.trust, self.did, did, now)
        self.membrane.add_trust(TrustStatement.sign(self.identity, did, weight, at), now)
        self.manager.commit()

    def reload_trust(self) -> None:
        """Read the trust graph from the store again (after ``l2session
        trust`` changed it from another process)."""
        if self.membrane is not None:
            self.membrane.trust = policyfile.load_trust(self.store, self.did, self.clock.now())

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

    def add_relay_route(self, peer_did: str, relay: str) -> None:
        """Offer the session with ``peer_did`` a route through ``relay``
        (``host:port``): validated like any route, then a standby it fails
        over to (or, with another multipath strategy, shares traffic with)."""
        self.manager.add_route(peer_did, relay_address(relay, peer_did), "relay")
        self.kick()

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
        manager = self.manager
        existing = manager.session(peer_did)
        target = self.directory.address_of(peer_did)
        if existing is None and target is not None:
            self.paths_seen.forget_errors(target)  # reasons from earlier attempts
        if existing is None and self.directory.address_of(peer_did) is None:
            if not (self.discovery is not None and self.discovery_targets):
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
        tcp = self.transports.get("tcp")
        if (
            existing is None
            and tcp is not None
            and session.address is not None
            and relay_split(session.address) is None  # a relayed route: no direct dial
            and not self._outbound_only(session.address)  # never dial an ephemeral port
        ):
            # QUIC is tried first and takes connect_timeout to give up; a
            # μTCP connect refused at once settles that no node listens
            # there (every path shares the port), so ask it in parallel.
            tcp.probe(session.address)
        self.kick()
        handle = self._handle(session)

        def nothing_listens() -> str | None:
            if session.established_once or session.address is None:
                return None
            return self.paths_seen.nothing_listens(session.address)

        try:
            await self._established_or_refused(handle, target, timeout, give_up=nothing_listens)
        except PeerRefused:
            if existing is None and not session.established_once:
                self._forget(session)
            raise
        except TransportFailed as error:
            if existing is None and not session.established_once:
                self._forget(session)
            target = self.directory.address_of(peer_did)
            reasons = self._unreachable(target) if target and nothing_listens() is None else ""
            raise TransportFailed(f"{error}{reasons}") from None
        except SessionTimeout:
            if existing is not None or session.established_once:
                raise
            self._forget(session)
            target = self.directory.address_of(peer_did)
            raise SessionTimeout(
                f"{peer_did} did not answer at {target} within {timeout:g} s: no node runs "
                "there, or the one there has another DID, or it needs longer (--timeout)"
            ) from None
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

    async def _established_or_refused(
        self,
        handle: SessionHandle,
        target: str | None,
        timeout: float,
        give_up: Callable[[], str | None] | None = None,
    ) -> None:
        """``handle.established(timeout)``, or PeerRefused as soon as the
        peer's node refused us on every path (it is at a limit: waiting
        for the handshake timeout would only hide why)."""
        if target is None:
            await handle.established(timeout, give_up=give_up)
            return
        refused = self.paths_seen.refusal(target)

        def settled() -> str | None:
            # path_down wakes the handle after setting the event, so the
            # wait below ends at once (no task to cancel: a cancellation
            # racing the handle's own wake-up could be lost).
            if refused.is_set():
                return "refused"
            return None if give_up is None else give_up()

        try:
            await handle.established(timeout, give_up=settled)
        except TransportFailed:
            if not refused.is_set():
                raise
        else:
            return
        finally:
            self.paths_seen.refusal_done(target)
        reasons = "; ".join(f"{p}: {r}" for p, r in self.paths_seen.errors_for(target))
        raise PeerRefused(f"the node at {target} refused the connection ({reasons})")

    def _unreachable(self, address: str) -> str:
        reasons = [f"{p}: {r}" for p, r in self.paths_seen.errors_for(address)]
        if reasons:
            return f" ({address} unreachable: {'; '.join(reasons)})"
        return (
            f" (no l2session node answered at {address}: either none runs there, or the "
            "one there has another DID; check the address and the DID)"
        )

    def wake(self, address: str) -> None:
        """Wake the waiters of every session at ``address`` (a path to it
        changed: an establishment may give up early)."""
        for handle in self._handles.values():
            if handle.session.address == address:
                handle.notify()

    def _forget(self, session: Session) -> None:
        if not session.closed:
            session.close("establishment abandoned")
        self._handles.pop(session.peer_did, None)
        self.kick()

    async def accept(self, timeout: float | None = None) -> SessionHandle:
        """The next session a peer opened with this node (the last
        ``limits.max_pending_accepts`` are kept).  Raises SessionTimeout, or
        SessionClosed once the node stops."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            while self._incoming:
                handle = self._incoming.popleft()
                if not handle.closed:
                    return handle
            if not self._running:
                raise SessionClosed("the node stopped")
            self._accepted.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise SessionTimeout(f"no peer opened a session within {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._accepted.wait(), remaining)

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
        store, observer = self.store, self.commit_observer
        commits = 0 if store is None else store.commits
        started = time.perf_counter()
        try:
            outgoing = manager.datagrams_to_send()
            if observer is not None and store is not None and store.commits != commits:
                observer(time.perf_counter() - started)
        except StoreError as error:
            self._fail(error)
            return
        try:
            faults, transports, watch = self.faults, self.transports, self.stall_watch
            now = self.clock.now() if outgoing else 0.0
            for packet in outgoing:
                transport = transports.get(packet.path)
                if transport is None or faults.drops(packet.address, packet.path):
                    continue
                transport.send(packet.address, packet.data)
                self.traffic.sent(packet.address, len(packet.data), now)
                if watch is not None and packet.path == "quic":
                    watch.sent(packet.address)
            self._dispatch(manager.events())
            if self.queue_waiters:
                for handle in list(self.queue_waiters):
                    handle.notify()
        finally:
            self._arm_timer()  # whatever happened, the timers keep running

    def _fail(self, error: StoreError) -> None:
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

    def _dispatch(self, events: list[SessionEvent]) -> None:
        for event in events:
            if isinstance(event, StateChanged | MessagesAvailable):
                handle = self._handles.get(event.peer_did)
                if handle is not None:
                    handle.notify()
            elif isinstance(event, SessionAccepted):
                session = self.manager.session(event.peer_did)
                if session is not None:
                    self._incoming.append(self._handle(session))
                    self._accepted.set()
            elif isinstance(event, PathMigrated):
                self.directory.learn(event.peer_did, event.address)
                handle = self._handles.get(event.peer_did)
                if handle is not None:
                    handle.notify()
            elif isinstance(event, SessionClosedEvent):
                handle = self._handles.pop(event.peer_did, None)
                if handle is not None:
                    handle.notify(event.reason)
            self.tell(event)

    def tell(self, event: NodeEvent) -> None:
        """Pass ``event`` to every listener (one that raises is logged)."""
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
            try:
                self.manager.tick()
            finally:
                self._pump()
