"""The session manager: many sessions, one timer, one inbox of datagrams.

It owns every session of a node and is the only thing the runtime talks to
(aioquic's shape: ``receive_datagram(data, address, path, now)``,
``datagrams_to_send()``, ``get_timer()``, ``tick(now)``):

* routes each packet by session id (DATA, handshake replies) or ticket id
  (resumption), and turns hostile bytes into counted rejections;
* keeps one heap of deadlines, so :meth:`tick` does work proportional to the
  timers that are due, not to the number of sessions.  A session's entry is
  pushed only when its deadline moves *earlier*; an entry that fires early
  (the deadline moved later) just reschedules, so heartbeats on busy
  sessions cost no heap churn;
* keeps the resumption tickets and the quarantine list;
* maintains the node's private prekeys on the same heap of time (rotation,
  pruning, one-time refill: :meth:`PrekeyStore.maintain`), journalling the
  new private keys so they are committed before any packet that names them
  (a bundle, a RESPONSE) leaves;
* admits handshake-opening packets (INIT, RESUME, BUNDLE_REQUEST) through
  per-host and global budgets before any crypto is spent on them, and
  quarantines hosts that keep failing (:mod:`l2session.core.admission`);
* with a store (``Context.store``), writes persistent sessions through it and
  commits before any packet leaves (:meth:`commit`, :meth:`restore`; the
  rules are in :mod:`l2session.core.persistence`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Final

from l2session.core import establishment, migration, multipath, persistence
from l2session.core.admission import AdmissionControl
from l2session.core.config import SessionConfig, SessionKind
from l2session.core.context import Capability, Context
from l2session.core.envelope import AccessGate
from l2session.core.events import PacketRejected, SessionEvent, StateChanged
from l2session.core.resumption import StoredSession
from l2session.core.session import Session
from l2session.core.states import SENDING, State, TransitionRecord, Trigger
from l2session.crypto.handshake_messages import TYPE_FINISH, TYPE_INIT, TYPE_RESPONSE
from l2session.errors import (
    ConfigError,
    InvalidState,
    L2SessionError,
    MalformedMessage,
    MissingCapability,
    PeerQuarantined,
    TransportFailed,
)
from l2session.identity.bundle import PrekeyBundle
from l2session.wire.packets import (
    BundlePacket,
    BundleRequest,
    DataPacket,
    HandshakePacket,
    PrekeyGonePacket,
    ResumeAckPacket,
    ResumeEarlyPacket,
    ResumePacket,
    ResumeRejectPacket,
    decode_packet,
    encode_packet,
)

_log = logging.getLogger("l2session.session")

#: Answered resumption requests remembered for retransmissions.
ANSWERED_MEMORY: Final = 4096
#: Quarantine entries kept (oldest evicted first).
QUARANTINE_MEMORY: Final = 10_000
DEFAULT_PATHS: Final = ("quic", "tcp")
_MAX_RUNS_PER_TICK: Final = 4
_INIT: Final = bytes([TYPE_INIT])
_MIN_TIMER_STEP: Final = 0.001


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A packet for the runtime to put on a transport."""

    address: str
    path: str
    data: bytes


