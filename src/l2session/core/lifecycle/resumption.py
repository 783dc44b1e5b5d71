"""Resumption: back to ``established`` in one round trip, without KEM work.

After a full PQXDH handshake both sides keep a :class:`StoredSession`: the
peer's identity, a *resumption secret* from the handshake and the session
lineage.  A completed key rotation replaces it on both sides with a ticket
from the rotation's keys (``core/lifecycle/rotating.py``), so the ticket always
follows the last KEM-based keying and a long-lived session still resumes.
To resume (after a restart, a suspension, a failed path) the initiator
sends RESUME with a fresh X25519 key, a timestamp and a MAC under the
ticket key; the responder checks the MAC in constant time, *consumes* the
ticket, and answers RESUME_ACK with its own fresh X25519 key and a key
confirmation.  Both derive a new key epoch from the secret, the lineage and
the ephemeral DH (forward secrecy for the resumed session) plus the next
resumption secret, i.e. the next single-use ticket.

Single use (SPEC-018 threat model, "replay attacks"): the responder forgets
a ticket the moment it accepts it.  A retransmitted RESUME (the same bytes,
because the first RESUME_ACK was lost) gets the same RESUME_ACK again from a
short memory of answered tickets, never a second session.

Resumption adds no post-quantum freshness, so the resumed session keeps the
key age of the last KEM-based keying and rotates on that schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from l2session.codec import Reader, Writer
from l2session.core.link.keyschedule import (
    ResumptionKeys,
    resumption_keys,
    ticket_id,
    ticket_key,
)
from l2session.crypto import primitives
from l2session.crypto.kdf import fingerprint, mac
from l2session.crypto.prekey_records import MAX_DID_BYTES
from l2session.crypto.primitives import DhKeyPair, ct_equal
from l2session.crypto.rng import RandomSource
from l2session.errors import AuthenticationFailed, HandshakeError, MalformedMessage
from l2session.wire.packets import ResumeAckPacket, ResumePacket

#: The default largest clock difference accepted in a RESUME timestamp
#: (seconds); ``SessionConfig.resume_max_skew`` sets it per node.
MAX_RESUME_SKEW: Final = 300.0
_RESUME_CONTEXT: Final = b"l2session v1 resume\x00"
_STORED_VERSION: Final = 1
#: Latest time a stored session may name (milliseconds; about the year
#: 37,600).  Below it, ``ms / 1000`` read back and ``round(seconds * 1000)``
#: written again give the same integer (the float error stays under 0.25 ms),
#: so a stored ticket re-encodes to its own bytes and never overflows u64.
MAX_STORED_TIME_MS: Final = 2**50


@dataclass(frozen=True, slots=True)
class StoredSession:
    """What a node keeps to resume a session (the store persists this)."""

    local_did: str
    peer_did: str
    #: Ed25519 key the peer's DID is proven by (verifies its rotations).
    peer_signing_key: bytes
    resumption_secret: bytes = field(repr=False)
    lineage: bytes = field(repr=False)
    #: When the last KEM-based keying happened (the handshake or the
    #: rotation that issued this ticket; drives rotation).
    pq_keyed_at: float
    #: When this ticket was issued; it is refused after ``ttl``.
    issued_at: float
    #: Delivery versions at the time of storing (for reconciliation).
    out_stream: int = 0
    in_stream: int = 0

    @property
    def ticket_id(self) -> bytes:
        return ticket_id(self.resumption_secret)

    def successor(self, secret: bytes, lineage: bytes, now: float) -> StoredSession:
        """The next single-use ticket, issued when this one is used."""
        return replace(self, resumption_secret=secret, lineage=lineage, issued_at=now)

    def to_bytes(self) -> bytes:
        out = Writer().u8(_STORED_VERSION)
        out.text16(self.local_did, "local did", max_len=MAX_DID_BYTES)
        out.text16(self.peer_did, "peer did", max_len=MAX_DID_BYTES)
        out.fixed(self.peer_signing_key, 32, "peer signing key")
        out.fixed(self.resumption_secret, 32, "resumption secret")
        out.fixed(self.lineage, 32, "lineage")
        out.u64(round(self.pq_keyed_at * 1000)).u64(round(self.issued_at * 1000))
        return out.u64(self.out_stream).u64(self.in_stream).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredSession:
        r = Reader(data, "stored session")
        version = r.u8("version")
        if version != _STORED_VERSION:
            raise MalformedMessage(f"stored session: version {version} is not supported")
        local_did = r.text16("local did", max_len=MAX_DID_BYTES)
        peer_did = r.text16("peer did", max_len=MAX_DID_BYTES)
        peer_signing_key = r.fixed(32, "peer signing key")
        resumption_secret = r.fixed(32, "resumption secret")
        lineage = r.fixed(32, "lineage")
        pq_keyed_ms, issued_ms = r.u64("pq keyed at"), r.u64("issued at")
        out_stream, in_stream = r.u64("out stream"), r.u64("in stream")
        r.finish()
        if max(pq_keyed_ms, issued_ms) >= MAX_STORED_TIME_MS:
            raise MalformedMessage("stored session: a time is out of range")
        return cls(
            local_did=local_did,
            peer_did=peer_did,
            peer_signing_key=peer_signing_key,
            resumption_secret=resumption_secret,
            lineage=lineage,
            pq_keyed_at=pq_keyed_ms / 1000,
            issued_at=issued_ms / 1000,
            out_stream=out_stream,
            in_stream=in_stream,
        )


def _resume_mac_input(packet: ResumePacket) -> bytes:
    return (
        _RESUME_CONTEXT
        + packet.ticket_id
        + packet.ephemeral
        + packet.timestamp_ms.to_bytes(8, "big")
    )


def _transcript(resume: ResumePacket, responder_ephemeral: bytes) -> bytes:
    return fingerprint(
        resume.ticket_id,
        resume.ephemeral,
        resume.timestamp_ms.to_bytes(8, "big"),
        resume.mac,
        responder_ephemeral,
    )


@dataclass(slots=True)
class PendingResume:
    """The initiator's side between RESUME and RESUME_ACK."""

    stored: StoredSession
    packet: ResumePacket
    ephemeral: DhKeyPair = field(repr=False)
    #: Sequence numbers of the messages sent as 0-RTT early data with it.
    early_seqs: tuple[int, ...] = ()


