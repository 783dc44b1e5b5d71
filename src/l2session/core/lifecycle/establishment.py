"""Getting a session to ``established``: PQXDH, prekey bundles, resumption.

Initiator: with a resumption ticket that is still fresh, RESUME (one round
trip, no KEM work); otherwise the peer's prekey bundle (from
``ctx.bundles`` or fetched with BUNDLE_REQUEST), then PQXDH INIT ->
RESPONSE -> FINISH.  Every step is resent while unanswered, after
``resend_interval`` and then backing off to ``resend_max_interval``
(SessionConfig), and the whole attempt is bounded by ``handshake_timeout``.

Responder: every INIT and RESUME is first charged to admission control
(:mod:`l2session.core.management.admission`: per-host and global budgets, host
quarantine), so an unknown source cannot buy the event loop with them; then
INIT is answered only after :class:`ResponderHandshake` verified it, so a
session object exists only for a peer that proved its DID; a peer that
fails authentication is quarantined before any expensive crypto is spent on
it again.  Repeated INIT/RESPONSE/RESUME bytes (the answer was lost) get the
cached answer, never a second handshake.

Crossing attempts (both sides start at once, e.g. both recovering from the
same partition) resolve by DID order: the lower DID's attempt wins, and the
other side answers it instead of pursuing its own.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.events import SessionAccepted
from l2session.core.lifecycle import early, resumption
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.channel import Channel
from l2session.core.link.keyschedule import initial_lineage
from l2session.core.link.session import Session
from l2session.core.paths import migration, multipath, race
from l2session.core.paths.multipath import Route
from l2session.core.states import State, Trigger
from l2session.crypto.pqxdh import HandshakeResult, InitiatorHandshake, ResponderHandshake
from l2session.crypto.ratchet import DoubleRatchet
from l2session.errors import (
    AuthenticationFailed,
    HandshakeError,
    L2SessionError,
    MalformedMessage,
    PrekeyNotFound,
)
from l2session.identity.bundle import PrekeyBundle
from l2session.identity.resolver import resolve_signing_key
from l2session.wire.packets import (
    GONE_ONE_TIME,
    GONE_SIGNED,
    REJECT_STALE,
    REJECT_UNKNOWN_TICKET,
    BundlePacket,
    BundleRequest,
    HandshakePacket,
    PrekeyGonePacket,
    ResumeAckPacket,
    ResumeEarlyPacket,
    ResumePacket,
    ResumeRejectPacket,
    encode_packet,
)
from l2session.wire.records import Message, Record

if TYPE_CHECKING:
    from l2session.core.management.manager import SessionManager
    from l2session.crypto.handshake_messages import HandshakeInit
    from l2session.identity.prekeys import PrekeyStore

_log = logging.getLogger("l2session.session")

#: Fresh bundles one establishment attempt fetches after PREKEY_GONE.
MAX_PREKEY_RETRIES = 3


# ----------------------------------------------------------------------
# initiator


def begin(session: Session, now: float, trigger: Trigger, reason: str) -> None:
    """Enter ``handshake_initiated`` and send the first message."""
    session.fire(trigger, now, reason)
    session.prekey_retries = 0
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
        _send_handshake(session, packet, now)
        return
    start_full(session, now)


def _early_records(session: Session, now: float) -> list[Record]:
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


def start_full(session: Session, now: float) -> None:
    owner = session.owner
    ctx = owner.ctx
    bundle = ctx.bundles(session.peer_did) if ctx.bundles is not None else None
    if bundle is not None:
        _send_init(session, bundle, now)
        return
    _request_bundle(session, now)


def _request_bundle(session: Session, now: float) -> None:
    """Ask the peer itself for its bundle (BUNDLE_REQUEST)."""
    owner = session.owner
    nonce = owner.ctx.rng.random_bytes(16)
    session.bundle_nonce = nonce
    owner.route_ticket(session, nonce)
    _send_handshake(session, encode_packet(BundleRequest(nonce, session.peer_did)), now)


def _send_handshake(session: Session, packet: bytes, now: float) -> None:
    session.handshake_packet = packet
    session.handshake_sends = 1
    session.handshake_resend_at = now + session.config.resend_delay(1)
    _transmit_handshake(session, packet)
    session.owner.reschedule(session)


def _transmit_handshake(session: Session, packet: bytes) -> None:
    route = session.handshake_route
    if route is not None:
        session.owner.send_raw(route[0], route[1], packet)
    else:
        race.send(session, packet)  # the primary, and every raced path


def _answer_at(session: Session, address: str, path: str) -> None:
    """An inbound attempt came from ``(address, path)``.  A session that
    was never established moves there; an established one keeps its route
    (the packet's source is a claim anyone who captured it can make) and
    only answers there (:func:`_follow` validates it afterwards)."""
    if not session.established_once or session.address is None:
        session.address, session.path = address, path
        session.handshake_route = None
    elif (address, path) == (session.address, session.path):
        session.handshake_route = None
    else:
        session.handshake_route = (address, path)


def _follow(session: Session, now: float) -> None:
    """A completed inbound attempt came from elsewhere: that route becomes
    a migration candidate, used only once PATH_CHALLENGE validates it."""
    route, session.handshake_route = session.handshake_route, None
    if route is not None and not multipath.is_known(session, route):
        migration.begin(session, route, now, move=True)


def _send_init(session: Session, bundle: PrekeyBundle, now: float) -> None:
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
    _send_handshake(session, encode_packet(HandshakePacket(handshake.session_id, init)), now)


def on_prekey_gone(session: Session, packet: PrekeyGonePacket, now: float) -> None:
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
    session: Session, packet: BundlePacket, now: float, source: Route | None = None
) -> None:
    if session.bundle_nonce is None or packet.nonce != session.bundle_nonce:
        raise MalformedMessage("prekey bundle answers no request of ours")
    bundle = PrekeyBundle.decode(packet.bundle)
    if str(bundle.did) != session.peer_did:
        raise AuthenticationFailed("prekey bundle is for another DID", reason="wrong_did")
    bundle.verify(session.owner.ctx.resolver, now=now)
    race.settle(session, source, now)  # signed by the peer: this path works
    _send_init(session, bundle, now)


def on_response(session: Session, message: bytes, now: float, source: Route | None = None) -> None:
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
    _adopt(session, result, now)
    session.answers = {message: finish_packet}
    session.fire(Trigger.RECEIVE_VALID_RESPONSE, now, "PQXDH complete")
    session.on_established(now)


def on_resume_ack(
    session: Session, packet: ResumeAckPacket, now: float, source: Route | None = None
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
    session.install_channel(
        channel, peer_signing_key=stored.peer_signing_key, pq_keyed_at=stored.pq_keyed_at, now=now
    )
    if pending.early_seqs:
        # The 0-RTT messages reached the peer with the RESUME it answered:
        # not resent at once; its SYNC settles which it kept.
        session.outbound.mark_sent(pending.early_seqs, now)
        session.early_unconfirmed = pending.early_seqs
    owner.save_ticket(stored.successor(keys.next_secret, keys.epoch.lineage, now))
    session.fire(Trigger.RECEIVE_VALID_RESPONSE, now, "resumed")
    session.on_established(now)


def on_resume_reject(session: Session, packet: ResumeRejectPacket, now: float) -> None:
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


def _adopt(session: Session, result: HandshakeResult, now: float) -> None:
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
    session.install_channel(
        channel, peer_signing_key=result.peer_signing_key, pq_keyed_at=now, now=now
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
# responder


def _yield_to(owner: SessionManager, session: Session | None, address: str) -> bool:
    """Whether an incoming attempt from ``address`` should be ignored
    because our own crossing attempt wins (lower DID).  Only when ours goes
    to that same address: an attempt from elsewhere means ours is aimed
    where the peer no longer is (both moved, and only the peer was told the
    new address), so waiting for ours to be answered would deadlock."""
    return (
        session is not None
        and session.state is State.HANDSHAKE_INITIATED
        and not isinstance(session.handshake, ResponderHandshake)
        and owner.local_did < session.peer_did
        and session.address == address
    )


def _enter_as_responder(session: Session, now: float, reason: str) -> bool:
    """Move an existing or new session to where an inbound attempt is
    answered; returns False if the session is new (emit SessionAccepted)."""
    state = session.state
    if state is State.IDLE:
        session.fire(Trigger.RECEIVE_HANDSHAKE, now, reason)
        return False
    if state is State.SUSPENDED:
        session.fire(Trigger.RETRY, now, f"{reason} by peer")
    elif state is State.FAILED:
        session.fire(Trigger.RETRY_WITH_BACKOFF, now, f"{reason} by peer")
    if session.state is State.HANDSHAKE_INITIATED:
        if isinstance(session.handshake, InitiatorHandshake):
            session.owner.unroute(session, session.handshake.session_id)
        if session.resume is not None:
            session.owner.unroute_ticket(session.resume.packet.ticket_id)
        session.handshake = None
        session.resume = None
        session.bundle_nonce = None
    return True


def on_init(
    owner: SessionManager,
    packet: HandshakePacket,
    address: str,
    path: str,
    now: float,
    config: SessionConfig,
) -> Session | None:
    from l2session.crypto.handshake_messages import HandshakeInit

    init = HandshakeInit.decode(packet.message)  # parsing only: no crypto yet
    initiator = init.initiator_did
    session = owner.sessions.get(initiator)
    config = _config_for_kind(config, init.session_kind, session)
    # A peer we established with at this very address re-keys outside the
    # global budget; its claim is not verified yet, so it still pays its
    # host's share.
    known = session is not None and session.established_once and session.address == address
    if not owner.admit(address, now, known=known):
        return None
    if owner.quarantined_until(initiator, address, now) > now:
        owner.reject(address, "quarantined", initiator)
        return None
    if session is not None and session.answers:
        cached = session.answers.get(packet.message)
        if cached is not None:
            _answer_at(session, address, path)
            owner.send_raw(address, path, cached)  # our RESPONSE was lost
            return session
    if _yield_to(owner, session, address):
        return None
    ctx = owner.ctx
    keys = ctx.keys
    one_time_before = keys.prekeys.one_time_count
    try:
        handshake, response = ResponderHandshake.receive_init(
            packet.message,
            local=keys.identity,
            prekeys=keys.prekeys,
            peer_signing_key=lambda did: resolve_signing_key(ctx.resolver, did),
            guard=keys.guard,
            rng=ctx.rng,
            now=now,
            encapsulator=keys.encapsulator,
            expected_session_id=packet.session_id,
        )
    except AuthenticationFailed:
        owner.quarantine(initiator, address, now)
        raise
    except PrekeyNotFound:
        # Named a prekey we no longer hold (another initiator used it, or a
        # signed set rotated out); the replay and freshness checks passed
        # and no crypto was spent.  Say so at once (docs/PROTOCOL.md §3.11).
        gone = _gone_prekey(keys.prekeys, init, now)
        if gone is None:
            raise
        reason, prekey_id = gone
        owner.send_raw(
            address, path, encode_packet(PrekeyGonePacket(packet.session_id, reason, prekey_id))
        )
        owner.reject(address, "prekey_gone", initiator)
        return None
    if keys.prekeys.one_time_count != one_time_before:
        owner.prekeys_changed()
    created = session is None
    if session is None:
        session = owner.create_session(initiator, config, address, path, now)
        session.opened_by_peer = True
    _answer_at(session, address, path)
    is_new = not _enter_as_responder(session, now, "PQXDH INIT")
    if isinstance(session.handshake, ResponderHandshake):
        owner.unroute(session, session.handshake.session_id)
    session.handshake = handshake
    owner.route(session, handshake.session_id)
    reply = encode_packet(HandshakePacket(handshake.session_id, response))
    session.answers = {packet.message: reply}
    session.handshake_deadline = now + session.config.handshake_timeout
    _send_handshake(session, reply, now)
    if created or is_new:
        owner.emit(SessionAccepted(initiator))
    return session


def _config_for_kind(config: SessionConfig, wire: int, session: Session | None) -> SessionConfig:
    """The responder's config for the kind the INIT asks for: the
    initiator decides whether anything is kept (an ephemeral session leaves
    no ticket, no stored session and no queue here).  A kind this node does
    not implement, or one that differs from an existing session with the
    same peer, is refused before any crypto is spent."""
    kind = SessionKind.from_wire(wire)
    if kind is None:
        raise HandshakeError(f"INIT asks for session kind {wire:#04x}, which this node lacks")
    if session is not None and session.config.kind is not kind:
        raise HandshakeError(
            f"INIT asks for a {kind.value} session; the session with this peer is "
            f"{session.config.kind.value}"
        )
    return config if config.kind is kind else replace(config, kind=kind)


def _answer(session: Session, packet: bytes, source: Route | None) -> None:
    """Send a cached answer again: on the path the repeat came by when it
    comes from the peer's address (a racing peer, core/paths/race.py)."""
    route = race.answer_route(session, source)
    if route is None:
        session.owner.transmit(session, packet)
    else:
        session.owner.send_raw(*route, packet)


def _gone_prekey(prekeys: PrekeyStore, init: HandshakeInit, now: float) -> tuple[int, int] | None:
    """(PREKEY_GONE reason, prekey id) if ``init`` names a prekey we do not
    hold, else None.  An expired signed set is not "gone" (the INIT is
    refused as usual: its initiator's bundle was stale for another reason)."""
    try:
        prekeys.signed_prekeys(init.signed_prekey_id, now)
    except PrekeyNotFound:
        return GONE_SIGNED, init.signed_prekey_id
    except L2SessionError:
        return None
    if init.one_time_prekey_id is not None:
        try:
            prekeys.one_time_prekey(init.one_time_prekey_id)
        except PrekeyNotFound:
            return GONE_ONE_TIME, init.one_time_prekey_id
    return None


def on_finish(session: Session, message: bytes, now: float, source: Route | None = None) -> None:
    handshake = session.handshake
    if not isinstance(handshake, ResponderHandshake):
        raise MalformedMessage("handshake FINISH without a handshake waiting for it")
    result = handshake.receive_finish(message)
    race.follow(session, source)  # the path the initiator's race settled on
    _adopt(session, result, now)
    # FINISH proves the initiator has our RESPONSE: nothing is left to
    # answer again (a late copy of INIT is refused by the replay guard), and
    # the cached INIT and RESPONSE are ~4 KB per session.
    session.answers = None
    _arrive(session, now, "PQXDH complete")
    _follow(session, now)


def _arrive(session: Session, now: float, reason: str) -> None:
    """The responder's side of a completed attempt, from whatever state."""
    state = session.state
    if state is State.HANDSHAKE_RECEIVED:
        session.fire(Trigger.SEND_RESPONSE_ACK, now, reason)
    elif state is State.HANDSHAKE_INITIATED:
        session.fire(Trigger.RECEIVE_VALID_RESPONSE, now, f"{reason} (answered the peer's)")
    elif state is State.DEGRADED:
        session.fire(Trigger.CONNECTIVITY_RESTORED, now, f"{reason} (peer re-keyed)")
    elif state is State.ROTATING:
        session.fire(Trigger.ROTATION_COMPLETE, now, f"{reason} (peer re-keyed)")
    else:
        _log.info("session %s: re-keyed by the peer (%s)", session.peer_did, reason)
    session.on_established(now)


def on_resume(
    owner: SessionManager,
    packet: ResumePacket,
    raw: bytes,
    address: str,
    path: str,
    now: float,
    config: SessionConfig,
    early_packet: ResumeEarlyPacket | None = None,
) -> Session | None:
    """RESUME (or RESUME_EARLY: ``early_packet``, whose RESUME is
    ``packet``) from ``address``."""
    answered = owner.answered.get(packet.ticket_id)
    stored = owner.tickets.get(packet.ticket_id)
    # Even a refusal is an answer (RESUME_REJECT) to an unverified source.
    if not owner.admit(address, now, known=stored is not None or answered is not None):
        return None
    if answered is not None and answered[0] == raw:
        owner.send_raw(address, path, answered[1])  # our RESUME_ACK was lost
        return None
    if stored is None:
        owner.send_raw(
            address,
            path,
            encode_packet(ResumeRejectPacket(packet.ticket_id, REJECT_UNKNOWN_TICKET)),
        )
        return None
    if owner.quarantined_until(stored.peer_did, address, now) > now:
        owner.reject(address, "quarantined", stored.peer_did)
        return None
    session = owner.sessions.get(stored.peer_did)
    if _yield_to(owner, session, address):
        return None
    try:
        answer = resumption.answer_resume(
            packet, stored, rng=owner.ctx.rng, now=now, max_skew=config.resume_max_skew
        )
    except L2SessionError as error:
        if not isinstance(error, AuthenticationFailed):
            reject = ResumeRejectPacket(packet.ticket_id, REJECT_STALE)
            owner.send_raw(address, path, encode_packet(reject))
        raise
    records: list[Record] = []
    if early_packet is not None and config.early_data_bytes > 0:
        # Verified before anything is committed: a flight that does not
        # open leaves the ticket unused.
        records = early.open_records(stored, early_packet)
    reply = encode_packet(answer.reply)
    owner.consume_ticket(stored, raw, reply)
    created = session is None
    if session is None:
        session = owner.create_session(stored.peer_did, config, address, path, now)
    _answer_at(session, address, path)
    _enter_as_responder(session, now, "RESUME")
    ratchet = DoubleRatchet.for_responder(
        root_key=answer.keys.epoch.root_key,
        chain_key=answer.keys.epoch.chain_key,
        own_ephemeral=answer.ephemeral,
        peer_ephemeral=packet.ephemeral,
        associated_data=answer.transcript,
        rng=owner.ctx.rng,
    )
    channel = Channel(
        session_id=answer.keys.session_id,
        epoch=0,
        ratchet=ratchet,
        lineage=answer.keys.epoch.lineage,
        keyed_at=now,
        step_interval=session.config.dh_step_interval,
        step_after=session.config.dh_step_after,
    )
    owner.send_raw(address, path, reply)
    session.install_channel(
        channel, peer_signing_key=stored.peer_signing_key, pq_keyed_at=stored.pq_keyed_at, now=now
    )
    owner.save_ticket(stored.successor(answer.keys.next_secret, answer.keys.epoch.lineage, now))
    if created:
        owner.emit(SessionAccepted(stored.peer_did))
    if records:
        owner.early_flights += 1
        session.on_early_records(records, now)
    _arrive(session, now, "resumed (0-RTT)" if records else "resumed")
    if early_packet is not None and not records and session.channel is not None:
        # Early data we did not open: our SYNC tells the peer at once that
        # we lack those messages (it holds them back until it hears).
        session.send_records([])
    _follow(session, now)
    return session


# ----------------------------------------------------------------------
# timers


def on_handshake_timer(session: Session, now: float) -> None:
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


def retry(session: Session, now: float) -> None:
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
