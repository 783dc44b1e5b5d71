"""The asyncio side of federated sessions: bridges, queues, delivery.

A :class:`Federation` belongs to a :class:`~l2session.runtime.node.Node`
started with ``bridges=``.  It starts each bridge, keeps one
:class:`~l2session.core.management.federated.FederatedSession` per foreign peer, and
makes the promises docs/FEDERATION.md writes down:

* **outbound**: a message is sealed into the foreign event and written to
  the store *before* it is first published; it stays until a relay accepts
  it, across relay outages and restarts (then the same event is published
  again, same id);
* **inbound**: an event is deduplicated by id against the stored, bounded
  set of seen ids, screened by the Membrane, and stored with its id in one
  transaction before the application can read it; a message the
  application took is deleted in one transaction, so it is read once;
* **order**: a backlog (what a relay stored while we were away) is sorted
  by the sender's sequence number (l2session senders) or its own time
  (others) before delivery; live messages are delivered as they arrive.

Every state change goes to the node's audit chain, and the Membrane's
decisions on foreign peers (Request ``deliver bridge://<protocol>``) too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from l2session.bridges.base import (
    Bridge,
    BridgeHooks,
    ForeignMessage,
    LinkStatus,
    Sealed,
    load_bridge,
)
from l2session.core.clock import TimeSource
from l2session.core.link.envelope import Request
from l2session.core.management.federated import FederatedSession, FederationConfig, check_message
from l2session.core.states import State, TransitionRecord
from l2session.crypto.rng import RandomSource
from l2session.errors import (
    BridgeUnavailable,
    QueueFull,
    SessionClosed,
    SessionTimeout,
    StoreError,
)
from l2session.identity.foreign import BridgeProtocol, ForeignIdentity
from l2session.identity.identity import Identity
from l2session.membrane.membrane import Membrane
from l2session.runtime.waiting import Wakeup
from l2session.store.federation import (
    Cursor,
    FederationTables,
    Link,
    MemoryFederation,
    Queued,
    Unread,
)
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore

_log = logging.getLogger("l2session.federation")

#: How often timers are checked and the send queue retried.
TICK: Final = 0.25
#: Longest wait for a backlog's end before it is delivered anyway.
BACKLOG_WAIT: Final = 2.0
#: The Membrane request a foreign peer's message is screened as.
ACTION: Final = "deliver"


class FederatedHandle:
    """One federated session as the application sees it: the same shape
    as :class:`~l2session.runtime.handle.SessionHandle` (send, receive,
    flush, state, history, close)."""

    __slots__ = ("_fed", "_wakeup", "session", "unread")

    def __init__(self, federation: Federation, session: FederatedSession) -> None:
        self._fed = federation
        self.session = session
        self.unread: deque[Unread] = deque()
        self._wakeup = Wakeup()

    def __repr__(self) -> str:
        return f"FederatedHandle({self.peer!r}, state={self.state.value})"

    @property
    def peer(self) -> str:
        """The canonical foreign name (``nostr:npub1…``)."""
        return self.session.peer.text

    peer_did = peer

    @property
    def protocol(self) -> BridgeProtocol:
        return self.session.protocol

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def closed(self) -> bool:
        return self.session.closed

    @property
    def history(self) -> tuple[TransitionRecord, ...]:
        return self.session.history

    @property
    def queued(self) -> int:
        return sum(1 for q in self._fed.outbound if q.peer == self.peer)

    @property
    def available(self) -> int:
        return len(self.unread)

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.session.counters)

    def relays(self) -> list[LinkStatus]:
        return self._fed.bridge_for(self.session.protocol).links()

    def notify(self) -> None:
        self._wakeup.notify()

    async def _wait(self, ready: Callable[[], bool], timeout: float | None, what: str) -> None:
        outcome = await self._wakeup.wait(ready, timeout, lambda: self._fed.running)
        if outcome == "stopped":
            raise SessionClosed("the node stopped")
        if outcome == "timeout":
            raise SessionTimeout(f"no {what} from {self.peer} within {timeout} s")

    async def established(self, timeout: float | None = None) -> None:
        await self._wait(lambda: self.state is State.ESTABLISHED or self.closed, timeout, "relay")
        if self.closed:
            raise SessionClosed(f"the federated session with {self.peer} is closed")

    def send_nowait(self, data: bytes) -> int:
        """Seal, store and queue ``data`` (UTF-8 text); its sequence number.
        Raises ForeignMessageRejected (too large, not UTF-8) or QueueFull."""
        return self._fed.send(self, data)

    async def send(self, data: bytes, timeout: float | None = None) -> int:
        limit = self.session.config.max_queued
        if len(self._fed.outbound) >= limit:
            await self._wait(lambda: len(self._fed.outbound) < limit, timeout, "queue space")
        return self.send_nowait(data)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until a relay accepted everything sent so far."""
        await self._wait(lambda: self.queued == 0, timeout, "relay acceptance")

    async def receive(self, timeout: float | None = None) -> bytes:
        return (await self.receive_many(1, timeout))[0]

    async def receive_many(
        self, max_count: int = 1024, timeout: float | None = None
    ) -> list[bytes]:
        """Between 1 and ``max_count`` messages, taken (deleted) in one commit."""
        await self._wait(lambda: bool(self.unread) or self.closed, timeout, "message")
        batch = [self.unread.popleft() for _ in range(min(max_count, len(self.unread)))]
        if not batch:
            raise SessionClosed(f"the federated session with {self.peer} is closed")
        self._fed.tables.taken([u.id for u in batch])
        self._fed.barrier()  # taken for good before the application sees them
        return [u.payload for u in batch]

    async def close(self) -> None:
        self._fed.close(self)