def start_resume(stored: StoredSession, *, rng: RandomSource, now: float) -> PendingResume:
    ephemeral = primitives.x25519_generate(rng)
    unsigned = ResumePacket(stored.ticket_id, ephemeral.public, round(now * 1000), b"")
    tag = mac(ticket_key(stored.resumption_secret), _resume_mac_input(unsigned))
    packet = ResumePacket(unsigned.ticket_id, unsigned.ephemeral, unsigned.timestamp_ms, tag)
    return PendingResume(stored, packet, ephemeral)


@dataclass(frozen=True, slots=True)
class ResumeAnswer:
    """The responder's result: keys for the new epoch and the reply."""

    keys: ResumptionKeys
    ephemeral: DhKeyPair = field(repr=False)
    transcript: bytes
    reply: ResumeAckPacket


def answer_resume(
    packet: ResumePacket,
    stored: StoredSession,
    *,
    rng: RandomSource,
    now: float,
    max_skew: float = MAX_RESUME_SKEW,
) -> ResumeAnswer:
    """Verify RESUME against the stored ticket and build RESUME_ACK.

    Raises AuthenticationFailed (bad MAC) or HandshakeError (stale); the
    caller consumes the ticket only when this returns.
    """
    expected = mac(ticket_key(stored.resumption_secret), _resume_mac_input(packet))
    if not ct_equal(expected, packet.mac):
        raise AuthenticationFailed("resumption request does not verify", reason="resume_mac")
    skew = abs(packet.timestamp_ms / 1000 - now)
    if skew > max_skew:
        raise HandshakeError(f"resumption request is {skew:.0f} s away from this node's clock")
    ephemeral = primitives.x25519_generate(rng)
    transcript = _transcript(packet, ephemeral.public)
    keys = resumption_keys(
        stored.resumption_secret,
        stored.lineage,
        primitives.x25519(ephemeral, packet.ephemeral),
        transcript,
    )
    reply = ResumeAckPacket(
        packet.ticket_id, ephemeral.public, mac(keys.responder_confirm, transcript)
    )
    return ResumeAnswer(keys, ephemeral, transcript, reply)


def finish_resume(pending: PendingResume, reply: ResumeAckPacket) -> tuple[ResumptionKeys, bytes]:
    """Verify RESUME_ACK; returns the keys and the transcript hash."""
    if reply.ticket_id != pending.packet.ticket_id:
        raise HandshakeError("resumption answer is for another ticket")
    transcript = _transcript(pending.packet, reply.ephemeral)
    keys = resumption_keys(
        pending.stored.resumption_secret,
        pending.stored.lineage,
        primitives.x25519(pending.ephemeral, reply.ephemeral),
        transcript,
    )
    if not ct_equal(mac(keys.responder_confirm, transcript), reply.mac):
        raise AuthenticationFailed(
            "resumption answer does not confirm the keys", reason="resume_confirm"
        )
    return keys, transcript
