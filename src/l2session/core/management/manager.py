"""The session manager: many sessions, one timer, one inbox of datagrams.

It owns every session of a node and is the only thing the runtime talks to
(aioquic's shape: ``receive_datagram(data, address, path, now)``,
``datagrams_to_send()``, ``get_timer()``, ``tick(now)``):

* routes each packet by session id (DATA, handshake replies) or ticket id
  (resumption), and turns hostile bytes into counted rejections
  (:mod:`~l2session.core.management.dispatch`; the tables it routes by, the
  tickets and the quarantine list are :mod:`~l2session.core.management.book`);
* keeps one heap of deadlines, so :meth:`tick` does work proportional to the
  timers that are due, not to the number of sessions.  A session's entry is
  pushed only when its deadline moves *earlier*; an entry that fires early
  (the deadline moved later) just reschedules, so heartbeats on busy
  sessions cost no heap churn;
* maintains the node's private prekeys on the same heap of time (rotation,
  pruning, one-time refill: :meth:`PrekeyStore.maintain`), journalling the
  new private keys so they are committed before any packet that names them
  (a bundle, a RESPONSE) leaves;
* admits handshake-opening packets (INIT, RESUME, BUNDLE_REQUEST) through
  per-host and global budgets before any crypto is spent on them, and
  quarantines hosts that keep failing (:mod:`l2session.core.management.admission`);
* with a store (``Context.store``), writes persistent sessions through it and
  commits before any packet leaves (:meth:`commit`, :meth:`restore`; the
  rules are in :mod:`l2session.core.lifecycle.persistence`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.events import PacketRejected, SessionEvent, StateChanged
from l2session.core.lifecycle import establishment, liveness, persistence
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.envelope import AccessGate
from l2session.core.link.session import Session
from l2session.core.management import accepting
from l2session.core.management.admission import AdmissionControl
from l2session.core.management.book import SessionBook
from l2session.core.management.context import Capability, Context
from l2session.core.management.dispatch import dispatch
from l2session.core.paths import migration, multipath
from l2session.core.states import SENDING, State, TransitionRecord, Trigger
from l2session.crypto.handshake_messages import TYPE_INIT
from l2session.errors import (
    ConfigError,
    InvalidState,
    L2SessionError,
    MalformedMessage,
    MissingCapability,
    PeerQuarantined,
    TransportFailed,
)
from l2session.wire.packets import (
    HandshakePacket,
    decode_packet,
)

_log = logging.getLogger("l2session.session")

DEFAULT_PATHS: Final = ("quic", "tcp")
_MAX_RUNS_PER_TICK: Final = 4
_MIN_TIMER_STEP: Final = 0.001


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A packet for the runtime to put on a transport."""

    address: str
    path: str
    data: bytes


class SessionManager(SessionBook):
    """All sessions of one node (SPEC-018 §5.2 ``establish``, ``resume``,
    ``accept``, ``tick``).  What it knows (sessions, routing tables,
    tickets, quarantine, path reports) is its base, :class:`SessionBook`;
    this class is what it does: timers, the outbox, commits, the API."""

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
        #: The Membrane that screens capability requests (core/lifecycle/screening.py);
        #: None delivers requests unscreened.  May be set at any time.
        self.gate = gate
        self.config = config or SessionConfig()
        super().__init__(self.config, ctx.store, paths)
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
        durable without sending (see core/lifecycle/persistence.py)."""
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
        its multipath strategy picks (core/paths/multipath.py)."""
        if session.address is None:
            raise TransportFailed(f"no address is known for {session.peer_did}")
        routes = session.routes
        if routes is not None and routes.extra:
            for address, path in multipath.targets(session):
                self._outbox.append(Outgoing(address, path, data))
            return
        self._outbox.append(Outgoing(session.address, session.path, data))

    def send_raw(self, address: str, path: str, data: bytes) -> None:
        self._outbox.append(Outgoing(address, path, data))

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

    def reject(self, address: str, reason: str, peer_did: str | None = None) -> None:
        """Count a refused packet under ``reason`` and report it."""
        self.rejections[reason] = self.rejections.get(reason, 0) + 1
        self._events.append(PacketRejected(address, reason, peer_did))

    def admit(self, address: str, now: float, *, known: bool = False) -> bool:
        """Charge a handshake-opening packet from ``address`` to admission
        control (core/management/admission.py) before any crypto is spent on it; a
        refused one is counted and reported here.  ``known``: it comes from
        a peer we hold a session or ticket with (no global budget)."""
        reason = self.admission.admit(address, now, known=known)
        if reason is None:
            return True
        self.reject(address, reason)
        return False

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

    def _make_durable(self, session: Session) -> None:
        if self.journal is not None and session.config.kind is SessionKind.PERSISTENT:
            persistence.attach(session, self.journal)
            self.dirty(session)

    def forget(self, session: Session) -> None:
        """The session ended: drop it from every table and queue."""
        if self.remove(session) and session.journal is not None:
            session.journal.delete_session(session.peer_did)
        self._dirty.discard(session)
        self._to_flush.pop(session, None)

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
        return accepting.on_init(self, packet, address, path, self.now(), config or self.config)

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
            if liveness.may_dial(session) and self.ctx.crypto_pqxdh is not None:
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
            dispatch(self, data, address, path, now)
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
        again (see core/paths/multipath.py)."""
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
        new route before it uses it (core/paths/migration.py).  Keys stay."""
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


def manager_for(ctx: Context) -> SessionManager:
    """The session manager bound to ``ctx`` (created on first use): the
    one :mod:`l2session.core.api`'s functions act on."""
    for bound in ctx._manager:
        if isinstance(bound, SessionManager):
            return bound
    return SessionManager(ctx)


def _reached_at(session: Session, address: str) -> bool:
    """Whether ``address`` is where ``session`` sends: its primary route
    or another validated one (any path)."""
    if session.address == address:
        return True
    routes = session.routes
    return routes is not None and any(route[0] == address for route in routes.extra)
