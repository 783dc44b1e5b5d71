"""The responder's entry: admitting and answering the packets that open
an attempt (INIT, RESUME, RESUME_EARLY), which may create a session.

Every INIT and RESUME is first charged to admission control
(:mod:`l2session.core.management.admission`: per-host and global budgets,
host quarantine), so an unknown source cannot buy the event loop with them;
then INIT is answered only after :class:`ResponderHandshake` verified it,
so a session object exists only for a peer that proved its DID; a peer that
fails authentication is quarantined before any expensive crypto is spent on
it again.  Repeated INIT/RESPONSE/RESUME bytes (the answer was lost) get the
cached answer, never a second handshake.  A crossing attempt of our own
wins when our DID is lower (:func:`_yield_to`).

Manager-level (it creates sessions), so it works with
:class:`~l2session.core.management.manager.SessionManager` and
:class:`~l2session.core.link.session.Session` themselves; the session's
side of the attempt is :mod:`l2session.core.lifecycle.responding`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.events import SessionAccepted, SessionEvent
from l2session.core.lifecycle import early, resumption
from l2session.core.lifecycle.establishment import install_channel, send_handshake
from l2session.core.lifecycle.responding import answer_at, arrive, enter_as_responder, follow
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.channel import Channel
from l2session.core.link.session import Session
from l2session.core.management.context import Context
from l2session.core.states import State
from l2session.crypto.handshake_messages import HandshakeInit
from l2session.crypto.pqxdh import ResponderHandshake
from l2session.crypto.ratchet import DoubleRatchet
from l2session.errors import (
    AuthenticationFailed,
    HandshakeError,
    L2SessionError,
    PrekeyNotFound,
)
from l2session.identity.prekeys import PrekeyStore
from l2session.identity.resolver import resolve_signing_key
from l2session.wire.packets import (
    GONE_ONE_TIME,
    GONE_SIGNED,
    REJECT_STALE,
    REJECT_UNKNOWN_TICKET,
    HandshakePacket,
    PrekeyGonePacket,
    ResumeEarlyPacket,
    ResumePacket,
    ResumeRejectPacket,
    encode_packet,
)
from l2session.wire.records import Record


class AcceptingOwner(Protocol):
    """What answering an opening packet needs of the manager: its
    sessions, tickets and answers, admission and quarantine, routing."""

    early_flights: int

    @property
    def ctx(self) -> Context: ...

    @property
    def local_did(self) -> str: ...

    @property
    def sessions(self) -> Mapping[str, Session]: ...

    @property
    def tickets(self) -> Mapping[bytes, StoredSession]: ...

    @property
    def answered(self) -> OrderedDict[bytes, tuple[bytes, bytes]]: ...

    def admit(self, address: str, now: float, *, known: bool = ...) -> bool: ...

    def quarantine(self, did: str, address: str | None, now: float) -> None: ...

    def quarantined_until(self, did: str, address: str | None, now: float) -> float: ...

    def reject(self, address: str, reason: str, peer_did: str | None = ...) -> None: ...

    def send_raw(self, address: str, path: str, data: bytes) -> None: ...

    def prekeys_changed(self) -> None: ...

    def create_session(
        self, peer_did: str, config: SessionConfig, address: str | None, path: str, now: float
    ) -> Session: ...

    def route(self, session: Session, session_id: bytes) -> None: ...

    def unroute(self, session: Session, session_id: bytes) -> None: ...

    def consume_ticket(self, stored: StoredSession, request: bytes, reply: bytes) -> None: ...

    def save_ticket(self, stored: StoredSession) -> None: ...

    def emit(self, event: SessionEvent) -> None: ...


def _yield_to(owner: AcceptingOwner, session: Session | None, address: str) -> bool:
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


def on_init(
    owner: AcceptingOwner,
    packet: HandshakePacket,
    address: str,
    path: str,
    now: float,
    config: SessionConfig,
) -> Session | None:
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
            answer_at(session, address, path)
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
    answer_at(session, address, path)
    is_new = not enter_as_responder(session, now, "PQXDH INIT")
    if isinstance(session.handshake, ResponderHandshake):
        owner.unroute(session, session.handshake.session_id)
    session.handshake = handshake
    owner.route(session, handshake.session_id)
    reply = encode_packet(HandshakePacket(handshake.session_id, response))
    session.answers = {packet.message: reply}
    session.handshake_deadline = now + session.config.handshake_timeout
    send_handshake(session, reply, now)
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


def on_resume(
    owner: AcceptingOwner,
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
    answer_at(session, address, path)
    enter_as_responder(session, now, "RESUME")
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
    install_channel(
        session,
        channel,
        peer_signing_key=stored.peer_signing_key,
        pq_keyed_at=stored.pq_keyed_at,
        now=now,
    )
    owner.save_ticket(stored.successor(answer.keys.next_secret, answer.keys.epoch.lineage, now))
    if created:
        owner.emit(SessionAccepted(stored.peer_did))
    if records:
        owner.early_flights += 1
        session.on_early_records(records, now)
    arrive(session, now, "resumed (0-RTT)" if records else "resumed")
    if early_packet is not None and not records and session.channel is not None:
        # Early data we did not open: our SYNC tells the peer at once that
        # we lack those messages (it holds them back until it hears).
        session.send_records([])
    follow(session, now)
    return session