class SessionManager:
    """All sessions of one node (SPEC-018 §5.2 ``establish``, ``resume``,
    ``accept``, ``tick``)."""

    def __init__(
        self,
        ctx: Context,
        *,
        config: SessionConfig | None = None,
        paths: tuple[str, ...] = DEFAULT_PATHS,
        gate: AccessGate | None = None,
    ) -> None:
        self.ctx = ctx
        self._local_did: str | None = None
        #: The Membrane that screens capability requests (core/screening.py);
        #: None delivers requests unscreened.  May be set at any time.
        self.gate = gate
        self.config = config or SessionConfig()
        self.paths = paths
        self.sessions: dict[str, Session] = {}
        #: Sessions by their primary address, and those with other routes
        #: too: path edges reach the sessions they concern without walking
        #: every session (O(sessions there), not O(N), per edge).
        self._by_address: dict[str, dict[Session, None]] = {}
        self._multiroute: dict[Session, None] = {}
        self._by_id: dict[bytes, Session] = {}
        self._by_ticket: dict[bytes, Session] = {}
        #: Tickets peers may resume with, by ticket id (responder side).
        self.tickets: dict[bytes, StoredSession] = {}
        #: Our own ticket per peer (initiator side).
        self.stored: dict[str, StoredSession] = {}
        self.answered: OrderedDict[bytes, tuple[bytes, bytes]] = OrderedDict()
        self._quarantine: OrderedDict[tuple[str, str | None], float] = OrderedDict()
        #: Paths the runtime reported lost, per address (until restored).
        self._paths_down: dict[str, set[str]] = {}
        #: Routes the runtime reported connected (a path race stops
        #: widening once one of its paths is up, core/race.py).
        self._paths_up: dict[str, set[str]] = {}
        #: Set by the runtime: whether a path to an address has heard from
        #: the peer although it is not up yet (a QUIC handshake under way).
        self.path_progress: Callable[[str, str], bool] | None = None
        #: Set by the runtime: whether the peer at an address said it does
        #: not listen there (μTCP HELLO port 0).  Such an address is routed
        #: only by its live connection and never dialled: no fallback to
        #: another transport there, no retries; the session waits for the
        #: peer to come back.
        self.outbound_only: Callable[[str], bool] | None = None
        #: Set by the runtime: the one path an address can be reached on
        #: (a relay route: ``"relay"``), else None (any of ``paths``).
        self.fixed_path: Callable[[str], str | None] | None = None
        #: Set by the runtime: our reflexive address (as the relay of a
        #: relay route saw us, on the first direct path), for hole punching.
        self.reflexive: Callable[[str], str | None] | None = None
        self._heap: list[tuple[float, int, Session]] = []
        self._counter = itertools.count()
        self._outbox: list[Outgoing] = []
        self._events: list[SessionEvent] = []
        #: Refused packets by reason (hostile, stale, damaged, quarantined,
        #: rate limited); what status output shows.
        self.rejections: dict[str, int] = {}
        #: 0-RTT flights opened (RESUME_EARLY whose records were handled).
        self.early_flights = 0
        #: Budgets for handshake-opening packets and the host quarantine.
        self.admission = AdmissionControl(self.config)
        self.journal = ctx.store
        #: ``PrekeyStore.generation`` as last journaled (the state given at
        #: start is the stored one): a change anywhere is journaled at the
        #: next commit (see :meth:`commit`).
        self._prekeys_saved = (
            ctx.crypto_pqxdh.prekeys.generation if ctx.crypto_pqxdh is not None else 0
        )
        if self.journal is not None and ctx.crypto_pqxdh is not None:
            # Every INIT answered is journalled with the answer's commit.
            ctx.crypto_pqxdh.guard.sink = self.journal.remember_init
        #: The session the packet being received authenticated for.
        self._authentic: Session | None = None
        #: Persistent sessions whose durable row changed since the last commit.
        self._dirty: set[Session] = set()
        #: Sessions with messages queued by the application since the last
        #: datagrams_to_send(): packed into packets there, many per packet.
        self._to_flush: dict[Session, None] = {}
        #: When the private prekeys are next maintained (None: this
        #: context holds no prekeys or no clock).  Due at once: a node may
        #: have been stopped longer than a maintenance interval.
        self._prekeys_at: float | None = (
            ctx.now() if ctx.crypto_pqxdh is not None and ctx.time is not None else None
        )
        if not ctx._manager:
            ctx._manager.append(self)

    # ------------------------------------------------------------------
    # plumbing used by sessions

    @property
    def local_did(self) -> str:
        # Read on every timer computation (who rotates first): kept after
        # the first read, as the context's keys are this manager's for life.
        did = self._local_did
        if did is None:
            did = self._local_did = self.ctx.keys.did
        return did

    def now(self) -> float:
        return self.ctx.now()

    def record_transition(self, record: TransitionRecord) -> None:
        self._events.append(StateChanged(record.subject, record))
        if self.journal is not None:
            self.journal.append_audit(record)

    def want_flush(self, session: Session) -> None:
        """``session`` has new messages: pack them at the next
        :meth:`datagrams_to_send` (so a burst of sends shares packets)."""
        self._to_flush[session] = None

    def dirty(self, session: Session) -> None:
        """``session``'s durable row changed: write it at the next commit."""
        self._dirty.add(session)

    def commit(self, *, barrier: bool = True) -> None:
        """Make every change so far durable (one transaction), and with
        ``barrier`` (the default) make every commit so far survive power
        loss too (``Journal.sync``: one fsync however many commits it
        covers, none in ``durability="process"``).  Called before any
        packet leaves and by ``receive``; call it yourself to make ``send``
        durable without sending (see core/persistence.py)."""
        journal = self.journal
        if journal is None:
            return
        if self._dirty:
            for session in self._dirty:
                if session.journal is not None and not session.closed:
                    journal.put_session(persistence.record_of(session))
            self._dirty.clear()
        keys = self.ctx.crypto_pqxdh
        if keys is not None and keys.prekeys.generation != self._prekeys_saved:
            # Spent, rotated or refilled by any code path: never let a
            # packet leave before the store has it (a one-time prekey must
            # not be usable twice, not even after a power cut).
            self.prekeys_changed()
        journal.commit()
        if barrier:
            journal.sync()

    def emit(self, event: SessionEvent) -> None:
        self._events.append(event)

    def transmit(self, session: Session, data: bytes) -> None:
        """Send ``data`` on the session's primary route, or on the routes
        its multipath strategy picks (core/multipath.py)."""
        if session.address is None:
            raise TransportFailed(f"no address is known for {session.peer_did}")
        routes = session.routes
        if routes is not None and routes.extra:
            for address, path in multipath.targets(session):
                self._outbox.append(Outgoing(address, path, data))
            return
        self._outbox.append(Outgoing(session.address, session.path, data))

    def route_down(self, address: str, path: str) -> bool:
        """Whether the runtime reported ``path`` to ``address`` lost (and
        not yet restored)."""
        down = self._paths_down.get(address)
        return down is not None and path in down

    def route_up(self, address: str, path: str) -> bool:
        """Whether the runtime reported ``path`` to ``address`` connected
        (and not lost since)."""
        up = self._paths_up.get(address)
        return up is not None and path in up

    def reflexive_of(self, address: str | None) -> str | None:
        """Our address as the relay behind route ``address`` saw it, or None."""
        check = self.reflexive
        return None if address is None or check is None else check(address)

    def fixed_path_of(self, address: str | None) -> str | None:
        """The only path ``address`` is reached on, or None (see ``fixed_path``)."""
        check = self.fixed_path
        return None if address is None or check is None else check(address)

    def is_outbound_only(self, address: str | None) -> bool:
        """Whether ``address`` must never be dialled (see ``outbound_only``)."""
        check = self.outbound_only
        return address is not None and check is not None and check(address)

    def route_progressed(self, address: str, path: str) -> bool:
        """Whether ``path`` to ``address`` is up, or (asking the runtime's
        :attr:`path_progress`) has at least heard from the peer."""
        if self.route_up(address, path):
            return True
        progress = self.path_progress
        return progress is not None and progress(address, path)

    def send_raw(self, address: str, path: str, data: bytes) -> None:
        self._outbox.append(Outgoing(address, path, data))

    def route(self, session: Session, session_id: bytes) -> None:
        self._by_id[session_id] = session

    def unroute(self, session: Session, session_id: bytes) -> None:
        if self._by_id.get(session_id) is session:
            del self._by_id[session_id]

    def route_ticket(self, session: Session, ticket_id: bytes) -> None:
        self._by_ticket[ticket_id] = session

    def unroute_ticket(self, ticket_id: bytes) -> None:
        self._by_ticket.pop(ticket_id, None)

    def save_ticket(self, stored: StoredSession) -> None:
        old = self.stored.get(stored.peer_did)
        if old is not None:
            self.tickets.pop(old.ticket_id, None)
        self.stored[stored.peer_did] = stored
        self.tickets[stored.ticket_id] = stored
        if self.journal is not None:
            self.journal.put_ticket(stored)

    def drop_ticket(self, stored: StoredSession) -> None:
        self.tickets.pop(stored.ticket_id, None)
        if self.stored.get(stored.peer_did) is stored:
            del self.stored[stored.peer_did]
            if self.journal is not None:
                self.journal.delete_ticket(stored.peer_did)

    def prekeys_changed(self) -> None:
        """A one-time prekey was spent: persist the private prekeys before
        the answer that used it leaves (it must never be used twice)."""
        if self.journal is not None:
            prekeys = self.ctx.keys.prekeys
            self.journal.put_prekeys(prekeys.to_bytes())
            self._prekeys_saved = prekeys.generation

    def maintain_prekeys(self, now: float) -> None:
        """Rotate, prune and refill the private prekeys as their policy says
        (a deadline in :meth:`tick`), and journal them if they changed: the
        commit before the next packet leaves makes them durable before any
        bundle or answer names them."""
        prekeys = self.ctx.keys.prekeys
        before = prekeys.one_time_count, prekeys.signed_set_ids
        if prekeys.maintain(rng=self.ctx.rng, now=now):
            _log.info(
                "prekeys maintained: one-time %d -> %d, signed sets %s -> %s",
                before[0],
                prekeys.one_time_count,
                before[1],
                prekeys.signed_set_ids,
            )
            self.prekeys_changed()
        self._prekeys_at = prekeys.next_maintenance(now)

    def consume_ticket(self, stored: StoredSession, request: bytes, reply: bytes) -> None:
        """Single use: the ticket is gone before the answer leaves."""
        self.drop_ticket(stored)
        self.answered[stored.ticket_id] = (request, reply)
        while len(self.answered) > ANSWERED_MEMORY:
            self.answered.popitem(last=False)

    def quarantine(self, did: str, address: str | None, now: float) -> None:
        """Refuse ``did`` at ``address`` for ``quarantine`` seconds.  Keyed by
        address too, so that an impostor claiming someone's DID from
        elsewhere quarantines only itself."""
        key = (did, address)
        self._quarantine.pop(key, None)
        self._quarantine[key] = now + self.config.quarantine
        while len(self._quarantine) > QUARANTINE_MEMORY:
            self._quarantine.popitem(last=False)
        _log.warning("peer %s at %s quarantined for %.0f s", did, address, self.config.quarantine)

    def reject(self, address: str, reason: str, peer_did: str | None = None) -> None:
        """Count a refused packet under ``reason`` and report it."""
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        self._events.append(PacketRejected(address, reason, peer_did))

    def admit(self, address: str, now: float, *, known: bool = False) -> bool:
        """Charge a handshake-opening packet from ``address`` to admission
        control (core/admission.py) before any crypto is spent on it; a
        refused one is counted and reported here.  ``known``: it comes from
        a peer we hold a session or ticket with (no global budget)."""
        reason = self.admission.admit(address, now, known=known)
        if reason is None:
            return True
        self.reject(address, reason)
        return False

    def quarantined_until(self, did: str, address: str | None, now: float) -> float:
        until = self._quarantine.get((did, address), 0.0)
        if until and until <= now:
            del self._quarantine[(did, address)]
            return 0.0
        return until

    def create_session(
        self, peer_did: str, config: SessionConfig, address: str | None, path: str, now: float
    ) -> Session:
        stream = int.from_bytes(self.ctx.rng.random_bytes(8), "big") or 1
        session = Session(
            self, peer_did, config, stream=stream, address=address, path=path, now=now
        )
        self.sessions[peer_did] = session
        self._index(session)
        self._make_durable(session)
        return session

    def _index(self, session: Session) -> None:
        session._indexed = True
        if session.address is not None:
            self._by_address.setdefault(session.address, {})[session] = None

    def _unindex(self, session: Session) -> None:
        if session._indexed:
            session._indexed = False
            self.address_moved(session, session.address, None)
            self._multiroute.pop(session, None)

    def address_moved(self, session: Session, old: str | None, new: str | None) -> None:
        """Keep the address index true (called by ``Session.address``)."""
        index = self._by_address
        if old is not None:
            here = index.get(old)
            if here is not None:
                here.pop(session, None)
                if not here:
                    del index[old]
        if new is not None:
            index.setdefault(new, {})[session] = None

    def multiroute(self, session: Session) -> None:
        """``session`` has routes besides its primary (core/multipath.py)."""
        if session._indexed:
            self._multiroute[session] = None

    def sessions_at(self, address: str) -> list[Session]:
        """The sessions that use ``address``: as primary route or another
        validated one."""
        found = list(self._by_address.get(address, ()))
        for session in self._multiroute:
            routes = session.routes
            if (
                session.address != address
                and routes is not None
                and any(r[0] == address for r in routes.extra)
            ):
                found.append(session)
        return found

    def _make_durable(self, session: Session) -> None:
        if self.journal is not None and session.config.kind is SessionKind.PERSISTENT:
            persistence.attach(session, self.journal)
            self.dirty(session)

    def forget(self, session: Session) -> None:
        self._unindex(session)
        if self.sessions.get(session.peer_did) is session:
            del self.sessions[session.peer_did]
            if session.journal is not None:
                session.journal.delete_session(session.peer_did)
        self._dirty.discard(session)
        self._to_flush.pop(session, None)
        # Every id a session can be routed by, without scanning the tables.
        if session.channel is not None:
            self.unroute(session, session.channel.session_id)
        if session.handshake is not None:
            self.unroute(session, session.handshake.session_id)
        resume = session.resume
        for token in (session.bundle_nonce, resume.packet.ticket_id if resume else None):
            if token is not None and self._by_ticket.get(token) is session:
                del self._by_ticket[token]

    def reschedule(self, session: Session) -> None:
        deadline = session.next_deadline()
        if deadline is None:
            return
        if session.timer_at is None or deadline < session.timer_at:
            session.timer_at = deadline
            heapq.heappush(self._heap, (deadline, next(self._counter), session))

    # ------------------------------------------------------------------
    # SPEC-018 §5.2

    def establish(self, peer_did: str, config: SessionConfig | None = None) -> Session:
        """Open a session with ``peer_did`` (idle -> handshake_initiated)."""
        self.ctx.require(
            "establish",
            Capability.NET_CONNECT,
            Capability.CRYPTO_PQXDH,
            Capability.DID_RESOLVE,
            Capability.TIME,
        )
        return self._open(peer_did, config, "establish")

    def resume(
        self, peer_did: str, stored: StoredSession, config: SessionConfig | None = None
    ) -> Session:
        """Resume a stored session (one round trip, no KEM work)."""
        self.ctx.require("resume", Capability.NET_CONNECT, Capability.CRYPTO_PQXDH, Capability.TIME)
        if stored.peer_did != peer_did or stored.local_did != self.local_did:
            raise InvalidState(f"the stored session is not between this node and {peer_did}")
        self.save_ticket(stored)
        return self._open(peer_did, config, "resume")

    def _open(self, peer_did: str, config: SessionConfig | None, why: str) -> Session:
        now = self.now()
        directory = self.ctx.net_connect
        assert directory is not None
        address = directory.address_of(peer_did)
        if address is None:
            raise TransportFailed(f"no address is known for {peer_did}; add it to the directory")
        until = self.quarantined_until(peer_did, address, now)
        if until > now:
            raise PeerQuarantined(
                f"{peer_did} at {address} failed authentication and is refused for "
                f"another {until - now:.0f} s (quarantine)",
                until=until,
            )
        existing = self.sessions.get(peer_did)
        if existing is not None:
            raise InvalidState(f"a session with {peer_did} exists ({existing.state.value}); use it")
        path = self.fixed_path_of(address) or self.paths[0]
        session = self.create_session(peer_did, config or self.config, address, path, now)
        establishment.begin(session, now, Trigger.INITIATE_HANDSHAKE, why)
        return session

    def accept(
        self, request: bytes, address: str, path: str, config: SessionConfig | None = None
    ) -> Session | None:
        """Answer an incoming PQXDH INIT packet (SPEC-018 ``accept``);
        returns the session, or None if the request is not answered (a
        retransmission, or our own crossing attempt wins)."""
        self.ctx.require("accept", Capability.CRYPTO_PQXDH, Capability.DID_RESOLVE, Capability.TIME)
        packet = decode_packet(request)
        if not isinstance(packet, HandshakePacket) or packet.message[1:2] != bytes([TYPE_INIT]):
            raise MalformedMessage("accept() takes a handshake INIT packet")
        return establishment.on_init(self, packet, address, path, self.now(), config or self.config)

    def tick(self, sessions: Iterable[Session] | None = None) -> None:
        """Run every timer that is due (SPEC-018 ``tick``).  With
        ``sessions``, run just those sessions' timers."""
        now = self.now()
        if self._prekeys_at is not None and now >= self._prekeys_at:
            self.maintain_prekeys(now)
        if sessions is not None:
            for session in sessions:
                session.timer_at = None
                session.on_timer(now)
                self.reschedule(session)
            return
        heap = self._heap
        runs: dict[int, int] = {}
        while heap and heap[0][0] <= now:
            deadline, _, session = heapq.heappop(heap)
            if session.timer_at != deadline or session.closed:
                continue  # superseded by an earlier entry, or gone
            session.timer_at = None
            # The heap keeps superseded entries (reschedule only ever adds
            # an earlier one): traffic that pushed this session's deadline
            # back leaves the old entry to come due, and an idle session
            # meets one such entry per heartbeat on each side.  Re-arm it
            # at its real deadline instead of running on_timer for nothing
            # (on_timer and the flush after it cost several times this).
            due = session.next_deadline()
            if due is None:
                continue
            if due > now:
                session.timer_at = due
                heapq.heappush(heap, (due, next(self._counter), session))
                continue
            count = runs[id(session)] = runs.get(id(session), 0) + 1
            if count > _MAX_RUNS_PER_TICK:
                # A deadline that on_timer does not clear is a bug; never
                # let it spin the event loop.
                _log.error("session %s: timer due at %s did not clear", session.peer_did, deadline)
                session.timer_at = now + _MIN_TIMER_STEP
                heapq.heappush(heap, (session.timer_at, next(self._counter), session))
                continue
            session.on_timer(now)
            self.reschedule(session)

    def get_timer(self) -> float | None:
        """When :meth:`tick` next has work (None: nothing scheduled)."""
        heap = self._heap
        while heap and (heap[0][2].timer_at != heap[0][0] or heap[0][2].closed):
            heapq.heappop(heap)
        first = heap[0][0] if heap else None
        prekeys_at = self._prekeys_at
        if prekeys_at is not None and (first is None or prekeys_at < first):
            return prekeys_at
        return first

    # ------------------------------------------------------------------
    # runtime I/O

    def datagrams_to_send(self) -> list[Outgoing]:
        """Packets to put on transports.  With a store, everything that
        produced them is committed first (write-ahead), and if any packet
        is to leave, a barrier makes every commit so far survive power loss
        before it does: an ACK, a denial notice or the answer that spent a
        ticket or one-time prekey is a promise the disk must keep.  (A
        commit with nothing to send waits for the next barrier.)"""
        if self._to_flush:
            now = self.now()
            pending, self._to_flush = self._to_flush, {}
            for session in pending:
                session.flush(now)
        if self.journal is not None:
            self.commit(barrier=bool(self._outbox))
        out, self._outbox = self._outbox, []
        return out

    def restore(self, config: SessionConfig | None = None) -> list[Session]:
        """Rebuild persistent sessions from the store after a restart: their
        queues, inboxes, stream positions and tickets.  Each session whose
        peer address is known resumes at once (RESUME with the stored
        ticket, a full handshake if there is none or the peer refuses it);
        the others wait for the peer.  Then SYNC resends exactly what each
        side lacks."""
        journal = self.journal
        if journal is None:
            raise MissingCapability("restore needs a store: pass Context(store=...)")
        snapshot = journal.load()
        now = self.now()
        for stored in snapshot.tickets:
            self.stored[stored.peer_did] = stored
            self.tickets[stored.ticket_id] = stored
        restored: list[Session] = []
        # Only persistent sessions are ever stored, whatever this node's own
        # default kind: the kind each one was opened with travels in INIT.
        base = config or self.config
        if base.kind is not SessionKind.PERSISTENT:
            base = replace(base, kind=SessionKind.PERSISTENT)
        for record in snapshot.sessions:
            if record.peer_did in self.sessions:
                raise InvalidState(f"a session with {record.peer_did} exists; restore first")
            session = Session(
                self,
                record.peer_did,
                base,
                stream=record.out_stream,
                address=record.address,
                path=record.path if record.path in self.paths else self.paths[0],
                now=now,
            )
            session.outbound.next_seq = record.next_seq
            session.outbound.restore(snapshot.outbound.get(record.peer_did, ()))
            kept = snapshot.inbound.get(record.peer_did, ())
            session.inbound.restore(
                record.in_stream,
                record.next_expected,
                ((m.stream, m.seq, m.payload) for m in kept),
            )
            self.sessions[record.peer_did] = session
            self._index(session)
            self._make_durable(session)
            restored.append(session)
            _log.info(
                "session %s restored: %d queued, %d unread",
                record.peer_did,
                len(session.outbound),
                session.available,
            )
            if session.handshake_role_initiator() and self.ctx.crypto_pqxdh is not None:
                establishment.begin(session, now, Trigger.INITIATE_HANDSHAKE, "restored from store")
            self.reschedule(session)
        # What restoring wrote (the session records, the transitions into
        # resumption) is committed here, while the node starts: a RESUME
        # needs none of it durable before it leaves (the responder enforces
        # the ticket's single use), and in the first datagrams_to_send this
        # commit would sit on the resumption's critical path.
        self.commit()
        return restored

    def events(self) -> list[SessionEvent]:
        out, self._events = self._events, []
        return out

    def session(self, peer_did: str) -> Session | None:
        return self.sessions.get(peer_did)

    def receive_datagram(self, data: bytes, address: str, path: str) -> bool:
        """Feed one packet from a transport.  Anything that does not verify
        is counted and dropped; it never raises and never changes a session.

        Returns whether the packet authenticated as coming from the peer of
        a session that is reached at ``address`` (DATA that decrypted, a
        RESPONSE, FINISH or RESUME_ACK that completed a handshake of ours).
        A transport whose addresses are mere claims (μTCP's HELLO) moves
        traffic to a new connection only on that proof
        (``Transport.confirm``)."""
        now = self.now()
        self._authentic = None
        try:
            self._dispatch(data, address, path, now)
        except L2SessionError as error:
            self.reject(address, str(getattr(error, "reason", type(error).__name__)))
            _log.debug("packet from %s rejected: %s", address, error)
            return False
        session, self._authentic = self._authentic, None
        return session is not None and _reached_at(session, address)

    def authenticated(self, session: Session) -> None:
        """The packet being received authenticated as ``session``'s peer."""
        self._authentic = session

    def connectivity(self, address: str, path: str, up: bool) -> None:
        """The runtime reports a path to ``address`` lost or restored.  A
        session whose primary route is lost moves to its next live route
        (another validated route, else the next transport to the same
        address: QUIC -> μTCP fallback, SPEC-018 §2.3) and resends what is
        unacknowledged; with no route left it waits for the timeouts of
        SPEC-018 §2.3.  A restored route that was validated before is used
        again (see core/multipath.py)."""
        now = self.now()
        down = self._paths_down.setdefault(address, set())
        live = self._paths_up.setdefault(address, set())
        if up:
            down.discard(path)
            live.add(path)
        else:
            down.add(path)
            live.discard(path)
        if not down:
            del self._paths_down[address]
        if not live:
            del self._paths_up[address]
        # The sessions at that address, and every one with other routes
        # (on_connectivity decides whether the route is one of theirs).
        concerned = dict.fromkeys(self._by_address.get(address, ()))
        concerned.update(self._multiroute)
        for session in list(concerned):
            if multipath.on_connectivity(session, address, path, up, now):
                self.reschedule(session)

    def local_address_changed(self, new_address: str) -> None:
        """This node's own address changed (the runtime saw its interface
        or NAT mapping move): every session carrying traffic announces
        MIGRATE(sequence, ``new_address``) to its peer, which validates the
        new route before it uses it (core/migration.py).  Keys stay."""
        if not isinstance(new_address, str) or not 1 <= len(new_address.encode()) <= 255:
            raise ConfigError(f"an address is 1 to 255 UTF-8 bytes, got {new_address!r}")
        now = self.now()
        for session in list(self.sessions.values()):
            if migration.announce(session, new_address, now):
                self.reschedule(session)

    def redirect(self, peer_did: str, address: str) -> bool:
        """The operator says ``peer_did`` now listens at ``address`` (CLI
        ``peer set``, ``send --to``).  A session that carries no traffic
        (failed, suspended, degraded, or handshaking at the old address)
        moves there and retries at once, with a fresh lease: two peers
        that both moved find each other again.  Returns True then.  A
        session that carries traffic keeps its authenticated route; the
        address is offered as a new route, validated by PATH_CHALLENGE
        before it is used, and False is returned."""
        session = self.sessions.get(peer_did)
        if session is None or address == session.address:
            return False
        now = self.now()
        if session.state in SENDING:
            migration.add_route(session, (address, session.path), now)
            self.reschedule(session)
            return False
        session.address = address
        session.lease_until = max(session.lease_until, now + session.config.ttl)
        if session.state in (State.FAILED, State.SUSPENDED, State.DEGRADED):
            session.retry_at = now
            session.retry_attempt = 0
        elif session.handshake_resend_at is not None:
            session.handshake_resend_at = now  # the handshake goes to the new address
        if session.journal is not None:
            self.dirty(session)
        if session.state is State.DEGRADED:
            session.degraded_at = None
            session.fire(Trigger.TIMEOUT, now, f"moved to {address} by the operator")
        self.reschedule(session)
        return True

    def add_route(self, peer_did: str, address: str, path: str) -> None:
        """Offer another route to ``peer_did`` (another address of the
        peer, or another transport).  It is validated by PATH_CHALLENGE
        first (at once, or when the session next carries traffic) and then
        joins the session's routes, which ``SessionConfig.multipath``
        decides how to use; a :class:`PathValidated` event reports it."""
        session = self.sessions.get(peer_did)
        if session is None:
            raise InvalidState(f"no session with {peer_did}")
        if not (isinstance(address, str) and address and isinstance(path, str) and path):
            raise ConfigError(f"a route is a non-empty address and path, got {address!r}, {path!r}")
        migration.add_route(session, (address, path), self.now())
        self.reschedule(session)

    def _dispatch(self, data: bytes, address: str, path: str, now: float) -> None:
        packet = decode_packet(data)
        if isinstance(packet, DataPacket):
            # Established traffic: never charged to admission control.
            session = self._by_id.get(packet.session_id)
            if session is None:
                raise MalformedMessage("DATA for an unknown session id")
            session.on_data(packet, now, (address, path))  # it flushes and reschedules itself
            return
        if isinstance(packet, HandshakePacket) and packet.message[1:2] != _INIT:
            self._on_handshake(packet, address, path, now)
            return
        if isinstance(packet, HandshakePacket | BundleRequest | ResumePacket | ResumeEarlyPacket):
            # What an unknown source can send: admitted (charged) by the
            # handlers before their crypto, and every failure counts
            # against the source host (core/admission.py).
            if isinstance(packet, HandshakePacket):
                self.ctx.require("accept", Capability.CRYPTO_PQXDH, Capability.DID_RESOLVE)
            refused = self.admission.refuse_quarantined(address, now)
            if refused is not None:
                self.reject(address, refused)
                return
            try:
                self._on_opening(packet, data, address, path, now)
            except L2SessionError:
                self.admission.failure(address, now)
                raise
            finally:
                # What it really cost (a stranger's packet is billed to the
                # CPU budget; a refused or known one bills nothing).
                self.admission.charge(self.now() - now)
            return
        if isinstance(packet, BundlePacket):
            session = self._pending_bundle(packet.nonce)
            establishment.on_bundle(session, packet, now, (address, path))
        elif isinstance(packet, ResumeAckPacket):
            session = self._ticket_session(packet.ticket_id)
            establishment.on_resume_ack(session, packet, now, (address, path))
            self.authenticated(session)
        elif isinstance(packet, ResumeRejectPacket):
            session = self._ticket_session(packet.ticket_id)
            establishment.on_resume_reject(session, packet, now)
        elif isinstance(packet, PrekeyGonePacket):
            found = self._by_id.get(packet.session_id)
            if found is None:
                raise MalformedMessage("PREKEY_GONE for an unknown session id")
            session = found
            establishment.on_prekey_gone(session, packet, now)
        self.reschedule(session)

    def _on_opening(
        self,
        packet: HandshakePacket | BundleRequest | ResumePacket | ResumeEarlyPacket,
        data: bytes,
        address: str,
        path: str,
        now: float,
    ) -> None:
        session: Session | None
        if isinstance(packet, BundleRequest):
            self._on_bundle_request(packet, address, path, now)
            return
        if isinstance(packet, ResumePacket):
            session = establishment.on_resume(
                self, packet, bytes(data), address, path, now, self.config
            )
        elif isinstance(packet, ResumeEarlyPacket):
            session = establishment.on_resume(
                self, packet.resume, bytes(data), address, path, now, self.config, packet
            )
        else:
            session = establishment.on_init(self, packet, address, path, now, self.config)
        if session is not None:
            self.reschedule(session)

    def _on_handshake(self, packet: HandshakePacket, address: str, path: str, now: float) -> None:
        """RESPONSE or FINISH: routed by session id, so only a handshake of
        ours can make us work (INIT is an opening packet)."""
        kind = packet.message[1] if len(packet.message) > 1 else -1
        session = self._by_id.get(packet.session_id)
        if session is None:
            raise MalformedMessage("handshake message for an unknown session id")
        if kind == TYPE_RESPONSE:
            establishment.on_response(session, packet.message, now, (address, path))
        elif kind == TYPE_FINISH:
            establishment.on_finish(session, packet.message, now, (address, path))
        else:
            raise MalformedMessage(f"unknown handshake message type {kind}")
        if session.channel is not None:
            self.authenticated(session)
        self.reschedule(session)

    def _on_bundle_request(
        self, packet: BundleRequest, address: str, path: str, now: float
    ) -> None:
        keys = self.ctx.keys
        if packet.did != keys.did:
            raise MalformedMessage("bundle request for another DID")
        if not self.admit(address, now):
            return  # the answer is twice the request's size: budgeted
        # One one-time prekey per answer, never the same one twice
        # (concurrent initiators would otherwise race for it).
        full = keys.prekeys.bundle()
        one = keys.prekeys.hand_out()
        bundle = PrekeyBundle(
            full.did, full.signing_key, full.signed_prekeys, (one,) if one else ()
        )
        self.send_raw(address, path, encode_packet(BundlePacket(packet.nonce, bundle.encode())))

    def _pending_bundle(self, nonce: bytes) -> Session:
        session = self._by_ticket.get(nonce)
        if session is None or session.bundle_nonce != nonce:
            raise MalformedMessage("prekey bundle answers no request of ours")
        return session

    def _ticket_session(self, ticket_id: bytes) -> Session:
        session = self._by_ticket.get(ticket_id)
        if session is None:
            raise MalformedMessage("resumption answer for no resumption of ours")
        return session


def _reached_at(session: Session, address: str) -> bool:
    """Whether ``address`` is where ``session`` sends: its primary route
    or another validated one (any path)."""
    if session.address == address:
        return True
    routes = session.routes
    return routes is not None and any(route[0] == address for route in routes.extra)
