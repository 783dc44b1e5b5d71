"""One session with one peer: state, delivery, liveness and key epochs.

A :class:`Session` is the long-lived relationship with a peer DID.  Its keys
come and go (handshake, rotation, resumption, re-handshake after a failure)
but its delivery streams, its queue and its audit trail stay, which is what
lets it survive partitions, restarts of the transport and key changes
without losing or repeating a message.

Sans-I/O: every method takes ``now``; outgoing packets go to the owner's
outbox and the next deadline to its timer heap (the owner is the manager,
seen through its port :class:`~l2session.core.link.owner.SessionOwner`).
The session holds the state and routes: the application API, the records
of an opened DATA packet, the timer; the behaviours (core/lifecycle/,
core/paths/) are functions over it, each through its own port.  It owns
delivery (SYNC, ACK, packing messages into packets) itself.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from functools import partial
from typing import Final

from l2session.codec import clip_utf8
from l2session.core.config import SessionConfig, SessionKind
from l2session.core.events import MessagesAvailable, SessionClosedEvent
from l2session.core.lifecycle import liveness, rotating, screening
from l2session.core.lifecycle.persistence import Journal
from l2session.core.lifecycle.resumption import PendingResume
from l2session.core.lifecycle.rotation import Rotation
from l2session.core.link import envelope
from l2session.core.link.channel import Channel
from l2session.core.link.delivery import Inbound, Outbound
from l2session.core.link.owner import SessionOwner
from l2session.core.paths import migration
from l2session.core.paths.multipath import Route, Routes
from l2session.core.paths.race import PathRace
from l2session.core.states import (
    CARRYING,
    SENDING,
    State,
    StateMachine,
    TransitionRecord,
    Trigger,
)
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.errors import (
    InvalidState,
    MessageTooLarge,
    SessionClosed,
    SessionTimeout,
)
from l2session.wire.packets import DataPacket
from l2session.wire.records import (
    MAX_REASON_BYTES,
    Ack,
    Close,
    Heartbeat,
    HeartbeatAck,
    Message,
    Record,
    RotateInit,
    RotateResponse,
    Sync,
)

_log = logging.getLogger("l2session.session")

#: Payload bytes packed into one DATA packet.
PACKET_BUDGET: Final = 16_384


class Session:
    """A session with one peer DID (SPEC-018 ``Session``)."""

    __slots__ = (
        "_address",
        "_closed",
        "_ephemeral_sends",
        "_indexed",
        "_peer_synced",
        "_sync_pending",
        "ack_at",
        "answered_at",
        "answers",
        "bundle_nonce",
        "channel",
        "config",
        "degraded_at",
        "denied",
        "down_since",
        "early_unconfirmed",
        "established_once",
        "failure_reason",
        "handshake",
        "handshake_deadline",
        "handshake_packet",
        "handshake_resend_at",
        "handshake_route",
        "handshake_sends",
        "hb_counter",
        "hb_misses",
        "hb_outstanding",
        "hb_peer",
        "hb_replies",
        "hb_sent_at",
        "inbound",
        "journal",
        "last_inbound",
        "lease_until",
        "machine",
        "no_early_data",
        "opened_by_peer",
        "outbound",
        "owner",
        "path",
        "peer_did",
        "peer_signing_key",
        "pq_keyed_at",
        "prekey_retries",
        "race",
        "refused_responses",
        "rejected",
        "resume",
        "retry_at",
        "retry_attempt",
        "rotation",
        "routes",
        "rtt",
        "timer_at",
        "validation",
    )

    def __init__(
        self,
        owner: SessionOwner[Session],
        peer_did: str,
        config: SessionConfig,
        *,
        stream: int,
        address: str | None,
        path: str,
        now: float,
    ) -> None:
        self.owner = owner
        self.peer_did = peer_did
        self.config = config
        self.machine = StateMachine(peer_did, sink=owner.record_transition, history_limit=32)
        #: Whether the manager's address index holds this session (set by
        #: the manager while the session is one of its sessions).
        self._indexed = False
        self._address = address
        self.path = path
        #: Other validated routes and path validation, allocated when first
        #: needed (core/paths/multipath.py, core/paths/migration.py).
        self.routes: Routes | None = None
        self.validation: migration.PathValidation | None = None
        self.channel: Channel | None = None
        self.outbound = Outbound(
            stream,
            limit=config.max_queued,
            max_message=config.max_message_size + envelope.MAX_OVERHEAD,
            initial_rto=config.initial_rto,
            max_rto=config.max_rto,
        )
        self.inbound = Inbound(reorder_limit=config.max_reorder, inbox_limit=config.max_inbox)
        self.inbound.screen = partial(screening.screen, self)
        #: The Membrane's bookkeeping (core/lifecycle/screening.py), None until used.
        #: Our messages the peer refused, most recent last: seq -> reason.
        self.denied: OrderedDict[int, str] | None = None
        #: Set (by the manager) for a persistent session on a node with a store.
        self.journal: Journal | None = None
        self.peer_signing_key: bytes | None = None
        self.pq_keyed_at = 0.0
        self.handshake: InitiatorHandshake | ResponderHandshake | None = None
        self.handshake_packet: bytes | None = None
        self.handshake_deadline: float | None = None
        self.handshake_resend_at: float | None = None
        #: Transmissions of ``handshake_packet`` so far (resend backoff).
        self.handshake_sends = 0
        #: Where this attempt's handshake answers go when it is not the
        #: primary route: a handshake or RESUME packet never re-addresses a
        #: session that was established; its source is answered and, once
        #: the attempt completes, validated as a migration candidate.
        self.handshake_route: tuple[str, str] | None = None
        self.resume: PendingResume | None = None
        #: Messages sent as 0-RTT early data whose fate the peer's SYNC in
        #: the resumed channel settles (core/lifecycle/early.py).
        self.early_unconfirmed: tuple[int, ...] | None = None
        #: A 0-RTT attempt timed out: resume without early data from now on
        #: (the peer may predate RESUME_EARLY).
        self.no_early_data = False
        self.bundle_nonce: bytes | None = None
        #: The paths an establishment attempt races (core/paths/race.py).
        self.race: PathRace | None = None
        #: Fresh bundles fetched in this attempt after PREKEY_GONE.
        self.prekey_retries = 0
        #: When this attempt's signed BUNDLE came: the peer is busy, not gone.
        self.answered_at: float | None = None
        #: The last handshake message answered and our answer, so that a
        #: retransmission gets the same answer instead of a new handshake.
        self.answers: dict[bytes, bytes] | None = None
        #: RESPONSEs with an invalid signature refused in this attempt: an
        #: unauthenticated packet fails nothing, but an attempt that ends
        #: without a valid RESPONSE after one fails authentication_failed.
        self.refused_responses = 0
        self.rotation: Rotation | None = None
        self.failure_reason = ""
        self.retry_at: float | None = None
        self.retry_attempt = 0
        self.established_once = False
        #: Created by a peer's INIT (we are the responder) and not yet
        #: established: if that handshake dies, nothing of ours is lost, and
        #: retrying would make a stranger's INIT cost us reconnect attempts.
        self.opened_by_peer = False
        self.timer_at: float | None = None
        self.rejected = 0
        self._closed = False
        self._sync_pending = False
        self._peer_synced = False
        self.ack_at: float | None = None
        self.last_inbound = 0.0
        self.lease_until = now + config.ttl
        self.hb_counter = 0
        self.hb_outstanding = 0
        self.hb_sent_at = 0.0
        #: The last heartbeat's round trip (seconds), None before the first.
        self.rtt: float | None = None
        self.hb_misses = 0
        self.hb_peer = 0
        self.hb_replies: list[int] | None = None
        self.degraded_at: float | None = None
        self.down_since: float | None = None
        self._ephemeral_sends = 0

    @property
    def address(self) -> str | None:
        """Where the peer is reached (the primary route's address)."""
        return self._address

    @address.setter
    def address(self, value: str | None) -> None:
        old = self._address
        if value != old:
            self._address = value
            if self._indexed:
                self.owner.address_moved(self, old, value)

    def __repr__(self) -> str:
        return f"Session({self.peer_did!r}, state={self.state.value})"

    # ------------------------------------------------------------------
    # introspection

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def history(self) -> tuple[TransitionRecord, ...]:
        """This session's audit trail (most recent transitions)."""
        return self.machine.history

    @property
    def session_id(self) -> bytes | None:
        return self.channel.session_id if self.channel else None

    @property
    def key_epoch(self) -> int | None:
        return self.channel.send_epoch if self.channel else None

    @property
    def queued(self) -> int:
        """Messages sent but not yet acknowledged by the peer."""
        return len(self.outbound)

    @property
    def available(self) -> int:
        """Messages delivered and waiting for :meth:`receive`."""
        return self.inbound.available

    @property
    def sent(self) -> int:
        """How many messages this session's stream has numbered so far (the
        next :meth:`send` gets this sequence number).  After a restart it
        counts exactly the sends that were committed, so an application
        that numbers its messages resumes sending from here."""
        return self.outbound.next_seq

    @property
    def heartbeat_misses(self) -> int:
        return self.hb_misses

    # ------------------------------------------------------------------
    # application API (SPEC-018 §5.2)

    def send(self, message: bytes, request: envelope.Request | None = None) -> int:
        """Queue ``message`` for exactly-once, in-order delivery; returns
        its sequence number.  It goes out with the manager's next
        ``datagrams_to_send()`` if the session is established (messages
        queued together share packets), else it is held until it is
        (degraded, suspended, failed).  Raises QueueFull when the queue is
        at its limit.  With ``request`` the message asks the peer's
        Membrane for that capability (a refusal arrives as MessageDenied)."""
        if self._closed:
            raise SessionClosed(f"the session with {self.peer_did} is closed")
        if self.config.kind is SessionKind.EPHEMERAL:
            if self._ephemeral_sends:
                raise InvalidState("an ephemeral session carries one message each way")
            self._ephemeral_sends += 1
        payload = bytes(message)
        if len(payload) > self.config.max_message_size:
            raise MessageTooLarge(
                f"message of {len(payload)} bytes exceeds the limit of "
                f"{self.config.max_message_size} (SessionConfig.max_message_size)"
            )
        payload = envelope.wrap(payload, request)
        seq = self.outbound.enqueue(payload)
        if self.journal is not None:
            self.journal.put_outbound(self.peer_did, seq, payload)
            self.owner.dirty(self)
        if self.state in SENDING:
            # Packed at the manager's next datagrams_to_send(): a burst of
            # sends shares packets (one AEAD and one ratchet step each).
            self.owner.want_flush(self)
        return seq

    def receive(self, timeout: float | None = None) -> bytes:
        """The next delivered message.  Sans-I/O, this never waits: with
        nothing delivered it raises SessionTimeout at once (the asyncio
        runtime waits up to ``timeout``).  With a store, the hand-off is
        committed before the message is returned: it is never delivered
        again, even after a crash."""
        messages = self.receive_many(1)
        if not messages:
            if self._closed:
                raise SessionClosed(f"the session with {self.peer_did} is closed")
            raise SessionTimeout(f"no message from {self.peer_did} is waiting")
        return messages[0]

    def try_receive(self) -> bytes | None:
        """The next delivered message, or None (committed like :meth:`receive`)."""
        messages = self.receive_many(1)
        return messages[0] if messages else None

    def peek(self, max_count: int = 1024) -> list[bytes]:
        """Up to ``max_count`` delivered messages without taking them: a
        relay (the CLI's ``listen``) forwards them, and calls
        :meth:`receive_many` with the count its client confirmed."""
        return screening.peek(self, max_count)

    def peek_deliveries(self, max_count: int = 1024) -> list[tuple[int, envelope.Delivery]]:
        """:meth:`peek` with each message's (stream, sequence number) and
        request: what a relay needs to let its consumer deduplicate."""
        return screening.peek_deliveries(self, max_count)

    def receive_many(self, max_count: int = 1024) -> list[bytes]:
        """Up to ``max_count`` delivered messages, in order, with one commit
        for all of them (group commit; :meth:`receive` is this with 1)."""
        return [d.payload for d in self.receive_deliveries(max_count)]

    def receive_deliveries(self, max_count: int = 1024) -> list[envelope.Delivery]:
        """Like :meth:`receive_many`, with each message's sequence number
        and the capability it asked for (which the Membrane allowed)."""
        expected = self.inbound.next_expected
        out = screening.take(self, max_count)
        if out:
            if self.journal is not None:
                if self.inbound.next_expected != expected:
                    self.owner.dirty(self)  # held messages moved into the inbox
                self.owner.commit()
            self._after_read()
            if self.inbound.ack_needed and not self._closed:
                # Reading made room: held messages moved into the inbox.
                self.owner.want_flush(self)
        return out

    def ephemeral_answered(self) -> None:
        """A denial notice is this ephemeral session's one answer."""
        self._ephemeral_sends += 1

    def _after_read(self) -> None:
        if self.config.kind is SessionKind.EPHEMERAL and self._ephemeral_done():
            self.close("ephemeral exchange complete")

    def _ephemeral_done(self) -> bool:
        return (
            self._ephemeral_sends > 0
            and not self.outbound
            and self.inbound.next_expected > 0
            and not self.inbound.available
        )

    def close(self, reason: str = "closed by application") -> None:
        """Tell the peer (best effort) and remove the session.  Not a state
        transition: SPEC-018 §3 has no edge out of ``established`` to the
        end; closing ends the session object itself."""
        if self._closed:
            return
        if self.channel is not None and self.state in CARRYING:
            self.send_records([Close(clip_utf8(reason, MAX_REASON_BYTES) or "closed")])
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        self._closed = True
        _log.info("session %s closed: %s", self.peer_did, reason)
        self.owner.forget(self)
        self.owner.emit(SessionClosedEvent(self.peer_did, reason))

    # ------------------------------------------------------------------
    # transitions

    def fire(self, trigger: Trigger, now: float, reason: str = "") -> None:
        self.machine.fire(trigger, now=now, reason=reason)
        if trigger is Trigger.CLEANUP:
            self._finish(reason or "cleanup")

    def fail(self, trigger: Trigger, now: float, reason: str) -> None:
        """Enter ``failed`` and schedule a retry (see :func:`liveness.fail`)."""
        liveness.fail(self, trigger, now, reason)

    # ------------------------------------------------------------------
    # keys

    def restart_delivery(self) -> None:
        """A new channel was installed (core/lifecycle/establishment.py
        ``install_channel``): reconcile delivery with the peer, SYNC first,
        then resend what it lacks.  Acknowledgements owed in the old channel
        are re-derived after the peer's SYNC in this one, so that every ACK
        sent in a channel follows that channel's SYNC (the peer relies on it)."""
        self._sync_pending = True
        self._peer_synced = False
        self.inbound.ack_needed = False
        self.ack_at = None
        self.outbound.resend_all()

    # ------------------------------------------------------------------
    # inbound

    def on_data(self, packet: DataPacket, now: float, source: Route | None = None) -> None:
        """One DATA packet routed here by session id, from ``source``
        (address, path).  Raises the channel's typed errors for packets
        that do not authenticate (nothing changes)."""
        channel = self.channel
        if channel is None or self._closed:
            raise InvalidState("no channel is established for this session id")
        records = channel.open(packet)
        self.owner.authenticated(self)
        liveness.on_authenticated(self, now)
        if source is not None:
            migration.check_source(self, records, source, now)
        # Messages, nearly all of a busy packet, are taken inline, and one
        # MessagesAvailable tells of all delivered by a run of them (not one
        # event per message); it goes out before any other record's effect.
        inbound, delivered = self.inbound, False
        for record in records:
            if type(record) is Message:
                if self._peer_synced and inbound.accept(record):
                    delivered = True
                continue
            if delivered:
                self.owner.emit(MessagesAvailable(self.peer_did, inbound.available))
                delivered = False
            self._on_record(record, now, source)
        if delivered:
            self.owner.emit(MessagesAvailable(self.peer_did, inbound.available))
        rotating.after_epoch(self, packet.epoch, now)
        if not self._closed:
            self.flush(now)

    def _on_record(self, record: Record, now: float, source: Route | None = None) -> None:
        if isinstance(record, Message):
            if self._peer_synced and self.inbound.accept(record):
                self.owner.emit(MessagesAvailable(self.peer_did, self.inbound.available))
        elif isinstance(record, Ack):
            self._sync_pending = False
            self._acked(record)
            if self.config.kind is SessionKind.EPHEMERAL and self._ephemeral_done():
                self.close("ephemeral exchange complete")
        elif isinstance(record, Sync):
            self._on_sync(record)
        elif isinstance(record, Heartbeat):
            liveness.on_heartbeat(self, record.counter)
        elif isinstance(record, HeartbeatAck):
            liveness.on_heartbeat_ack(self, record.counter, now)
        elif isinstance(record, RotateInit):
            rotating.on_init(self, record, now)
        elif isinstance(record, RotateResponse):
            rotating.on_response(self, record, now)
        elif isinstance(record, Close):
            self._finish(f"closed by peer: {record.reason}")
        elif isinstance(record, migration.PATH_RECORDS) and source is not None:
            migration.on_record(self, record, source, now)
        # RotateDone carries no data: the epoch it arrives under is the news.

    def _on_sync(self, sync: Sync) -> None:
        self.inbound.apply_sync(sync)
        if self.journal is not None:
            self.owner.dirty(self)
        self._peer_synced = True
        if sync.in_stream == self.outbound.stream:
            self._acked(Ack(sync.next_expected))
        early, self.early_unconfirmed = self.early_unconfirmed, None
        if early:
            # 0-RTT messages the peer's SYNC does not acknowledge (it
            # ignored or could not keep them) go again now, not after a
            # retransmission timeout.
            self.outbound.requeue(early)

    def on_early_records(self, records: list[Record], now: float) -> None:
        """The SYNC and messages of a verified 0-RTT flight, handled exactly
        like the same records in DATA: the inbound stream deduplicates them
        and the Membrane screens them (core/lifecycle/early.py)."""
        for record in records:
            self._on_record(record, now)

    def _acked(self, ack: Ack) -> None:
        outbound = self.outbound
        if outbound.on_ack(ack) and self.journal is not None:
            below = min(ack.next_expected, outbound.next_seq)
            self.journal.ack_outbound(self.peer_did, below, ack.ranges)

    # ------------------------------------------------------------------
    # liveness and timers: the logic lives in core/lifecycle/liveness.py

    def connectivity(self, up: bool, now: float) -> None:
        """The transport reports the path to the peer lost or restored
        (SPEC-018 §2.3); see :func:`liveness.connectivity`."""
        liveness.connectivity(self, up, now)

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`on_timer` has something to do."""
        return liveness.next_deadline(self)

    def on_timer(self, now: float) -> None:
        """Do everything that is due at ``now`` (the manager calls this)."""
        liveness.on_timer(self, now)

    # ------------------------------------------------------------------
    # rotation (DESIGN.md §2.3): the protocol lives in core/lifecycle/rotating.py

    def rotation_due_at(self) -> float:
        """When this side starts the next rotation (0.0: due now, volume)."""
        return rotating.due_at(self)

    # ------------------------------------------------------------------
    # outbound

    def send_records(self, records: list[Record], now: float | None = None) -> None:
        assert self.channel is not None
        if self._sync_pending:
            records = [self.outbound.sync(self.inbound), *records]
        self.owner.transmit(self, self.channel.seal(records, now))

    def flush(self, now: float) -> None:
        """Send what is due: SYNC, heartbeat answers, acknowledgements and
        queued messages, packed into as few packets as the budget allows."""
        state = self.state
        if self.channel is None or self._closed or state not in CARRYING:
            return
        control: list[Record] = []
        replies = self.hb_replies
        if replies:
            control.extend(HeartbeatAck(c) for c in replies)
            self.hb_replies = None
        messages: list[Message] = []
        if state in SENDING:
            messages = self.outbound.take(now, PACKET_BUDGET, self.config.max_batch)
        inbound = self.inbound
        # No ACK in a channel before the peer's SYNC in it: the peer stops
        # sending SYNC once it is acknowledged, and what we acknowledge
        # means nothing until we know which of its streams it speaks of.
        ack_needed = inbound.ack_needed and self._peer_synced
        if ack_needed and (messages or control or self._ack_due(now)):
            control.append(inbound.ack())
            self.ack_at = None
        elif ack_needed and self.ack_at is None:
            self.ack_at = now + self.config.ack_delay
        elif not ack_needed:
            self.ack_at = None
        # take() bounds each batch by payload size and count, so one batch
        # is one packet; control records ride in the first.
        batch: list[Record] = [*control, *messages]
        while batch:
            self.send_records(batch, now)
            batch = []
            if self.state in SENDING and self.outbound.has_unsent:
                batch.extend(self.outbound.take(now, PACKET_BUDGET, self.config.max_batch))
        # The packets are out: draw a due DH step's key pair now rather
        # than in the next send (a no-op unless that send will step).
        self.channel.prepare_step(now)
        self.owner.reschedule(self)

    def _ack_due(self, now: float) -> bool:
        return self.ack_at is not None and self.ack_at <= now
