"""Getting a session to ``established``, the initiator's side: PQXDH,
prekey bundles, resumption.

Initiator: with a resumption ticket that is still fresh, RESUME (one round
trip, no KEM work); otherwise the peer's prekey bundle (from
``ctx.bundles`` or fetched with BUNDLE_REQUEST), then PQXDH INIT ->
RESPONSE -> FINISH.  Every step is resent while unanswered, after
``resend_interval`` and then backing off to ``resend_max_interval``
(SessionConfig), and the whole attempt is bounded by ``handshake_timeout``.

The responder's side is split in two: admitting and answering an opening
packet, which may create a session, belongs to the manager
(:mod:`l2session.core.management.accepting`); what then happens to that
session (FINISH, arriving at ``established``) is
:mod:`l2session.core.lifecycle.responding`.

Crossing attempts (both sides start at once, e.g. both recovering from the
same partition) resolve by DID order: the lower DID's attempt wins, and the
other side answers it instead of pursuing its own.

Everything here talks to the session through :class:`EstablishmentPort`
(wsproto's shape: the handshake hands a channel over to the session,
:func:`install_channel`), and to the manager through :class:`EstablishmentOwner`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol, Self, TypeVar

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.lifecycle import early, resumption
from l2session.core.lifecycle.resumption import PendingResume, StoredSession
from l2session.core.lifecycle.rotation import Rotation
from l2session.core.link.channel import Channel
from l2session.core.link.delivery import Inbound
from l2session.core.link.keyschedule import initial_lineage
from l2session.core.paths import migration, race
from l2session.core.paths.migration import MigrationOwner, MigrationPort
from l2session.core.paths.multipath import Route
from l2session.core.paths.race import RaceOwner, RacePort
from l2session.core.states import State, Trigger
from l2session.crypto.pqxdh import HandshakeResult, InitiatorHandshake, ResponderHandshake
from l2session.crypto.ratchet import DoubleRatchet
from l2session.errors import AuthenticationFailed, MalformedMessage
from l2session.identity.bundle import PrekeyBundle
from l2session.identity.resolver import resolve_signing_key
from l2session.wire.packets import (
    GONE_ONE_TIME,
    BundlePacket,
    BundleRequest,
    HandshakePacket,
    PrekeyGonePacket,
    ResumeAckPacket,
    ResumeRejectPacket,
    encode_packet,
)
from l2session.wire.records import Message, Record

_log = logging.getLogger("l2session.session")

#: Fresh bundles one establishment attempt fetches after PREKEY_GONE.
MAX_PREKEY_RETRIES = 3

S_contra = TypeVar("S_contra", contravariant=True)


class EstablishmentOwner(RaceOwner[S_contra], MigrationOwner[S_contra], Protocol[S_contra]):
    """What establishment needs of the session's owner (the manager):
    routing by session id and ticket id, the tickets, the timer heap."""

    @property
    def stored(self) -> Mapping[str, StoredSession]: ...

    def route(self, session: S_contra, session_id: bytes, /) -> None: ...

    def unroute(self, session: S_contra, session_id: bytes, /) -> None: ...

    def route_ticket(self, session: S_contra, ticket_id: bytes, /) -> None: ...

    def unroute_ticket(self, ticket_id: bytes) -> None: ...

    def save_ticket(self, stored: StoredSession) -> None: ...

    def drop_ticket(self, stored: StoredSession) -> None: ...

    def quarantine(self, did: str, address: str | None, now: float) -> None: ...

    def reschedule(self, session: S_contra, /) -> None: ...


class EstablishmentPort(RacePort, MigrationPort, Protocol):
    """The fields and calls of a session that establishment uses: the
    attempt's handshake state, which it owns, and the hand-over calls
    (``restart_delivery``, ``fire``, ``fail``)."""

    path: str
    channel: Channel | None
    peer_signing_key: bytes | None
    pq_keyed_at: float
    rotation: Rotation | None
    hb_outstanding: int
    hb_misses: int
    hb_peer: int
    degraded_at: float | None
    last_inbound: float
    lease_until: float
    failure_reason: str
    established_once: bool
    retry_attempt: int
    handshake: InitiatorHandshake | ResponderHandshake | None
    handshake_packet: bytes | None
    handshake_deadline: float | None
    handshake_resend_at: float | None
    handshake_sends: int
    handshake_route: tuple[str, str] | None
    resume: PendingResume | None
    early_unconfirmed: tuple[int, ...] | None
    no_early_data: bool
    bundle_nonce: bytes | None
    prekey_retries: int
    answered_at: float | None
    answers: dict[bytes, bytes] | None
    refused_responses: int
    retry_at: float | None

    @property
    def address(self) -> str | None: ...

    @address.setter
    def address(self, value: str | None) -> None: ...

    @property
    def inbound(self) -> Inbound: ...

    @property
    def owner(self) -> EstablishmentOwner[Self]: ...

    def fire(self, trigger: Trigger, now: float, reason: str = ...) -> None: ...

    def fail(self, trigger: Trigger, now: float, reason: str) -> None: ...

    def restart_delivery(self) -> None: ...

    def flush(self, now: float) -> None: ...


def install_channel(
    session: EstablishmentPort,
    channel: Channel,
    *,
    peer_signing_key: bytes,
    pq_keyed_at: float,
    now: float,
) -> None:
    """The hand-over: a handshake or resumption produced a new channel.  The
    session adopts it (routed by its id from now on), the attempt's state
    is cleared, liveness starts afresh, and delivery is reconciled with the
    peer (``restart_delivery``: SYNC, then resend what it lacks)."""
    owner = session.owner
    old = session.channel
    if old is not None:
        owner.unroute(session, old.session_id)
    session.channel = channel
    owner.route(session, channel.session_id)
    session.peer_signing_key = peer_signing_key
    session.pq_keyed_at = pq_keyed_at
    session.handshake = None
    session.handshake_packet = None
    session.handshake_deadline = None
    session.handshake_resend_at = None
    session.race = None
    session.resume = None
    session.early_unconfirmed = None
    session.rotation = None
    session.retry_at = None
    session.failure_reason = ""
    session.hb_outstanding = 0
    session.hb_misses = 0
    # A peer that restarted counts its heartbeats from 1 again; replays
    # within a channel are the ratchet's replay window's business.
    session.hb_peer = 0
    session.degraded_at = None
    session.last_inbound = now
    session.lease_until = now + session.config.ttl
    session.restart_delivery()
    if session.journal is not None:
        owner.dirty(session)  # the address or path may have changed


def on_established(session: EstablishmentPort, now: float) -> None:
    """An attempt completed (either side): reset the retry count, offer a
    direct path if the session came up over a relay, send what waits."""
    session.established_once = True
    session.retry_attempt = 0
    migration.offer_punch(session, now)
    session.flush(now)


# ----------------------------------------------------------------------
# initiator


def begin(session: EstablishmentPort, now: float, trigger: Trigger, reason: str) -> None:
    """Enter ``handshake_initiated`` and send the first message."""
    session.fire(trigger, now, reason)
    session.prekey_retries = 0
    session.answered_at = None
    session.handshake_deadline = now + session.config.handshake_timeout
    session.handshake_route = None
    race.start(session, now)
    owner = session.owner
    stored = owner.stored.get(session.peer_did)
    if stored is not None and resumable(stored, session.config, now):
        pending = resumption.start_resume(stored, rng=owner.ctx.rng, now=now)
        session.resume = pending
        owner.route_ticket(session, pending.packet.ticket_id)
        records = _early_records(session, now)
        if records:
            pending.early_seqs = tuple(r.seq for r in records if isinstance(r, Message))
            packet = encode_packet(early.seal(stored, pending.packet, records))
        else:
            packet = encode_packet(pending.packet)
        send_handshake(session, packet, now)
        return
    start_full(session, now)


def _early_records(session: EstablishmentPort, now: float) -> list[Record]:
    """0-RTT: the SYNC and the queued messages that go into the RESUME
    (within ``early_data_bytes``), or nothing."""
    config = session.config
    if (
        config.early_data_bytes == 0
        or config.kind is not SessionKind.PERSISTENT
        or session.no_early_data
        or not session.outbound.has_unsent
    ):
        return []
    messages = session.outbound.take(
        now, config.early_data_bytes, config.max_batch, at_least_one=False
    )
    if not messages:
        return []
    return [session.outbound.sync(session.inbound), *messages]


def resumable(stored: StoredSession, config: SessionConfig, now: float) -> bool:
    """A ticket is used only while it is younger than ``ttl`` and the last
    post-quantum keying is not yet due for rotation."""
    return (
        config.kind is SessionKind.PERSISTENT
        and now - stored.issued_at < config.ttl
        and now - stored.pq_keyed_at < config.rotate_at_age
    )


def start_full(session: EstablishmentPort, now: float) -> None:
    owner = session.owner
    ctx = owner.ctx
    bundle = ctx.bundles(session.peer_did) if ctx.bundles is not None else None
    if bundle is not None:
        _send_init(session, bundle, now)
        return
    _request_bundle(session, now)


def _request_bundle(session: EstablishmentPort, now: float) -> None:
    """Ask the peer itself for its bundle (BUNDLE_REQUEST)."""
    owner = session.owner
    nonce = owner.ctx.rng.random_bytes(16)
    session.bundle_nonce = nonce
    owner.route_ticket(session, nonce)
    send_handshake(session, encode_packet(BundleRequest(nonce, session.peer_did)), now)


def send_handshake(session: EstablishmentPort, packet: bytes, now: float) -> None:
    session.handshake_packet = packet
    session.handshake_sends = 1
    session.handshake_resend_at = now + session.config.resend_delay(1)
    _transmit_handshake(session, packet)
    session.owner.reschedule(session)


def _transmit_handshake(session: EstablishmentPort, packet: bytes) -> None:
    route = session.handshake_route
    if route is not None:
        session.owner.send_raw(route[0], route[1], packet)
    else:
        race.send(session, packet)  # the primary, and every raced path


def _send_init(session: EstablishmentPort, bundle: PrekeyBundle, now: float) -> None:
    ctx = session.owner.ctx
    keys = ctx.keys
    handshake, init = InitiatorHandshake.start(
        local=keys.identity,
        peer_did=session.peer_did,
        peer_signing_key=resolve_signing_key(ctx.resolver, session.peer_did),
        signed_prekeys=bundle.signed_prekeys,
        one_time_prekey=bundle.pick_one_time(ctx.rng),
        rng=ctx.rng,
        now=now,
        encapsulator=keys.encapsulator,
        session_kind=session.config.kind.wire,
    )
    session.handshake = handshake
    session.refused_responses = 0
    if session.bundle_nonce is not None:
        session.owner.unroute_ticket(session.bundle_nonce)
    session.bundle_nonce = None
    session.owner.route(session, handshake.session_id)
    send_handshake(session, encode_packet(HandshakePacket(handshake.session_id, init)), now)


def on_prekey_gone(session: EstablishmentPort, packet: PrekeyGonePacket, now: float) -> None:
    """The peer no longer holds a prekey our INIT named (docs/PROTOCOL.md
    §3.11): fetch a fresh bundle from the peer at once (not from
    ``ctx.bundles``, which may hold the same stale one) and send a new
    INIT, at most :data:`MAX_PREKEY_RETRIES` times per attempt; after that
    the answer is ignored and the attempt runs into its handshake timeout
    like any unanswered one.  PREKEY_GONE is not authenticated, but it is
    only taken for the 16-byte random session id of our pending INIT, and
    what it can cause is what dropping our packets causes anyway."""
    handshake = session.handshake
    if (
        session.state is not State.HANDSHAKE_INITIATED
        or not isinstance(handshake, InitiatorHandshake)
        or handshake.session_id != packet.session_id
    ):
        raise MalformedMessage("PREKEY_GONE answers no INIT of ours")
    if session.prekey_retries >= MAX_PREKEY_RETRIES:
        raise MalformedMessage(
            f"PREKEY_GONE after {MAX_PREKEY_RETRIES} fresh bundles: left to the handshake timeout"
        )
    session.prekey_retries += 1
    owner = session.owner
    owner.unroute(session, handshake.session_id)
    session.handshake = None
    _log.info(
        "%s: %s prekey %d is gone; fetching a fresh bundle",
        session.peer_did,
        "one-time" if packet.reason == GONE_ONE_TIME else "signed",
        packet.prekey_id,
    )
    _request_bundle(session, now)


def on_bundle(
    session: EstablishmentPort, packet: BundlePacket, now: float, source: Route | None = None
) -> None:
    if session.bundle_nonce is None or packet.nonce != session.bundle_nonce:
        raise MalformedMessage("prekey bundle answers no request of ours")
    bundle = PrekeyBundle.decode(packet.bundle)
    if str(bundle.did) != session.peer_did:
        raise AuthenticationFailed("prekey bundle is for another DID", reason="wrong_did")
    bundle.verify(session.owner.ctx.resolver, now=now)
    race.settle(session, source, now)  # signed by the peer: this path works
    # A signed answer: the peer is there, working through a queue (a hub
    # that a crowd reached at once).  The INIT's round trip gets a full
    # handshake_timeout of its own (PROTOCOL.md §6.4): a peer that answers
    # each step within the timeout is slow, not gone; silence still fails
    # after one timeout.  At most MAX_PREKEY_RETRIES + 1 bundles per attempt.
    session.answered_at = now
    deadline = session.handshake_deadline
    if deadline is not None:
        session.handshake_deadline = max(deadline, now + session.config.handshake_timeout)
    _send_init(session, bundle, now)


def on_response(
    session: EstablishmentPort, message: bytes, now: float, source: Route | None = None
) -> None:
    handshake = session.handshake
    if not isinstance(handshake, InitiatorHandshake):
        cached = session.answers.get(message) if session.answers else None
        if cached is not None:
            _answer(session, cached, source)  # our FINISH was lost
            return
        raise MalformedMessage("handshake RESPONSE without a handshake waiting for it")
    try:
        result, finish = handshake.receive_response(message)
    except AuthenticationFailed as error:
        # Anyone who saw the session id can send this, from any address:
        # refuse and count it (the handshake state is unchanged), keep
        # waiting for the genuine RESPONSE, and fail authentication_failed
        # only if none arrives by handshake_timeout (on_handshake_timer).
        if error.reason == "invalid_signature":
            session.refused_responses += 1
        raise
    race.settle(session, source, now)  # authenticated: this path wins
    finish_packet = encode_packet(HandshakePacket(result.session_id, finish))
    session.owner.transmit(session, finish_packet)
    adopt(session, result, now)
    session.answers = {message: finish_packet}
    session.fire(Trigger.RECEIVE_VALID_RESPONSE, now, "PQXDH complete")
    on_established(session, now)


def _answer(session: EstablishmentPort, packet: bytes, source: Route | None) -> None:
    """Send a cached answer again: on the path the repeat came by when it
    comes from the peer's address (a racing peer, core/paths/race.py)."""
    route = race.answer_route(session, source)
    if route is None:
        session.owner.transmit(session, packet)
    else:
        session.owner.send_raw(*route, packet)