class FederationHost(Protocol):
    """The port a :class:`Federation` uses (the Node satisfies it): the
    identity its bridges speak as, the clock and randomness, the Membrane
    that screens foreign peers, and the store (None: nothing persisted)
    that holds the queues, the seen ids and the audit chain."""

    @property
    def identity(self) -> Identity: ...

    @property
    def did(self) -> str: ...

    @property
    def clock(self) -> TimeSource: ...

    @property
    def rng(self) -> RandomSource: ...

    @property
    def membrane(self) -> Membrane | None: ...

    @property
    def store(self) -> SqliteStore | MemoryStore | None: ...


class Federation:
    """The node's bridges and federated sessions (see module doc)."""

    def __init__(
        self,
        node: FederationHost,
        bridges: Mapping[str, Mapping[str, Any]],
        config: FederationConfig,
    ) -> None:
        self.node = node
        self.config = config
        self._specs = dict(bridges)
        self.bridges: dict[BridgeProtocol, Bridge] = {}
        self.handles: dict[str, FederatedHandle] = {}
        self.outbound: deque[Queued] = deque()
        self.seen: dict[BridgeProtocol, dict[str, float]] = {}
        self.cursors: dict[BridgeProtocol, Cursor] = {}
        self.links: dict[BridgeProtocol, int] = {}
        self.backlog: dict[BridgeProtocol, list[ForeignMessage]] = {}
        #: Per bridge: since when (loop time) a first backlog is gathered
        #: for sorting; None once it was delivered.
        self._backlog_since: dict[BridgeProtocol, float | None] = {}
        #: Refused events by cause, per bridge (forged, malformed, ...).
        self.refused: dict[str, int] = {}
        self.running = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        store = node.store
        self.tables: FederationTables = (
            store.federation if store is not None else MemoryFederation()
        )

    # ------------------------------------------------------------------
    # lifecycle

    async def start(self) -> None:
        node = self.node
        built: dict[BridgeProtocol, Bridge] = {}
        for name, options in self._specs.items():
            bridge = load_bridge(name, node.identity, options)
            built[bridge.protocol] = bridge
        self.bridges = built
        self.running = True
        now = node.clock.now()
        self.outbound = deque(self.tables.queued())
        for queued in self.outbound:
            self._handle(ForeignIdentity.parse(queued.peer), now)
        for unread in self.tables.unread():
            self._handle(ForeignIdentity.parse(unread.peer), now).unread.append(unread)
        for proto, bridge in built.items():
            name = str(proto)
            self.seen[proto] = self.tables.seen(name)
            cursor = self.cursors[proto] = self.tables.cursor(name)
            since = cursor.floor
            if cursor.synced_at:
                since = max(cursor.floor, cursor.synced_at - self.config.lookback)
            self.links[proto] = 0
            self._backlog_since[proto] = asyncio.get_running_loop().time()
            self.backlog[proto] = []
            await bridge.start(self._hooks(proto), since)
            link_event = getattr(bridge, "link_event", None)
            if isinstance(link_event, bytes):
                self.tables.put_link(Link(node.did, bridge.local_id.text, link_event))
        self._tasks = [
            asyncio.create_task(self._sender()),
            asyncio.create_task(self._ticker()),
        ]

    async def stop(self) -> None:
        self.running = False
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for bridge in self.bridges.values():
            await bridge.stop()
        for handle in self.handles.values():
            handle.notify()

    def bridge_for(self, protocol: BridgeProtocol) -> Bridge:
        bridge = self.bridges.get(protocol)
        if bridge is None:
            raise BridgeUnavailable(
                f"this node has no {protocol} bridge: start it with bridges={{'{protocol}': …}}"
                + (" (CLI: --nostr-relay ws://…)" if protocol == BridgeProtocol.NOSTR else "")
            )
        return bridge

    def _hooks(self, proto: BridgeProtocol) -> BridgeHooks:
        return BridgeHooks(
            on_links=lambda count, detail: self._links_changed(proto, count, detail),
            on_message=lambda message: self._arrived(proto, message),
            on_refused=lambda cause, detail: self._refused(proto, cause, detail),
            on_synced=lambda: self._synced(proto),
        )

    # ------------------------------------------------------------------
    # sessions

    def open(self, peer: str | ForeignIdentity) -> FederatedHandle:
        identity = peer if isinstance(peer, ForeignIdentity) else ForeignIdentity.parse(peer)
        self.bridge_for(identity.protocol)
        return self._handle(identity, self.node.clock.now())

    def _handle(self, peer: ForeignIdentity, now: float) -> FederatedHandle:
        handle = self.handles.get(peer.text)
        if handle is not None:
            return handle
        session = FederatedSession(
            self.node.did, peer, config=self.config, rng=self.node.rng, sink=self._audit
        )
        session.open(now)
        handle = self.handles[peer.text] = FederatedHandle(self, session)
        links = self.links.get(peer.protocol, 0)
        if links:
            session.links_changed(links, now)
        self._commit()
        return handle

    def _audit(self, record: TransitionRecord) -> None:
        store = self.node.store
        if store is not None:
            store.append_audit(record)

    def barrier(self) -> None:
        """The store's barrier (store/durability.py): with ``"power"``
        durability, what was committed survives power loss from now on."""
        store = self.node.store
        if store is not None:
            store.sync()

    def _commit(self) -> None:
        store = self.node.store
        if store is not None:
            try:
                store.commit()
            except StoreError:
                _log.exception("the audit trail of a federated session could not be committed")

    def sessions(self) -> list[FederatedHandle]:
        return list(self.handles.values())

    def close(self, handle: FederatedHandle) -> None:
        handle.session.close(self.node.clock.now())
        self.handles.pop(handle.peer, None)
        handle.notify()
        self._commit()

    # ------------------------------------------------------------------
    # sending

    def send(self, handle: FederatedHandle, data: bytes) -> int:
        session = handle.session
        if session.closed:
            raise SessionClosed(f"the federated session with {handle.peer} is closed")
        text = check_message(data, self.config)
        if len(self.outbound) >= self.config.max_queued:
            raise QueueFull(
                f"{len(self.outbound)} federated messages wait for a relay "
                f"(max_queued {self.config.max_queued})"
            )
        peer = session.peer.text
        seq = self.tables.next_seq(peer)
        sealed = self.bridge_for(session.protocol).seal(session.peer, text, seq)
        queued = Queued(peer, seq, sealed.event_id, sealed.event)
        self.tables.queue(queued)  # durable before it is ever published
        self.barrier()  # and before send() tells the application it is queued
        self.outbound.append(queued)
        self._wake.set()
        return seq

    async def _sender(self) -> None:
        """Publish the queue head, in order; keep it until a relay accepts."""
        while self.running:
            found = self._next_sendable()
            if found is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK)
                continue
            head, handle = found
            bridge = self.bridge_for(handle.session.protocol)
            accepted = await bridge.publish(handle.session.peer, Sealed(head.event_id, head.event))
            if accepted <= 0:
                await asyncio.sleep(TICK)  # a relay outage: try again
                continue
            self.tables.accepted(head.peer, head.seq)
            with contextlib.suppress(ValueError):
                self.outbound.remove(head)
            handle.notify()

    def _next_sendable(self) -> tuple[Queued, FederatedHandle] | None:
        """The oldest queued message whose session is up.  A peer's
        messages are all up or all not, so each peer's order is kept, and
        a peer whose session is down (or closed) holds up no one else."""
        blocked: set[str] = set()
        for queued in self.outbound:
            if queued.peer in blocked:
                continue
            handle = self.handles.get(queued.peer)
            if handle is not None and handle.session.sending:
                return queued, handle
            blocked.add(queued.peer)
        return None

    # ------------------------------------------------------------------
    # receiving

    def _arrived(self, proto: BridgeProtocol, message: ForeignMessage) -> None:
        seen = self.seen[proto]
        cursor = self.cursors[proto]
        if message.event_id in seen:
            self._count("duplicate")
            return
        if message.created_at < cursor.floor:
            self._refused(
                proto,
                "below_floor",
                f"event {message.event_id[:16]} is older than the deduplication floor",
            )
            return
        if message.sender.protocol != proto:
            self._refused(proto, "malformed", "sender of another protocol")
            return
        if self._backlog_since.get(proto) is not None:
            self.backlog[proto].append(message)  # sorted when the backlog ends
            return
        self._deliver(proto, message, self.node.clock.now())

    def _deliver(self, proto: BridgeProtocol, message: ForeignMessage, now: float) -> None:
        seen = self.seen[proto]
        if message.event_id in seen:
            self._count("duplicate")
            return
        sender = message.sender.text
        membrane = self.node.membrane
        unread = Unread(sender, 0, message.event_id, message.text.encode())
        refused = None
        if membrane is not None:
            refused = membrane.screen(sender, Request(ACTION, f"bridge://{proto.name}"), now)
        if refused is not None:
            seen[message.event_id] = message.created_at
            self._remember_refusal(proto, message)
            handle = self.handles.get(sender)
            if handle is not None:
                handle.session.count("policy")
            self._count("policy")
            self._commit()
            _log.info("a message from %s was refused by the Membrane: %s", sender, refused)
            return
        if sum(len(h.unread) for h in self.handles.values()) >= self.config.max_unread:
            self._count("unread_full")
            return  # not marked seen: the relay gives it again after a restart
        if sender not in self.handles and len(self.handles) >= self.config.max_sessions:
            self._count("too_many_sessions")
            return  # likewise
        rowid = self.tables.received(str(proto), message.event_id, message.created_at, unread)
        seen[message.event_id] = message.created_at
        handle = self._handle(message.sender, now)
        handle.unread.append(Unread(sender, rowid, message.event_id, unread.payload))
        handle.notify()
        self._bound_seen(proto)

    def _remember_refusal(self, proto: BridgeProtocol, message: ForeignMessage) -> None:
        """A refused event is remembered as seen (so a replay is not screened
        again) with an empty, already-taken inbound row."""
        rowid = self.tables.received(
            str(proto), message.event_id, message.created_at, Unread("", 0, message.event_id, b"")
        )
        self.tables.taken([rowid])

    def _bound_seen(self, proto: BridgeProtocol) -> None:
        seen = self.seen[proto]
        limit = self.config.seen_limit
        if len(seen) <= limit:
            return
        times = sorted(seen.values())
        floor = times[len(times) - limit * 9 // 10]
        for event_id in [e for e, t in seen.items() if t < floor]:
            del seen[event_id]
        cursor = self.cursors[proto] = Cursor(self.cursors[proto].synced_at, floor)
        self.tables.forget_seen(str(proto), floor)
        self.tables.set_cursor(str(proto), cursor)

    def _synced(self, proto: BridgeProtocol) -> None:
        now = self.node.clock.now()
        self._flush_backlog(proto, now)
        cursor = self.cursors[proto] = Cursor(now, self.cursors[proto].floor)
        self.tables.set_cursor(str(proto), cursor)

    def _flush_backlog(self, proto: BridgeProtocol, now: float) -> None:
        self._backlog_since[proto] = None
        waiting = self.backlog.get(proto, [])
        self.backlog[proto] = []
        waiting.sort(key=lambda m: (m.sent_at, -1 if m.seq is None else m.seq))
        for message in waiting:
            self._deliver(proto, message, now)

    def _refused(self, proto: BridgeProtocol, cause: str, detail: str) -> None:
        self._count(cause)
        _log.warning("%s bridge refused an event (%s): %s", proto, cause, detail)

    def _count(self, cause: str) -> None:
        self.refused[cause] = self.refused.get(cause, 0) + 1

    # ------------------------------------------------------------------
    # links and timers

    def _links_changed(self, proto: BridgeProtocol, count: int, detail: str) -> None:
        self.links[proto] = count
        now = self.node.clock.now()
        for handle in list(self.handles.values()):
            if handle.session.protocol == proto:
                handle.session.links_changed(count, now, detail)
                handle.notify()
        self._commit()
        self._wake.set()

    async def _ticker(self) -> None:
        while self.running:
            await asyncio.sleep(TICK)
            now = self.node.clock.now()
            mono = asyncio.get_running_loop().time()
            for proto, since in list(self._backlog_since.items()):
                if since is not None and mono - since >= BACKLOG_WAIT:
                    self._flush_backlog(proto, now)
            changed = False
            for handle in list(self.handles.values()):
                session = handle.session
                before = session.state
                session.tick(now)
                if session.reconnect_due is not None:
                    session.reconnect_due = None
                    await self.bridge_for(session.protocol).reconnect()
                if session.state is not before:
                    changed = True
                    handle.notify()
            if changed:
                self._commit()
