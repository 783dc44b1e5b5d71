"""Where a datagram becomes a packet and finds its session: the manager's
inbound dispatch.

:func:`dispatch` decodes the packet (``wire.packets.decode_packet``: the
one place a datagram is parsed) and routes it: DATA and handshake replies
by session id to their session, bundle and resumption answers by nonce or
ticket id to the attempt waiting for them, and the packets an unknown
source may send (INIT, RESUME, RESUME_EARLY, BUNDLE_REQUEST) through
admission control to :mod:`l2session.core.management.accepting`.  Every
refusal raises a typed error, which the manager counts.

It uses the manager through :class:`DispatchOwner`, its port.
"""

from __future__ import annotations

from typing import Final, Protocol

from l2session.core.config import SessionConfig
from l2session.core.lifecycle import establishment, responding
from l2session.core.link.session import Session
from l2session.core.management import accepting
from l2session.core.management.accepting import AcceptingOwner
from l2session.core.management.admission import AdmissionControl
from l2session.core.management.context import Capability
from l2session.crypto.handshake_messages import TYPE_FINISH, TYPE_INIT, TYPE_RESPONSE
from l2session.errors import L2SessionError, MalformedMessage
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

_INIT: Final = bytes([TYPE_INIT])


class DispatchOwner(AcceptingOwner, Protocol):
    """What dispatch needs of the manager, besides what answering an
    opening packet needs."""

    @property
    def config(self) -> SessionConfig: ...

    @property
    def admission(self) -> AdmissionControl: ...

    def now(self) -> float: ...

    def by_id(self, session_id: bytes) -> Session | None: ...

    def pending_bundle(self, nonce: bytes) -> Session: ...

    def ticket_session(self, ticket_id: bytes) -> Session: ...

    def authenticated(self, session: Session) -> None: ...

    def reschedule(self, session: Session) -> None: ...


def dispatch(owner: DispatchOwner, data: bytes, address: str, path: str, now: float) -> None:
    packet = decode_packet(data)
    if isinstance(packet, DataPacket):
        # Established traffic: never charged to admission control.
        session = owner.by_id(packet.session_id)
        if session is None:
            raise MalformedMessage("DATA for an unknown session id")
        session.on_data(packet, now, (address, path))  # it flushes and reschedules itself
        return
    if isinstance(packet, HandshakePacket) and packet.message[1:2] != _INIT:
        _on_handshake(owner, packet, address, path, now)
        return
    if isinstance(packet, HandshakePacket | BundleRequest | ResumePacket | ResumeEarlyPacket):
        # What an unknown source can send: admitted (charged) by the
        # handlers before their crypto, and every failure counts
        # against the source host (core/management/admission.py).
        if isinstance(packet, HandshakePacket):
            owner.ctx.require("accept", Capability.CRYPTO_PQXDH, Capability.DID_RESOLVE)
        refused = owner.admission.refuse_quarantined(address, now)
        if refused is not None:
            owner.reject(address, refused)
            return
        try:
            _on_opening(owner, packet, data, address, path, now)
        except L2SessionError:
            owner.admission.failure(address, now)
            raise
        finally:
            # What it really cost (a stranger's packet is billed to the
            # CPU budget; a refused or known one bills nothing).
            owner.admission.charge(owner.now() - now)
        return
    if isinstance(packet, BundlePacket):
        session = owner.pending_bundle(packet.nonce)
        establishment.on_bundle(session, packet, now, (address, path))
    elif isinstance(packet, ResumeAckPacket):
        session = owner.ticket_session(packet.ticket_id)
        establishment.on_resume_ack(session, packet, now, (address, path))
        owner.authenticated(session)
    elif isinstance(packet, ResumeRejectPacket):
        session = owner.ticket_session(packet.ticket_id)
        establishment.on_resume_reject(session, packet, now)
    elif isinstance(packet, PrekeyGonePacket):
        found = owner.by_id(packet.session_id)
        if found is None:
            raise MalformedMessage("PREKEY_GONE for an unknown session id")
        session = found
        establishment.on_prekey_gone(session, packet, now)
    owner.reschedule(session)


def _on_opening(
    owner: DispatchOwner,
    packet: HandshakePacket | BundleRequest | ResumePacket | ResumeEarlyPacket,
    data: bytes,
    address: str,
    path: str,
    now: float,
) -> None:
    session: Session | None
    if isinstance(packet, BundleRequest):
        _on_bundle_request(owner, packet, address, path, now)
        return
    if isinstance(packet, ResumePacket):
        session = accepting.on_resume(owner, packet, bytes(data), address, path, now, owner.config)
    elif isinstance(packet, ResumeEarlyPacket):
        session = accepting.on_resume(
            owner, packet.resume, bytes(data), address, path, now, owner.config, packet
        )
    else:
        session = accepting.on_init(owner, packet, address, path, now, owner.config)
    if session is not None:
        owner.reschedule(session)


def _on_handshake(
    owner: DispatchOwner, packet: HandshakePacket, address: str, path: str, now: float
) -> None:
    """RESPONSE or FINISH: routed by session id, so only a handshake of
    ours can make us work (INIT is an opening packet)."""
    kind = packet.message[1] if len(packet.message) > 1 else -1
    session = owner.by_id(packet.session_id)
    if session is None:
        raise MalformedMessage("handshake message for an unknown session id")
    if kind == TYPE_RESPONSE:
        establishment.on_response(session, packet.message, now, (address, path))
    elif kind == TYPE_FINISH:
        responding.on_finish(session, packet.message, now, (address, path))
    else:
        raise MalformedMessage(f"unknown handshake message type {kind}")
    if session.channel is not None:
        owner.authenticated(session)
    owner.reschedule(session)


def _on_bundle_request(
    owner: DispatchOwner, packet: BundleRequest, address: str, path: str, now: float
) -> None:
    keys = owner.ctx.keys
    if packet.did != keys.did:
        raise MalformedMessage("bundle request for another DID")
    if not owner.admit(address, now):
        return  # the answer is twice the request's size: budgeted
    # One one-time prekey per answer, never the same one twice
    # (concurrent initiators would otherwise race for it).
    full = keys.prekeys.bundle()
    one = keys.prekeys.hand_out()
    bundle = PrekeyBundle(full.did, full.signing_key, full.signed_prekeys, (one,) if one else ())
    owner.send_raw(address, path, encode_packet(BundlePacket(packet.nonce, bundle.encode())))