def on_resume_ack(
    session: EstablishmentPort, packet: ResumeAckPacket, now: float, source: Route | None = None
) -> None:
    pending = session.resume
    if pending is None:
        raise MalformedMessage("RESUME_ACK without a resumption waiting for it")
    keys, transcript = resumption.finish_resume(pending, packet)
    race.settle(session, source, now)  # authenticated: this path wins
    owner = session.owner
    owner.unroute_ticket(pending.packet.ticket_id)
    ratchet = DoubleRatchet.for_initiator(
        root_key=keys.epoch.root_key,
        chain_key=keys.epoch.chain_key,
        own_ephemeral=pending.ephemeral,
        peer_ephemeral=packet.ephemeral,
        associated_data=transcript,
        rng=owner.ctx.rng,
    )
    stored = pending.stored
    channel = Channel(
        session_id=keys.session_id,
        epoch=0,
        ratchet=ratchet,
        lineage=keys.epoch.lineage,
        keyed_at=now,
        step_interval=session.config.dh_step_interval,
        step_after=session.config.dh_step_after,
    )
    install_channel(
        session,
        channel,
        peer_signing_key=stored.peer_signing_key,
        pq_keyed_at=stored.pq_keyed_at,
        now=now,
    )
    if pending.early_seqs:
        # The 0-RTT messages reached the peer with the RESUME it answered:
        # not resent at once; its SYNC settles which it kept.
        session.outbound.mark_sent(pending.early_seqs, now)
        session.early_unconfirmed = pending.early_seqs
    owner.save_ticket(stored.successor(keys.next_secret, keys.epoch.lineage, now))
    session.fire(Trigger.RECEIVE_VALID_RESPONSE, now, "resumed")
    on_established(session, now)


