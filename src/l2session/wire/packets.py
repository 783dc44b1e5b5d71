"""Packets: what one transport datagram (or one μTCP frame) carries.

Every packet starts with ``version (u8) | type (u8)``.  A packet is routed
before anything is verified, so the cleartext part holds only what routing
needs: a session id (or a resumption ticket id) and the key epoch.  All
session content travels inside DATA, encrypted by the Double Ratchet.

=================  ===========================================================
HANDSHAKE   0x10   session id (16) | PQXDH INIT, RESPONSE or FINISH bytes
BUNDLE_REQ  0x11   nonce (16) | DID | zero padding to 1,200 bytes
BUNDLE      0x12   nonce (16) | bundle length (u16) | signed prekey bundle
DATA        0x20   session id (16) | key epoch (u32) | ratchet message
RESUME      0x30   ticket id (16) | ephemeral X25519 (32) | timestamp ms (u64) | MAC (32)
RESUME_ACK  0x31   ticket id (16) | ephemeral X25519 (32) | MAC (32)
RESUME_REJ  0x32   ticket id (16) | reason (u8)
RESUME_EARLY 0x33  RESUME's fields | 0-RTT records, sealed (rest)
PREKEY_GONE 0x14   session id (16) | reason (u8) | prekey id (u32)
=================  ===========================================================

PREKEY_GONE answers an INIT that names a prekey the responder no longer
holds (a one-time prekey used or never handed out, a signed set rotated
out), so the initiator fetches a fresh bundle at once instead of waiting
for its handshake timeout.

The bundle request is padded so that answering it (a bundle is about two
kilobytes) never amplifies a spoofed request more than twofold.
docs/PROTOCOL.md §3 specifies every packet byte by byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from l2session.codec import Reader, Writer
from l2session.crypto.handshake_messages import PROTOCOL_VERSION
from l2session.crypto.prekey_records import MAX_DID_BYTES
from l2session.crypto.primitives import X25519_KEY_SIZE
from l2session.errors import MalformedMessage

SESSION_ID_SIZE: Final = 16
TICKET_ID_SIZE: Final = 16
NONCE_SIZE: Final = 16
MAC_SIZE: Final = 32
#: A request is padded to this size (anti-amplification).
BUNDLE_REQUEST_SIZE: Final = 1200
#: Largest packet accepted from a transport.
MAX_PACKET: Final = 1 << 20

PKT_HANDSHAKE: Final = 0x10
PKT_BUNDLE_REQUEST: Final = 0x11
PKT_BUNDLE: Final = 0x12
PKT_DATA: Final = 0x20
PKT_RESUME: Final = 0x30
PKT_RESUME_ACK: Final = 0x31
PKT_RESUME_REJECT: Final = 0x32
PKT_RESUME_EARLY: Final = 0x33
#: The sealed early data of RESUME_EARLY: at least a tag and one byte.
MIN_EARLY_DATA: Final = 17
PKT_PREKEY_GONE: Final = 0x14

#: PREKEY_GONE reasons: which prekey the INIT named is gone.
GONE_ONE_TIME: Final = 1
GONE_SIGNED: Final = 2

#: RESUME_REJECT reasons.
REJECT_UNKNOWN_TICKET: Final = 1
REJECT_STALE: Final = 2
_MAX_HANDSHAKE: Final = 8192
_MAX_BUNDLE: Final = 16384


@dataclass(frozen=True, slots=True)
class HandshakePacket:
    session_id: bytes
    message: bytes


@dataclass(frozen=True, slots=True)
class BundleRequest:
    nonce: bytes
    did: str


@dataclass(frozen=True, slots=True)
class BundlePacket:
    nonce: bytes
    bundle: bytes


@dataclass(frozen=True, slots=True)
class DataPacket:
    session_id: bytes
    epoch: int
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class ResumePacket:
    ticket_id: bytes
    ephemeral: bytes
    timestamp_ms: int
    mac: bytes


@dataclass(frozen=True, slots=True)
class ResumeEarlyPacket:
    """RESUME with 0-RTT records (docs/PROTOCOL.md §6.5): the same four
    fields, MAC'd the same way, then ``early``: records sealed under a key
    from the ticket (core/lifecycle/early.py)."""

    ticket_id: bytes
    ephemeral: bytes
    timestamp_ms: int
    mac: bytes
    early: bytes

    @property
    def resume(self) -> ResumePacket:
        """The RESUME this packet carries (what its MAC covers)."""
        return ResumePacket(self.ticket_id, self.ephemeral, self.timestamp_ms, self.mac)


@dataclass(frozen=True, slots=True)
class ResumeAckPacket:
    ticket_id: bytes
    ephemeral: bytes
    mac: bytes


@dataclass(frozen=True, slots=True)
class ResumeRejectPacket:
    ticket_id: bytes
    reason: int


@dataclass(frozen=True, slots=True)
class PrekeyGonePacket:
    session_id: bytes
    reason: int
    prekey_id: int


Packet = (
    HandshakePacket
    | BundleRequest
    | BundlePacket
    | DataPacket
    | ResumePacket
    | ResumeEarlyPacket
    | ResumeAckPacket
    | ResumeRejectPacket
    | PrekeyGonePacket
)


def _prefix(kind: int) -> Writer:
    return Writer().u8(PROTOCOL_VERSION).u8(kind)


def encode_packet(packet: Packet) -> bytes:
    match packet:
        case HandshakePacket(session_id, message):
            out = _prefix(PKT_HANDSHAKE).fixed(session_id, SESSION_ID_SIZE, "session id")
            if not 0 < len(message) <= _MAX_HANDSHAKE:
                raise MalformedMessage("handshake message is empty or exceeds its limit")
            return out.raw(message).getvalue()
        case BundleRequest(nonce, did):
            if not did:
                raise MalformedMessage("bundle request without a DID")
            out = _prefix(PKT_BUNDLE_REQUEST).fixed(nonce, NONCE_SIZE, "nonce")
            out.text16(did, "did", max_len=MAX_DID_BYTES)
            body = out.getvalue()
            return body + bytes(max(0, BUNDLE_REQUEST_SIZE - len(body)))
        case BundlePacket(nonce, bundle):
            out = _prefix(PKT_BUNDLE).fixed(nonce, NONCE_SIZE, "nonce")
            return out.var16(bundle, "bundle", max_len=_MAX_BUNDLE).getvalue()
        case DataPacket(session_id, epoch, ciphertext):
            header = _prefix(PKT_DATA).fixed(session_id, SESSION_ID_SIZE, "session id").u32(epoch)
            if not ciphertext:
                raise MalformedMessage("DATA packet without ciphertext")
            packet_bytes = header.getvalue() + ciphertext
            if len(packet_bytes) > MAX_PACKET:
                raise MalformedMessage(f"DATA packet exceeds {MAX_PACKET} bytes")
            return packet_bytes
        case ResumePacket(ticket_id, ephemeral, timestamp_ms, mac):
            out = _prefix(PKT_RESUME).fixed(ticket_id, TICKET_ID_SIZE, "ticket id")
            out.fixed(ephemeral, X25519_KEY_SIZE, "ephemeral key").u64(timestamp_ms)
            return out.fixed(mac, MAC_SIZE, "mac").getvalue()
        case ResumeEarlyPacket(ticket_id, ephemeral, timestamp_ms, mac, early):
            out = _prefix(PKT_RESUME_EARLY).fixed(ticket_id, TICKET_ID_SIZE, "ticket id")
            out.fixed(ephemeral, X25519_KEY_SIZE, "ephemeral key").u64(timestamp_ms)
            out.fixed(mac, MAC_SIZE, "mac")
            if len(early) < MIN_EARLY_DATA:
                raise MalformedMessage("RESUME_EARLY: early data shorter than a tag and a byte")
            packet_bytes = out.raw(early).getvalue()
            if len(packet_bytes) > MAX_PACKET:
                raise MalformedMessage(f"RESUME_EARLY packet exceeds {MAX_PACKET} bytes")
            return packet_bytes
        case ResumeAckPacket(ticket_id, ephemeral, mac):
            out = _prefix(PKT_RESUME_ACK).fixed(ticket_id, TICKET_ID_SIZE, "ticket id")
            out.fixed(ephemeral, X25519_KEY_SIZE, "ephemeral key")
            return out.fixed(mac, MAC_SIZE, "mac").getvalue()
        case ResumeRejectPacket(ticket_id, reason):
            out = _prefix(PKT_RESUME_REJECT).fixed(ticket_id, TICKET_ID_SIZE, "ticket id")
            return out.u8(reason).getvalue()
        case PrekeyGonePacket(session_id, reason, prekey_id):
            if reason not in (GONE_ONE_TIME, GONE_SIGNED):
                raise MalformedMessage(f"PREKEY_GONE reason {reason} is not defined")
            out = _prefix(PKT_PREKEY_GONE).fixed(session_id, SESSION_ID_SIZE, "session id")
            return out.u8(reason).u32(prekey_id).getvalue()
    raise MalformedMessage(f"cannot encode {type(packet).__name__}")


def _bundle_request(r: Reader) -> BundleRequest:
    nonce = r.fixed(NONCE_SIZE, "nonce")
    did = r.text16("did", max_len=MAX_DID_BYTES)
    if any(r.rest()):
        raise MalformedMessage("bundle request: padding must be zero bytes")
    return BundleRequest(nonce, did)


def decode_packet(data: bytes) -> Packet:
    """Decode one packet; raises only :class:`MalformedMessage`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage(f"packet: expected bytes, got {type(data).__name__}")
    if len(data) > MAX_PACKET:
        raise MalformedMessage(f"packet of {len(data)} bytes exceeds {MAX_PACKET}")
    r = Reader(data, "packet")
    version = r.u8("version")
    if version != PROTOCOL_VERSION:
        raise MalformedMessage(f"packet: protocol version {version} is not supported")
    kind = r.u8("type")
    packet: Packet
    if kind == PKT_DATA:
        session_id = r.fixed(SESSION_ID_SIZE, "session id")
        packet = DataPacket(session_id, r.u32("epoch"), r.rest())
        if not packet.ciphertext:
            raise MalformedMessage("DATA packet without ciphertext")
        return packet
    if kind == PKT_HANDSHAKE:
        session_id = r.fixed(SESSION_ID_SIZE, "session id")
        message = r.rest()
        if not 0 < len(message) <= _MAX_HANDSHAKE:
            raise MalformedMessage("handshake packet: message size out of range")
        return HandshakePacket(session_id, message)
    if kind == PKT_BUNDLE_REQUEST:
        # Anti-amplification: only a fully padded request is answered.
        if len(data) != BUNDLE_REQUEST_SIZE:
            raise MalformedMessage(
                f"bundle request of {len(data)} bytes, not the padded {BUNDLE_REQUEST_SIZE}"
            )
        return _bundle_request(r)
    if kind == PKT_BUNDLE:
        packet = BundlePacket(r.fixed(NONCE_SIZE, "nonce"), r.var16("bundle", max_len=_MAX_BUNDLE))
    elif kind == PKT_RESUME:
        packet = ResumePacket(
            r.fixed(TICKET_ID_SIZE, "ticket id"),
            r.fixed(X25519_KEY_SIZE, "ephemeral key"),
            r.u64("timestamp"),
            r.fixed(MAC_SIZE, "mac"),
        )
    elif kind == PKT_RESUME_EARLY:
        early_packet = ResumeEarlyPacket(
            r.fixed(TICKET_ID_SIZE, "ticket id"),
            r.fixed(X25519_KEY_SIZE, "ephemeral key"),
            r.u64("timestamp"),
            r.fixed(MAC_SIZE, "mac"),
            r.rest(),
        )
        if len(early_packet.early) < MIN_EARLY_DATA:
            raise MalformedMessage("RESUME_EARLY: early data shorter than a tag and a byte")
        return early_packet
    elif kind == PKT_RESUME_ACK:
        packet = ResumeAckPacket(
            r.fixed(TICKET_ID_SIZE, "ticket id"),
            r.fixed(X25519_KEY_SIZE, "ephemeral key"),
            r.fixed(MAC_SIZE, "mac"),
        )
    elif kind == PKT_RESUME_REJECT:
        packet = ResumeRejectPacket(r.fixed(TICKET_ID_SIZE, "ticket id"), r.u8("reason"))
    elif kind == PKT_PREKEY_GONE:
        packet = PrekeyGonePacket(
            r.fixed(SESSION_ID_SIZE, "session id"), r.u8("reason"), r.u32("prekey id")
        )
        if packet.reason not in (GONE_ONE_TIME, GONE_SIGNED):
            raise MalformedMessage(f"PREKEY_GONE reason {packet.reason} is not defined")
    else:
        raise MalformedMessage(f"packet: unknown type {kind:#04x}")
    r.finish()
    return packet
