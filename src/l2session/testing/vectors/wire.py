"""Known-answer vectors of ``wire/`` (docs/PROTOCOL.md §3-§4): every
packet and record type with its fields and bytes, the malformed inputs
each decoder must refuse (:func:`wire_vector`, ``wire_kat.json``), and the
relay packets (:func:`relay_vector`, ``relay_kat.json``).

:func:`json_fields` and :func:`from_json_fields` translate a packet or
record to and from the JSON the vector files hold; the session vectors
and the tests use them too.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Final

from l2session.crypto import primitives
from l2session.crypto.primitives import (
    ED25519_SIGNATURE_SIZE,
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    X25519_KEY_SIZE,
)
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.testing.vectors._format import VECTOR_FORMAT, _hex
from l2session.wire.packets import (
    BundlePacket,
    BundleRequest,
    DataPacket,
    HandshakePacket,
    Packet,
    PrekeyGonePacket,
    ResumeAckPacket,
    ResumePacket,
    ResumeRejectPacket,
    encode_packet,
)
from l2session.wire.records import (
    PATH_TOKEN_SIZE,
    REC_ACK,
    Ack,
    Close,
    Heartbeat,
    HeartbeatAck,
    Message,
    Migrate,
    PathChallenge,
    PathResponse,
    PunchSync,
    Record,
    RotateDone,
    RotateInit,
    RotateResponse,
    Sync,
    encode_records,
)
from l2session.wire.relay import (
    CircuitEnd,
    Connect,
    ConnectOk,
    ConnectReject,
    RelayData,
    RelayPacket,
    Reserve,
    ReserveOk,
    ReserveReject,
    connect_signed_bytes,
    encode_relay,
    reserve_signed_bytes,
)

#: Packet classes by the names docs/PROTOCOL.md gives them.
PACKET_KINDS: Final[dict[str, type[Packet]]] = {
    "HANDSHAKE": HandshakePacket,
    "BUNDLE_REQ": BundleRequest,
    "BUNDLE": BundlePacket,
    "DATA": DataPacket,
    "RESUME": ResumePacket,
    "RESUME_ACK": ResumeAckPacket,
    "RESUME_REJ": ResumeRejectPacket,
    "PREKEY_GONE": PrekeyGonePacket,
}
#: Record classes by the names docs/PROTOCOL.md gives them.
RECORD_KINDS: Final[dict[str, type[Record]]] = {
    "MESSAGE": Message,
    "ACK": Ack,
    "HEARTBEAT": Heartbeat,
    "HEARTBEAT_ACK": HeartbeatAck,
    "ROTATE_INIT": RotateInit,
    "ROTATE_RESPONSE": RotateResponse,
    "ROTATE_DONE": RotateDone,
    "SYNC": Sync,
    "CLOSE": Close,
    "MIGRATE": Migrate,
    "PATH_CHALLENGE": PathChallenge,
    "PATH_RESPONSE": PathResponse,
    "PUNCH_SYNC": PunchSync,
}
_KIND_OF: Final[dict[type, str]] = {
    cls: name for table in (PACKET_KINDS, RECORD_KINDS) for name, cls in table.items()
}
_U64_MAX: Final = (1 << 64) - 1


def _pattern(start: int, n: int) -> bytes:
    """``n`` bytes counting up from ``start`` (mod 256): easy to spot in hex."""
    return bytes((start + i) & 0xFF for i in range(n))


def json_fields(value: Packet | Record) -> dict[str, Any]:
    """A packet's or record's fields as JSON values (bytes as hex, ACK ranges
    as lists of ``[start, end]``)."""
    out: dict[str, Any] = {}
    # __match_args__: the fields in order, of dataclasses and of the
    # slotted hot-path records (Message) alike.
    for name in type(value).__match_args__:
        item = getattr(value, name)
        if isinstance(item, bytes):
            out[name] = item.hex()
        elif isinstance(item, tuple):
            out[name] = [list(pair) for pair in item]
        else:
            out[name] = item
    return out


def from_json_fields(kind: str, fields: dict[str, Any]) -> Packet | Record:
    """The inverse of :func:`json_fields` for the packet or record ``kind``."""
    cls: type[Packet] | type[Record] = {**PACKET_KINDS, **RECORD_KINDS}[kind]
    hints = typing.get_type_hints(cls)
    args: dict[str, Any] = {}
    for name, item in fields.items():
        if hints[name] is bytes:
            args[name] = bytes.fromhex(item)
        elif isinstance(item, list):
            args[name] = tuple(tuple(pair) for pair in item)
        else:
            args[name] = item
    return cls(**args)


def _entry(name: str, value: Packet | Record, encoded: bytes) -> dict[str, Any]:
    return {
        "name": name,
        "kind": _KIND_OF[type(value)],
        "fields": json_fields(value),
        "hex": _hex(encoded),
    }


def _record_examples() -> list[tuple[str, Record]]:
    return [
        ("message", Message(3, b"hello")),
        ("message, empty payload, largest seq", Message(_U64_MAX, b"")),
        ("ack, cumulative only", Ack(5)),
        ("ack with two SACK ranges", Ack(10, ((12, 15), (20, 21)))),
        ("heartbeat", Heartbeat(1)),
        ("heartbeat ack, largest counter", HeartbeatAck(_U64_MAX)),
        (
            "rotate init",
            RotateInit(
                0x01020304,
                _pattern(0x20, X25519_KEY_SIZE),
                _pattern(0x40, MLKEM768_PUBLIC_KEY_SIZE),
                _pattern(0xC0, ED25519_SIGNATURE_SIZE),
            ),
        ),
        (
            "rotate response",
            RotateResponse(
                1,
                _pattern(0x60, X25519_KEY_SIZE),
                _pattern(0x80, MLKEM768_CIPHERTEXT_SIZE),
                _pattern(0xE0, ED25519_SIGNATURE_SIZE),
            ),
        ),
        ("rotate done", RotateDone(7)),
        ("sync", Sync(0x1122334455667788, 3, 0x99AABBCCDDEEFF00, 42)),
        ("close", Close("closed by application")),
        ("close, non-ASCII reason", Close("café ☕")),
        ("migrate, IPv4", Migrate(1, "198.51.100.7:4433")),
        ("migrate, IPv6", Migrate(0xFFFFFFFF, "[2001:db8::1]:4433")),
        ("path challenge", PathChallenge(_pattern(0xA0, PATH_TOKEN_SIZE))),
        ("path response", PathResponse(_pattern(0xA0, PATH_TOKEN_SIZE))),
        ("punch sync", PunchSync()),
    ]


def _packet_examples() -> list[tuple[str, Packet]]:
    session_id = _pattern(0x00, 16)
    return [
        (
            "handshake carrying a FINISH",
            HandshakePacket(session_id, bytes((1, 3)) + _pattern(0x20, 32)),
        ),
        (
            "bundle request (padded to 1,200 bytes)",
            BundleRequest(
                _pattern(0x10, 16), "did:key:z6Mkf695M5hvKSuwzmUSc3z9txa5aokNwC22b7SYawapC5Rc"
            ),
        ),
        ("bundle (opaque bundle bytes)", BundlePacket(_pattern(0x10, 16), _pattern(0x40, 40))),
        ("data, key epoch 0", DataPacket(session_id, 0, _pattern(0x80, 100))),
        ("data, key epoch 0x01020304", DataPacket(session_id, 0x01020304, _pattern(0x80, 84))),
        (
            "resume",
            ResumePacket(
                _pattern(0x30, 16), _pattern(0x50, 32), 1_800_000_000_000, _pattern(0x70, 32)
            ),
        ),
        ("resume ack", ResumeAckPacket(_pattern(0x30, 16), _pattern(0x90, 32), _pattern(0xB0, 32))),
        ("resume reject, unknown ticket", ResumeRejectPacket(_pattern(0x30, 16), 1)),
        ("resume reject, stale", ResumeRejectPacket(_pattern(0x30, 16), 2)),
        ("prekey gone, one-time prekey 0x01020304", PrekeyGonePacket(session_id, 1, 0x01020304)),
        ("prekey gone, signed prekey set 7", PrekeyGonePacket(session_id, 2, 7)),
    ]


def _payload_examples() -> list[tuple[str, list[Record]]]:
    return [
        (
            "SYNC, ACK with a SACK range, two messages, a heartbeat answer",
            [
                Sync(0x0102030405060708, 3, 0x1112131415161718, 9),
                Ack(9, ((11, 13),)),
                Message(3, b"three"),
                Message(4, b"four"),
                HeartbeatAck(2),
            ],
        ),
        ("ROTATE_DONE and a HEARTBEAT", [RotateDone(1), Heartbeat(9)]),
        (
            "path validation on a migrated path",
            [Migrate(2, "203.0.113.9:4433"), PathChallenge(_pattern(0x01, 8))],
        ),
    ]


def _malformed_packets() -> list[tuple[str, bytes]]:
    resume = encode_packet(_packet_examples()[5][1])
    data = encode_packet(DataPacket(_pattern(0, 16), 0, b"\x00"))
    request = encode_packet(BundleRequest(_pattern(0x10, 16), "did:example:a"))
    return [
        ("empty", b""),
        ("protocol version 2", b"\x02" + data[1:]),
        ("unknown packet type 0x13", b"\x01\x13" + data[2:]),
        ("DATA without ciphertext", data[:-1]),
        ("RESUME with a trailing byte", resume + b"\x00"),
        ("RESUME truncated in its MAC", resume[:-1]),
        ("RESUME_REJ without its reason", encode_packet(_packet_examples()[7][1])[:-1]),
        ("BUNDLE_REQ one byte short of 1,200", request[:-1]),
        ("BUNDLE_REQ with non-zero padding", request[:-1] + b"\x01"),
        ("HANDSHAKE without a message", b"\x01\x10" + _pattern(0, 16)),
        ("BUNDLE declaring 16,385 bytes", b"\x01\x12" + _pattern(0x10, 16) + b"\x40\x01"),
        ("PREKEY_GONE with reason 3", b"\x01\x14" + _pattern(0, 16) + b"\x03" + bytes(4)),
        (
            "PREKEY_GONE truncated in its prekey id",
            b"\x01\x14" + _pattern(0, 16) + b"\x01" + bytes(3),
        ),
    ]


def _raw_ack(next_expected: int, count: int, *bounds: int) -> bytes:
    """An ACK record's bytes written field by field (no validity checks)."""
    body = bytes((REC_ACK,)) + next_expected.to_bytes(8, "big") + bytes((count,))
    return body + b"".join(n.to_bytes(8, "big") for n in bounds)


