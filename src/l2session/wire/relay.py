"""Relay packets: reservations, circuits and opaque forwarding.

A relay is an ordinary node run with ``relay=True``.  A node that cannot be
reached directly (behind a NAT) holds a *reservation* on a relay, signed
with its DID's key; a peer opens a *circuit* to it through the relay by
naming its DID; from then on both ends wrap their session packets in
RELAY_DATA with the circuit id, and the relay forwards the bytes unread
(they are DATA/HANDSHAKE packets, end-to-end encrypted and authenticated
by the session).  These packets travel on the ordinary transports (QUIC or
μTCP) with the same common header as session packets (docs/PROTOCOL.md
§3.12 specifies every byte):

=================  ===========================================================
RESERVE      0x40  timestamp ms (u64) | nonce (16) | DID (u8 len) | Ed25519 signature (64)
RESERVE_OK   0x41  nonce (16) | lifetime s (u32) | observed address (u8 len)
RESERVE_REJ  0x42  nonce (16) | reason (u8)
CONNECT      0x43  nonce (16) | target DID (u8 len) | timestamp ms (u64) | initiator DID
                   (u8 len) | Ed25519 signature (64); the last three absent: unsigned
CONNECT_OK   0x44  nonce (16) | circuit (8) | budget (u64) | seconds (u32) | observed (u8 len)
CONNECT_REJ  0x45  nonce (16) | reason (u8) | [relay DID (u8 len)]
RELAY_DATA   0x46  circuit id (8) | one session packet (the rest)
CIRCUIT_END  0x47  circuit id (8) | reason (u8)
=================  ===========================================================

Pure codec: hostile bytes raise :class:`MalformedMessage` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from l2session.codec import Reader, Writer, length_prefixed
from l2session.crypto.handshake_messages import PROTOCOL_VERSION
from l2session.errors import L2SessionError, MalformedMessage

PKT_RESERVE: Final = 0x40
PKT_RESERVE_OK: Final = 0x41
PKT_RESERVE_REJECT: Final = 0x42
PKT_CONNECT: Final = 0x43
PKT_CONNECT_OK: Final = 0x44
PKT_CONNECT_REJECT: Final = 0x45
PKT_RELAY_DATA: Final = 0x46
PKT_CIRCUIT_END: Final = 0x47
RELAY_TYPES: Final = frozenset(range(PKT_RESERVE, PKT_CIRCUIT_END + 1))
#: What a relay answers (a client hands these to its relay transport).
RELAY_REQUESTS: Final = frozenset({PKT_RESERVE, PKT_CONNECT})

NONCE_SIZE: Final = 16
CIRCUIT_ID_SIZE: Final = 8
SIGNATURE_SIZE: Final = 64
MAX_DID_BYTES: Final = 255
MAX_ADDRESS_BYTES: Final = 64
#: Largest RELAY_DATA: the session's own packet limit plus the wrapping.
MAX_RELAY_PACKET: Final = (1 << 20) + 2 + CIRCUIT_ID_SIZE
#: The domain of the RESERVE signature.
RESERVE_DOMAIN: Final = b"l2session relay reserve v1"
#: The domain of the CONNECT signature.
CONNECT_DOMAIN: Final = b"l2session relay connect v1"

# Reasons (RESERVE_REJ, CONNECT_REJ, CIRCUIT_END).
DENIED: Final = 1  # the relay's Membrane refused (relay://reserve)
FULL: Final = 2  # reservations or circuits in total
PER_IP: Final = 3  # reservations from this IP
STALE: Final = 4  # timestamp outside the window, or a replayed nonce
BAD_SIGNATURE: Final = 5  # the signature does not verify for the DID
NO_RESERVATION: Final = 6  # the target holds no reservation here
NOT_A_RELAY: Final = 7  # this node does not relay
BYTE_BUDGET: Final = 8  # the circuit used its byte budget
DURATION: Final = 9  # the circuit reached its time limit
GONE: Final = 10  # the reservation behind the circuit ended
UNAUTHENTICATED: Final = 11  # a CONNECT without the initiator's signature
REASONS: Final = {
    DENIED: "denied by the relay's policy",
    FULL: "the relay is full",
    PER_IP: "too many reservations from this IP",
    STALE: "stale or replayed",
    BAD_SIGNATURE: "bad signature",
    NO_RESERVATION: "the target holds no reservation at this relay",
    NOT_A_RELAY: "not a relay",
    BYTE_BUDGET: "the circuit used its byte budget",
    DURATION: "the circuit reached its time limit",
    GONE: "the reservation ended",
    UNAUTHENTICATED: "the CONNECT was not signed",
}


@dataclass(frozen=True, slots=True)
class Reserve:
    timestamp_ms: int
    nonce: bytes
    did: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class ReserveOk:
    nonce: bytes
    lifetime: int
    observed: str


@dataclass(frozen=True, slots=True)
class ReserveReject:
    nonce: bytes
    reason: int


@dataclass(frozen=True, slots=True)
class Connect:
    """A circuit request.  ``timestamp_ms``, ``initiator`` and ``signature``
    are present together (a signed CONNECT) or absent together (the
    unsigned form of the first release, which a relay refuses
    ``UNAUTHENTICATED``)."""

    nonce: bytes
    target: str
    timestamp_ms: int | None = None
    initiator: str | None = None
    signature: bytes | None = None

    @property
    def signed(self) -> bool:
        return self.signature is not None


@dataclass(frozen=True, slots=True)
class ConnectOk:
    nonce: bytes
    circuit: bytes
    max_bytes: int
    max_seconds: int
    #: The opener's address as the relay saw it (its reflexive address).
    observed: str


@dataclass(frozen=True, slots=True)
class ConnectReject:
    nonce: bytes
    reason: int
    #: The relay's DID, sent with UNAUTHENTICATED and BAD_SIGNATURE so an
    #: initiator that did not know it can sign a CONNECT bound to it.
    relay_did: str | None = None


@dataclass(frozen=True, slots=True)
class RelayData:
    circuit: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class CircuitEnd:
    circuit: bytes
    reason: int


RelayPacket = (
    Reserve
    | ReserveOk
    | ReserveReject
    | Connect
    | ConnectOk
    | ConnectReject
    | RelayData
    | CircuitEnd
)


def reserve_signed_bytes(relay_did: str, did: str, timestamp_ms: int, nonce: bytes) -> bytes:
    """What a RESERVE signature covers: bound to the relay's DID (a relay
    cannot replay it at another relay), the reserving DID, the time and a
    nonce (the relay refuses a nonce twice within the window)."""
    return RESERVE_DOMAIN + length_prefixed(
        relay_did.encode(), did.encode(), timestamp_ms.to_bytes(8, "big"), nonce
    )


def connect_signed_bytes(
    relay_did: str, initiator: str, target: str, timestamp_ms: int, nonce: bytes
) -> bytes:
    """What a CONNECT signature covers: the relay's DID (not replayable at
    another relay), the initiator and the target (not redirectable), the
    time and a nonce (the relay refuses a nonce twice within the window)."""
    return CONNECT_DOMAIN + length_prefixed(
        relay_did.encode(),
        initiator.encode(),
        target.encode(),
        timestamp_ms.to_bytes(8, "big"),
        nonce,
    )


def _prefix(kind: int) -> Writer:
    return Writer().u8(PROTOCOL_VERSION).u8(kind)


def _text(out: Writer, text: str, name: str, limit: int) -> Writer:
    raw = text.encode()
    if not 1 <= len(raw) <= limit:
        raise MalformedMessage(f"relay: {name} of {len(raw)} bytes outside [1, {limit}]")
    return out.u8(len(raw)).raw(raw)


def encode_relay(packet: RelayPacket) -> bytes:
    """Encode one relay packet (raises MalformedMessage for bad fields)."""
    match packet:
        case Reserve(timestamp_ms, nonce, did, signature):
            out = _prefix(PKT_RESERVE).u64(timestamp_ms).fixed(nonce, NONCE_SIZE, "nonce")
            return (
                _text(out, did, "did", MAX_DID_BYTES)
                .fixed(signature, SIGNATURE_SIZE, "signature")
                .getvalue()
            )
        case ReserveOk(nonce, lifetime, observed):
            out = _prefix(PKT_RESERVE_OK).fixed(nonce, NONCE_SIZE, "nonce").u32(lifetime)
            return _text(out, observed, "observed address", MAX_ADDRESS_BYTES).getvalue()
        case ReserveReject(nonce, reason):
            return (
                _prefix(PKT_RESERVE_REJECT).fixed(nonce, NONCE_SIZE, "nonce").u8(reason).getvalue()
            )
        case Connect(nonce, target, timestamp_ms, initiator, signature):
            out = _prefix(PKT_CONNECT).fixed(nonce, NONCE_SIZE, "nonce")
            _text(out, target, "target DID", MAX_DID_BYTES)
            parts = (timestamp_ms, initiator, signature)
            if all(part is None for part in parts):
                return out.getvalue()
            if timestamp_ms is None or initiator is None or signature is None:
                raise MalformedMessage("relay: a CONNECT is signed with all three fields or none")
            out.u64(timestamp_ms)
            _text(out, initiator, "initiator DID", MAX_DID_BYTES)
            return out.fixed(signature, SIGNATURE_SIZE, "signature").getvalue()
        case ConnectOk(nonce, circuit, max_bytes, max_seconds, observed):
            out = _prefix(PKT_CONNECT_OK).fixed(nonce, NONCE_SIZE, "nonce")
            out.fixed(circuit, CIRCUIT_ID_SIZE, "circuit id").u64(max_bytes)
            out.u32(max_seconds)
            return _text(out, observed, "observed address", MAX_ADDRESS_BYTES).getvalue()
        case ConnectReject(nonce, reason, relay_did):
            out = _prefix(PKT_CONNECT_REJECT).fixed(nonce, NONCE_SIZE, "nonce").u8(reason)
            if relay_did is not None:
                _text(out, relay_did, "relay DID", MAX_DID_BYTES)
            return out.getvalue()
        case RelayData(circuit, payload):
            if not payload:
                raise MalformedMessage("relay: RELAY_DATA without a payload")
            head = _prefix(PKT_RELAY_DATA).fixed(circuit, CIRCUIT_ID_SIZE, "circuit id")
            data = head.getvalue() + payload
            if len(data) > MAX_RELAY_PACKET:
                raise MalformedMessage(f"relay: RELAY_DATA exceeds {MAX_RELAY_PACKET} bytes")
            return data
        case CircuitEnd(circuit, reason):
            out = _prefix(PKT_CIRCUIT_END).fixed(circuit, CIRCUIT_ID_SIZE, "circuit id")
            return out.u8(reason).getvalue()
    raise MalformedMessage(f"cannot encode {type(packet).__name__} as a relay packet")


def _read_text(r: Reader, name: str, limit: int) -> str:
    n = r.u8(f"{name} length")
    if not 1 <= n <= limit:
        raise MalformedMessage(f"relay: {name} length {n} outside [1, {limit}]")
    try:
        return r.fixed(n, name).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage(f"relay: {name} is not UTF-8") from None


def _decode(data: bytes) -> RelayPacket:
    if len(data) > MAX_RELAY_PACKET:
        raise MalformedMessage(f"relay: packet of {len(data)} bytes exceeds {MAX_RELAY_PACKET}")
    r = Reader(data, "relay")
    if r.u8("version") != PROTOCOL_VERSION:
        raise MalformedMessage("relay: unsupported protocol version")
    kind = r.u8("type")
    packet: RelayPacket
    if kind == PKT_RELAY_DATA:
        circuit = r.fixed(CIRCUIT_ID_SIZE, "circuit id")
        payload = r.rest()
        if not payload:
            raise MalformedMessage("relay: RELAY_DATA without a payload")
        return RelayData(circuit, payload)
    if kind == PKT_RESERVE:
        timestamp = r.u64("timestamp")
        nonce = r.fixed(NONCE_SIZE, "nonce")
        did = _read_text(r, "did", MAX_DID_BYTES)
        packet = Reserve(timestamp, nonce, did, r.fixed(SIGNATURE_SIZE, "signature"))
    elif kind == PKT_RESERVE_OK:
        nonce = r.fixed(NONCE_SIZE, "nonce")
        lifetime = r.u32("lifetime")
        packet = ReserveOk(nonce, lifetime, _read_text(r, "observed address", MAX_ADDRESS_BYTES))
    elif kind == PKT_RESERVE_REJECT:
        packet = ReserveReject(r.fixed(NONCE_SIZE, "nonce"), r.u8("reason"))
    elif kind == PKT_CONNECT:
        nonce = r.fixed(NONCE_SIZE, "nonce")
        target = _read_text(r, "target DID", MAX_DID_BYTES)
        if r.remaining:
            timestamp = r.u64("timestamp")
            initiator = _read_text(r, "initiator DID", MAX_DID_BYTES)
            signature = r.fixed(SIGNATURE_SIZE, "signature")
            packet = Connect(nonce, target, timestamp, initiator, signature)
        else:
            packet = Connect(nonce, target)
    elif kind == PKT_CONNECT_OK:
        nonce = r.fixed(NONCE_SIZE, "nonce")
        circuit = r.fixed(CIRCUIT_ID_SIZE, "circuit id")
        budget, seconds = r.u64("byte budget"), r.u32("seconds")
        observed = _read_text(r, "observed address", MAX_ADDRESS_BYTES)
        packet = ConnectOk(nonce, circuit, budget, seconds, observed)
    elif kind == PKT_CONNECT_REJECT:
        nonce, reason = r.fixed(NONCE_SIZE, "nonce"), r.u8("reason")
        relay_did = _read_text(r, "relay DID", MAX_DID_BYTES) if r.remaining else None
        packet = ConnectReject(nonce, reason, relay_did)
    elif kind == PKT_CIRCUIT_END:
        packet = CircuitEnd(r.fixed(CIRCUIT_ID_SIZE, "circuit id"), r.u8("reason"))
    else:
        raise MalformedMessage(f"relay: unknown packet type {kind:#04x}")
    r.finish()
    return packet


def decode_relay(data: bytes) -> RelayPacket:
    """Decode one relay packet; raises only :class:`MalformedMessage`."""
    try:
        return _decode(bytes(data))
    except MalformedMessage:
        raise
    except (L2SessionError, ValueError) as exc:
        raise MalformedMessage(f"relay: {exc}") from None


def is_relay_packet(data: bytes) -> bool:
    """Whether ``data`` is a relay packet by its type byte (cheap routing)."""
    return len(data) >= 2 and data[1] in RELAY_TYPES