def on_resume_reject(session: EstablishmentPort, packet: ResumeRejectPacket, now: float) -> None:
    """The peer does not know our ticket (it lost it, or it was used): fall
    back to a full handshake within the same attempt."""
    pending = session.resume
    if pending is None or pending.packet.ticket_id != packet.ticket_id:
        raise MalformedMessage("RESUME_REJECT for no resumption of ours")
    owner = session.owner
    owner.unroute_ticket(packet.ticket_id)
    owner.drop_ticket(pending.stored)
    session.resume = None
    session.handshake_deadline = now + session.config.handshake_timeout
    start_full(session, now)


def adopt(session: EstablishmentPort, result: HandshakeResult, now: float) -> None:
    lineage = initial_lineage(result.root_key, result.handshake_hash)
    channel = Channel(
        session_id=result.session_id,
        epoch=0,
        ratchet=result.ratchet,
        lineage=lineage,
        keyed_at=now,
        step_interval=session.config.dh_step_interval,
        step_after=session.config.dh_step_after,
    )
    install_channel(
        session, channel, peer_signing_key=result.peer_signing_key, pq_keyed_at=now, now=now
    )
    if session.config.kind is SessionKind.PERSISTENT:
        session.owner.save_ticket(
            StoredSession(
                local_did=result.local_did,
                peer_did=result.peer_did,
                peer_signing_key=result.peer_signing_key,
                resumption_secret=result.resumption_secret,
                lineage=lineage,
                pq_keyed_at=now,
                issued_at=now,
            )
        )