def _malformed_payloads() -> list[tuple[str, bytes]]:
    heartbeat = encode_records([Heartbeat(1)])
    seventeen = [n for i in range(17) for n in (2 * i + 1, 2 * i + 2)]
    return [
        ("no record at all", b""),
        ("record type 0x00", b"\x00"),
        ("unknown record type 0x0d", b"\x0d"),
        ("truncated SYNC", encode_records([Sync(1, 2, 3, 4)])[:-1]),
        ("ACK range starting at next_expected", _raw_ack(5, 1, 5, 6)),
        ("ACK ranges adjacent (no gap between them)", _raw_ack(5, 2, 7, 9, 9, 11)),
        ("ACK range empty (start == end)", _raw_ack(5, 1, 7, 7)),
        ("ACK ranges descending", _raw_ack(5, 2, 20, 21, 7, 9)),
        ("ACK announcing 2 ranges, carrying 1", _raw_ack(5, 2, 7, 9)),
        ("ACK with 17 ranges", _raw_ack(0, 17, *seventeen)),
        ("MESSAGE declaring 60,001 bytes", b"\x01" + bytes(8) + (60_001).to_bytes(4, "big")),
        ("MESSAGE shorter than its length", b"\x01" + bytes(8) + (5).to_bytes(4, "big") + b"abc"),
        ("CLOSE with an empty reason", b"\x09\x00\x00"),
        ("CLOSE reason not UTF-8", b"\x09\x00\x02\xc3\x28"),
        ("CLOSE reason of 201 bytes", b"\x09\x00\xc9" + b"a" * 201),
        ("MIGRATE with an empty endpoint", b"\x0a\x00\x00\x00\x01\x00\x00"),
        ("MIGRATE endpoint of 256 bytes", b"\x0a\x00\x00\x00\x01\x01\x00" + b"a" * 256),
        ("PATH_CHALLENGE with a 7-byte token", b"\x0b" + bytes(7)),
        ("257 records", heartbeat * 257),
    ]