# ----------------------------------------------------------------------
# timers


def on_handshake_timer(session: EstablishmentPort, now: float) -> None:
    deadline = session.handshake_deadline
    assert deadline is not None
    if now >= deadline:
        owner = session.owner
        if isinstance(session.handshake, InitiatorHandshake | ResponderHandshake):
            owner.unroute(session, session.handshake.session_id)
        if session.resume is not None:
            owner.unroute_ticket(session.resume.packet.ticket_id)
            if session.resume.early_seqs:
                # The peer may predate RESUME_EARLY: the next attempt
                # resumes without early data.
                session.no_early_data = True
        session.handshake_deadline = None
        session.handshake_resend_at = None
        session.handshake_route = None
        forged, session.refused_responses = session.refused_responses, 0
        if session.state is State.HANDSHAKE_INITIATED and forged:
            # Only RESPONSEs with invalid signatures came (SPEC-018 §2.1).
            owner.quarantine(session.peer_did, session.address, now)
            session.fail(Trigger.INVALID_SIG, now, "authentication_failed")
        elif session.state in (State.HANDSHAKE_INITIATED, State.HANDSHAKE_RECEIVED):
            session.fail(Trigger.TIMEOUT, now, "timeout")
        else:
            session.handshake = None  # an abandoned re-key from the peer
        return
    resend = session.handshake_resend_at
    if resend is not None and now >= resend and session.handshake_packet is not None:
        session.handshake_sends += 1
        session.handshake_resend_at = now + session.config.resend_delay(session.handshake_sends)
        _transmit_handshake(session, session.handshake_packet)


def retry(session: EstablishmentPort, now: float) -> None:
    """A scheduled retry is due (failed: backoff; suspended: recovery)."""
    session.retry_at = None
    if session.owner.is_outbound_only(session.address):
        # The peer does not listen: only it can come back (its own retry
        # reaches us); dialling its old ephemeral port reaches nobody.
        _log.info("session %s: waiting for the outbound-only peer to return", session.peer_did)
        return
    if session.state is State.SUSPENDED:
        begin(session, now, Trigger.RETRY, "recovery attempt")
    else:
        begin(
            session,
            now,
            Trigger.RETRY_WITH_BACKOFF,
            f"retry {session.retry_attempt} after {session.failure_reason}",
        )