def wire_vector() -> dict[str, Any]:
    """Every packet and record type with its bytes, multi-record payloads,
    and inputs every decoder must refuse (docs/PROTOCOL.md §3-§4)."""
    return {
        "format": VECTOR_FORMAT,
        "description": (
            "docs/PROTOCOL.md packets and records: field values and their exact "
            "encoding (integers big-endian); 'malformed_*' must be refused"
        ),
        "packets": [
            _entry(name, packet, encode_packet(packet)) for name, packet in _packet_examples()
        ],
        "records": [
            _entry(name, record, encode_records([record])) for name, record in _record_examples()
        ],
        "payloads": [
            {
                "name": name,
                "records": [{"kind": _KIND_OF[type(r)], "fields": json_fields(r)} for r in records],
                "hex": _hex(encode_records(records)),
            }
            for name, records in _payload_examples()
        ],
        "malformed_packets": [{"name": n, "hex": _hex(d)} for n, d in _malformed_packets()],
        "malformed_payloads": [{"name": n, "hex": _hex(d)} for n, d in _malformed_payloads()],
    }


def relay_vector() -> dict[str, Any]:
    """Every relay packet (docs/PROTOCOL.md §3.12) with its bytes; the
    RESERVE and signed CONNECT signatures are by fixed identities and
    verify.  Fields absent from a packet (the unsigned CONNECT's) are left
    out, so the entries of the first release stay byte-identical."""
    alice = Identity.generate(SeededRandom("relay vector alice"))
    bob = Identity.generate(SeededRandom("relay vector bob"))
    relay = Identity.generate(SeededRandom("relay vector relay"))
    nonce, circuit, timestamp = bytes(range(16)), bytes(range(0xA0, 0xA8)), 1_800_000_000_000
    signed = reserve_signed_bytes(relay.did_text, alice.did_text, timestamp, nonce)
    signature = primitives.ed25519_sign(alice.signing, signed)
    nonce2 = bytes(range(0x10, 0x20))
    connect_signed = connect_signed_bytes(
        relay.did_text, bob.did_text, alice.did_text, timestamp, nonce2
    )
    connect_signature = primitives.ed25519_sign(bob.signing, connect_signed)
    examples: list[tuple[str, RelayPacket]] = [
        ("RESERVE", Reserve(timestamp, nonce, alice.did_text, signature)),
        ("RESERVE_OK", ReserveOk(nonce, 600, "203.0.113.7:40001")),
        ("RESERVE_REJ per_ip", ReserveReject(nonce, 3)),
        ("CONNECT", Connect(nonce, alice.did_text)),
        ("CONNECT_OK", ConnectOk(nonce, circuit, 1 << 30, 3600, "198.51.100.20:7000")),
        ("CONNECT_REJ no_reservation", ConnectReject(nonce, 6)),
        ("RELAY_DATA", RelayData(circuit, bytes([1, 0x20]) + bytes(4))),
        ("CIRCUIT_END byte_budget", CircuitEnd(circuit, 8)),
        (
            "CONNECT signed",
            Connect(nonce2, alice.did_text, timestamp, bob.did_text, connect_signature),
        ),
        ("CONNECT_REJ unauthenticated", ConnectReject(nonce2, 11, relay.did_text)),
    ]
    return {
        "format": VECTOR_FORMAT,
        "description": "docs/PROTOCOL.md §3.12 relay packets: fields and exact encoding",
        "relay_did": relay.did_text,
        "reserving_did": alice.did_text,
        "reserve_signed_bytes": _hex(signed),
        "connecting_did": bob.did_text,
        "connect_signed_bytes": _hex(connect_signed),
        "packets": [
            {
                "name": name,
                "kind": type(packet).__name__,
                "fields": {
                    k: (v.hex() if isinstance(v, bytes) else v)
                    for k, v in dataclasses.asdict(packet).items()
                    if v is not None
                },
                "hex": _hex(encode_relay(packet)),
            }
            for name, packet in examples
        ],
    }
