"""Deterministic known-answer vectors: PQXDH, the ratchet, the wire, the session.

SPEC-018 §6.3 asks for "deterministic test vectors" in place of live PQXDH.
:func:`pqxdh_vector` runs a complete handshake and a scripted conversation
(out-of-order delivery, a DH step in each direction, a post-quantum re-seed)
with every random byte drawn from one :class:`SeededRandom` and ML-KEM
encapsulation made deterministic (:mod:`l2session.testing.kem`), and returns
every public byte and derived secret as hex.  The checked-in JSON under
``tests/vectors/`` was produced by it; the tests regenerate it and require
byte equality, so any change to the protocol's bytes is caught.

:func:`kdf_vector` pins the KDF per label (docs/CRYPTO.md §2);
:func:`wire_vector` every packet and record type of docs/PROTOCOL.md §3-§4
with its bytes, plus malformed inputs every decoder must refuse; and
:func:`session_vector` the session key schedule on fixed inputs, DATA
packets sealed by Channels on fixed keys, a rotation and a resumption
(docs/PROTOCOL.md §6-§8).  ``tests/vectors/generate.py`` (``make vectors``)
writes them all.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Final

from l2session.core.lifecycle import resumption, rotation
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.channel import Channel
from l2session.core.link.keyschedule import (
    initial_lineage,
    resumption_keys,
    rotation_keys,
    rotation_resumption_secret,
    rotation_transcript,
    ticket_id,
    ticket_key,
)
from l2session.crypto import primitives
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.kdf import mac
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.crypto.primitives import (
    ED25519_SIGNATURE_SIZE,
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    X25519_KEY_SIZE,
)
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.testing.kem import deterministic_encapsulate
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
    decode_packet,
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
    encode_relay,
    reserve_signed_bytes,
)

VECTOR_FORMAT: Final = "l2session-kat-v1"
#: 2027-01-15T08:00:00Z, a fixed "now" for every timestamp in the vectors.
VECTOR_NOW: Final = 1_800_000_000.0
#: The vectors pin a DH ratchet step at every turn (``dh_step_interval`` 0,
#: CRYPTO.md §5.2): the sparse default changes no byte a receiver sees.
PER_TURN: Final = 0.0

# The scripted conversation: (sender, plaintext).  Delivery order is below.
_SCRIPT: Final = (
    ("responder", b"hello initiator"),
    ("initiator", b"hello responder"),
    ("initiator", b"second in chain"),
    ("initiator", b"third in chain"),
    ("responder", b"reply after a DH step"),
    ("initiator", b"after re-seed 1"),
    ("responder", b"after re-seed 2"),
    ("initiator", b""),
    ("initiator", bytes(range(256))),
)
#: Messages 2 and 3 are delivered in swapped order; the re-seed is registered
#: on both sides after message 4 is delivered.
_DELIVERY_ORDER: Final = (0, 1, 3, 2, 4, 5, 6, 7, 8)
_RESEED_AFTER: Final = 4


def _hex(data: bytes) -> str:
    return data.hex()


def pqxdh_vector(seed: str = "l2session kat v1") -> dict[str, Any]:
    """Run the scripted handshake and conversation; return the vector."""
    rng = SeededRandom(seed)
    now = VECTOR_NOW
    resolver = default_resolver()
    policy = PrekeyPolicy(one_time_pool_size=3, one_time_refill_threshold=1)

    initiator = Identity.generate(rng)
    responder = Identity.generate(rng)
    responder_prekeys = PrekeyStore.create(responder, rng=rng, now=now, policy=policy)
    bundle = responder_prekeys.bundle()
    one_time = bundle.pick_one_time(rng)
    assert one_time is not None

    handshake, init = InitiatorHandshake.start(
        local=initiator,
        peer_did=responder.did_text,
        peer_signing_key=resolve_signing_key(resolver, responder.did),
        signed_prekeys=bundle.signed_prekeys,
        one_time_prekey=one_time,
        rng=rng,
        now=now,
        encapsulator=deterministic_encapsulate,
    )
    one_time_private = responder_prekeys.one_time_prekey(one_time.prekey_id).key.private_bytes()
    waiting, response = ResponderHandshake.receive_init(
        init,
        local=responder,
        prekeys=responder_prekeys,
        peer_signing_key=lambda did: resolve_signing_key(resolver, did),
        guard=HandshakeReplayGuard(),
        rng=rng,
        now=now,
        encapsulator=deterministic_encapsulate,
    )
    # Secrets for the vector, read before the handshake objects are done.
    signed_secrets = responder_prekeys.signed_prekeys(bundle.signed_prekeys.prekey_id, now)
    secrets = {
        "initiator_identity_dh_private": _hex(initiator.agreement.private_bytes()),
        "initiator_ephemeral_dh_private": _hex(handshake._ephemeral.private_bytes()),
        "initiator_ephemeral_kem_seed": _hex(handshake._ephemeral_kem.seed()),
        "responder_identity_dh_private": _hex(responder.agreement.private_bytes()),
        "responder_signed_prekey_private": _hex(signed_secrets.signed_prekey.private_bytes()),
        "responder_pq_prekey_seed": _hex(signed_secrets.pq_prekey.seed()),
        "responder_one_time_prekey_private": _hex(one_time_private),
        "responder_ephemeral_dh_private": _hex(waiting._own_ephemeral.private_bytes()),
    }
    initiator_result, finish = handshake.receive_response(response)
    responder_result = waiting.receive_finish(finish)

    ratchets: dict[str, DoubleRatchet] = {
        "initiator": initiator_result.ratchet,
        "responder": responder_result.ratchet,
    }
    peers = {"initiator": "responder", "responder": "initiator"}
    reseed: dict[str, str] = {}
    # Send in script order; after each send deliver, in the scripted order,
    # every message whose turn has come (so DH steps follow real receipt).
    delivered: set[int] = set()
    sent: list[bytes] = []
    for sender, plaintext in _SCRIPT:
        sent.append(ratchets[sender].encrypt(plaintext))
        for target in _DELIVERY_ORDER:
            if target in delivered:
                continue
            if target >= len(sent):
                break
            recipient = peers[_SCRIPT[target][0]]
            received = ratchets[recipient].decrypt(sent[target])
            if received != _SCRIPT[target][1]:
                raise AssertionError(f"vector conversation: message {target} garbled")
            delivered.add(target)
            if target == _RESEED_AFTER and not reseed:
                # The initiator's KEM key; the responder encapsulates and
                # expects; the initiator decapsulates and starts.
                kem = primitives.mlkem_generate(rng)
                secret, ciphertext = deterministic_encapsulate(kem.public, rng)
                ratchets["responder"].expect_pq_reseed(secret)
                ratchets["initiator"].start_pq_reseed(primitives.mlkem_decapsulate(kem, ciphertext))
                reseed = {
                    "kem_public": _hex(kem.public),
                    "kem_ciphertext": _hex(ciphertext),
                    "shared_secret": _hex(secret),
                }
    conversation = [
        {"index": index, "sender": sender, "plaintext": _hex(plaintext), "message": _hex(message)}
        for index, ((sender, plaintext), message) in enumerate(zip(_SCRIPT, sent, strict=True))
    ]

    return {
        "format": VECTOR_FORMAT,
        "description": (
            "PQXDH handshake (with a one-time prekey) and a Double Ratchet "
            "conversation; every random byte from SeededRandom(seed), ML-KEM "
            "encapsulation via FIPS 203 Encaps_internal with m from the same stream"
        ),
        "seed": seed,
        "now": now,
        "initiator": {
            "did": initiator.did_text,
            "signing_public": _hex(initiator.signing_public),
            "identity_dh_public": _hex(initiator.agreement_public),
        },
        "responder": {
            "did": responder.did_text,
            "signing_public": _hex(responder.signing_public),
            "identity_dh_public": _hex(responder.agreement_public),
            "bundle": _hex(bundle.encode()),
        },
        "one_time_prekey_id": one_time.prekey_id,
        "secrets": secrets,
        "handshake": {
            "init": _hex(init),
            "response": _hex(response),
            "finish": _hex(finish),
        },
        "session_id": _hex(initiator_result.session_id),
        "handshake_hash": _hex(initiator_result.handshake_hash),
        "root_key": _hex(initiator_result.root_key),
        "resumption_secret": _hex(initiator_result.resumption_secret),
        "delivery_order": list(_DELIVERY_ORDER),
        "pq_reseed_after_delivery_of": _RESEED_AFTER,
        "pq_reseed": reseed,
        "final_epochs": {side: ratchet.epoch for side, ratchet in ratchets.items()},
        "conversation": conversation,
    }


def kdf_vector() -> dict[str, Any]:
    """Fixed-input vectors for the KDF, chain step, MAC, transcript hash and
    the seeded RNG: they pin the constructions docs/CRYPTO.md defines."""
    from l2session.crypto.kdf import ALL_LABELS, Transcript, chain_step, kdf, mac

    ikm_a = bytes(range(32))
    ikm_b = bytes(range(32, 80))
    transcript = Transcript()
    transcript.absorb(b"first")
    transcript.absorb(b"")
    transcript.absorb(bytes(300))
    next_chain, message_key, nonce = chain_step(ikm_a)
    return {
        "format": VECTOR_FORMAT,
        "description": "KDF(label, parts; L) per label, chain step, MAC, transcript, SeededRandom",
        "inputs": {"a": _hex(ikm_a), "b": _hex(ikm_b)},
        "kdf": {
            label: {
                "a_b_32": _hex(kdf(label, ikm_a, ikm_b)),
                "a_100": _hex(kdf(label, ikm_a, length=100)),
                "empty_32": _hex(kdf(label)),
            }
            for label in ALL_LABELS
        },
        "chain_step_a": {
            "next_chain_key": _hex(next_chain),
            "message_key": _hex(message_key),
            "nonce": _hex(nonce),
        },
        "mac_a_b": _hex(mac(ikm_a, ikm_b)),
        "transcript_first_empty_300zero": _hex(transcript.digest()),
        "seeded_random": {
            "seed": "abc",
            "first_64": _hex(SeededRandom("abc").random_bytes(64)),
        },
    }


# --------------------------------------------------------------------------
# Wire vectors (docs/PROTOCOL.md §3-§4): packets and records <-> bytes

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


# --------------------------------------------------------------------------
# Session vectors (docs/PROTOCOL.md §6-§8): key schedule, DATA, rotation, resumption


def _record_list(records: list[Record]) -> list[dict[str, Any]]:
    return [{"kind": _KIND_OF[type(r)], "fields": json_fields(r)} for r in records]


def _opened(channel: Channel, packet: bytes, expected: list[Record]) -> None:
    decoded = decode_packet(packet)
    assert isinstance(decoded, DataPacket)
    if channel.open(decoded) != expected:
        raise AssertionError("session vector: a sealed DATA packet did not open to its records")


def _key_schedule_part() -> dict[str, Any]:
    """Every session-level derivation on fixed inputs."""
    root, handshake_hash = _pattern(0x00, 32), _pattern(0x20, 32)
    dh, kem_secret, th = _pattern(0x40, 32), _pattern(0x60, 32), _pattern(0x80, 32)
    session_id, secret = _pattern(0xA0, 16), _pattern(0xB0, 32)
    lineage = initial_lineage(root, handshake_hash)
    rotated = rotation_keys(lineage, dh, kem_secret, th)
    rotated_secret = rotation_resumption_secret(lineage, dh, kem_secret, th)
    resumed = resumption_keys(secret, lineage, dh, th)
    resume = ResumePacket(ticket_id(secret), _pattern(0xD0, 32), 1_800_000_000_000, b"")
    tag = mac(ticket_key(secret), resumption._resume_mac_input(resume))
    signed = ResumePacket(resume.ticket_id, resume.ephemeral, resume.timestamp_ms, tag)
    return {
        "inputs": {
            "root_key": _hex(root),
            "handshake_hash": _hex(handshake_hash),
            "dh": _hex(dh),
            "kem_secret": _hex(kem_secret),
            "transcript_hash": _hex(th),
            "session_id": _hex(session_id),
            "rotation_epoch": 1,
            "rotation_parts": [_hex(dh), _hex(kem_secret)],
            "resumption_secret": _hex(secret),
            "resume_ephemeral": _hex(resume.ephemeral),
            "resume_timestamp_ms": resume.timestamp_ms,
            "resume_responder_ephemeral": _hex(_pattern(0xF0, 32)),
        },
        "initial_lineage": _hex(lineage),
        "rotation_transcript": _hex(rotation_transcript(session_id, 1, dh, kem_secret)),
        "rotation_keys": {
            "lineage": _hex(rotated.lineage),
            "root_key": _hex(rotated.root_key),
            "chain_key": _hex(rotated.chain_key),
        },
        "rotation_resumption_secret": _hex(rotated_secret),
        "ticket_id": _hex(ticket_id(secret)),
        "ticket_key": _hex(ticket_key(secret)),
        "resume_mac_input": _hex(resumption._resume_mac_input(resume)),
        "resume_mac": _hex(tag),
        "resume_transcript": _hex(resumption._transcript(signed, _pattern(0xF0, 32))),
        "resumption_keys": {
            "lineage": _hex(resumed.epoch.lineage),
            "root_key": _hex(resumed.epoch.root_key),
            "chain_key": _hex(resumed.epoch.chain_key),
            "next_secret": _hex(resumed.next_secret),
            "responder_confirm": _hex(resumed.responder_confirm),
            "initiator_confirm": _hex(resumed.initiator_confirm),
            "session_id": _hex(resumed.session_id),
        },
    }


def _data_part(rng: SeededRandom) -> dict[str, Any]:
    """Two DATA packets between Channels built on fixed keys: the responder's
    first (no DH step), then the initiator's reply (a DH step)."""
    root, chain = _pattern(0x11, 32), _pattern(0x33, 32)
    associated_data, session_id = _pattern(0x55, 32), _pattern(0x77, 16)
    responder_key = primitives.x25519_from_private(rng.random_bytes(32))
    initiator_key = primitives.x25519_from_private(rng.random_bytes(32))
    responder = DoubleRatchet.for_responder(
        root_key=root,
        chain_key=chain,
        own_ephemeral=responder_key,
        peer_ephemeral=initiator_key.public,
        associated_data=associated_data,
        rng=rng,
    )
    initiator = DoubleRatchet.for_initiator(
        root_key=root,
        chain_key=chain,
        own_ephemeral=initiator_key,
        peer_ephemeral=responder_key.public,
        associated_data=associated_data,
        rng=rng,
    )
    channels = {
        name: Channel(
            session_id=session_id,
            epoch=0,
            ratchet=ratchet,
            lineage=bytes(32),
            keyed_at=VECTOR_NOW,
            step_interval=PER_TURN,
        )
        for name, ratchet in (("responder", responder), ("initiator", initiator))
    }
    script: list[tuple[str, list[Record]]] = [
        (
            "responder",
            [
                Sync(0x0A0B0C0D0E0F1011, 0, 0, 0),
                Message(0, b"hello over l2session"),
                Heartbeat(1),
            ],
        ),
        (
            "initiator",
            [
                Sync(0x2122232425262728, 0, 0x0A0B0C0D0E0F1011, 1),
                HeartbeatAck(1),
                Ack(1),
                Message(0, b"hello back"),
            ],
        ),
    ]
    packets = []
    for sender, records in script:
        ratchet = responder if sender == "responder" else initiator
        packet = channels[sender].seal(records)
        receiver = "initiator" if sender == "responder" else "responder"
        _opened(channels[receiver], packet, records)
        packets.append(
            {
                "sender": sender,
                "records": _record_list(records),
                "plaintext": _hex(encode_records(records)),
                "sender_ratchet_private": _hex(ratchet.snapshot().own_private),
                "packet": _hex(packet),
            }
        )
    return {
        "session_id": _hex(session_id),
        "key_epoch": 0,
        "root_key": _hex(root),
        "chain_key": _hex(chain),
        "associated_data": _hex(associated_data),
        "responder_ratchet_private": _hex(responder_key.private_bytes()),
        "initiator_ratchet_private": _hex(initiator_key.private_bytes()),
        "packets": packets,
    }


def _rotation_part(rng: SeededRandom) -> dict[str, Any]:
    """A complete rotation to key epoch 1 between two Channels, and the
    initiator's first packet under the new epoch."""
    session_id, lineage = _pattern(0x99, 16), _pattern(0x9A, 32)
    signing = {name: primitives.ed25519_generate(rng) for name in ("initiator", "responder")}
    channels = {}
    for name in ("initiator", "responder"):
        ratchet = DoubleRatchet.for_responder(
            root_key=bytes(32),
            chain_key=bytes(32),
            own_ephemeral=primitives.x25519_generate(rng),
            peer_ephemeral=primitives.x25519_generate(rng).public,
            associated_data=session_id,
            rng=rng,
        )
        channels[name] = Channel(
            session_id=session_id,
            epoch=0,
            ratchet=ratchet,
            lineage=lineage,
            keyed_at=VECTOR_NOW,
            step_interval=PER_TURN,
        )
    started = rotation.start(
        channel=channels["initiator"], signing=signing["initiator"], rng=rng, now=VECTOR_NOW
    )
    init = started.record
    assert isinstance(init, RotateInit)
    assert started.ephemeral is not None
    assert started.ephemeral_kem is not None
    ephemeral, ephemeral_kem = started.ephemeral, started.ephemeral_kem
    answered = rotation.respond(
        init,
        channel=channels["responder"],
        signing=signing["responder"],
        peer_signing_key=signing["initiator"].public,
        associated_data=session_id,
        rng=rng,
        now=VECTOR_NOW,
        encapsulator=deterministic_encapsulate,
    )
    response = answered.record
    assert isinstance(response, RotateResponse)
    rotation.complete_initiator(
        started,
        response,
        channel=channels["initiator"],
        peer_signing_key=signing["responder"].public,
        associated_data=session_id,
        rng=rng,
    )
    th_init = rotation_transcript(session_id, init.epoch, init.ephemeral_dh, init.ephemeral_kem)
    th = rotation_transcript(
        session_id,
        init.epoch,
        th_init,
        init.signature,
        response.ephemeral_dh,
        response.kem_ciphertext,
    )
    dh = primitives.x25519(ephemeral, response.ephemeral_dh)
    kem_secret = primitives.mlkem_decapsulate(ephemeral_kem, response.kem_ciphertext)
    keys = rotation_keys(lineage, dh, kem_secret, th)
    if not channels["initiator"].lineage == channels["responder"].lineage == keys.lineage:
        raise AssertionError("session vector: the two sides of the rotation disagree")
    # The ticket the completed rotation issues on both sides (PROTOCOL.md §8.3).
    ticket_secret = rotation_resumption_secret(lineage, dh, kem_secret, th)
    if not started.resumption_secret == answered.resumption_secret == ticket_secret:
        raise AssertionError("session vector: the two sides' rotation tickets disagree")
    if not started.lineage == answered.lineage == keys.lineage:
        raise AssertionError("session vector: the two sides' rotation tickets disagree")
    # The responder's rotation ephemeral is its new ratchet's own key.
    responder_private = channels["responder"]._ratchets[init.epoch].snapshot().own_private
    channels["initiator"].switch_send(init.epoch, VECTOR_NOW)
    done: list[Record] = [RotateDone(init.epoch)]
    packet = channels["initiator"].seal(done)
    _opened(channels["responder"], packet, done)
    return {
        "session_id": _hex(session_id),
        "lineage": _hex(lineage),
        "initiator_signing_public": _hex(signing["initiator"].public),
        "responder_signing_public": _hex(signing["responder"].public),
        "initiator_ephemeral_private": _hex(ephemeral.private_bytes()),
        "initiator_ephemeral_kem_seed": _hex(ephemeral_kem.seed()),
        "responder_ephemeral_private": _hex(responder_private),
        "rotate_init": _hex(encode_records([init])),
        "rotate_response": _hex(encode_records([response])),
        "transcript_init": _hex(th_init),
        "transcript": _hex(th),
        "dh": _hex(dh),
        "kem_secret": _hex(kem_secret),
        "keys": {
            "lineage": _hex(keys.lineage),
            "root_key": _hex(keys.root_key),
            "chain_key": _hex(keys.chain_key),
        },
        "ticket": {
            "resumption_secret": _hex(ticket_secret),
            "lineage": _hex(keys.lineage),
            "ticket_id": _hex(ticket_id(ticket_secret)),
            "ticket_key": _hex(ticket_key(ticket_secret)),
        },
        "rotate_done_packet": _hex(packet),
    }


def _resumption_part(rng: SeededRandom) -> dict[str, Any]:
    """RESUME -> RESUME_ACK for a stored ticket, the keys both sides derive,
    and the responder's first packet in the resumed channel."""
    secret, lineage = _pattern(0xC1, 32), _pattern(0xC2, 32)
    initiator_did = "did:example:initiator"
    responder_did = "did:example:responder"
    issued = VECTOR_NOW - 3600.0
    ours = StoredSession(
        local_did=initiator_did,
        peer_did=responder_did,
        peer_signing_key=_pattern(0xC3, 32),
        resumption_secret=secret,
        lineage=lineage,
        pq_keyed_at=issued,
        issued_at=issued,
    )
    theirs = dataclasses.replace(
        ours, local_did=responder_did, peer_did=initiator_did, peer_signing_key=_pattern(0xC4, 32)
    )
    pending = resumption.start_resume(ours, rng=rng, now=VECTOR_NOW)
    answer = resumption.answer_resume(pending.packet, theirs, rng=rng, now=VECTOR_NOW)
    keys, transcript = resumption.finish_resume(pending, answer.reply)
    if keys != answer.keys or transcript != answer.transcript:
        raise AssertionError("session vector: the two sides of the resumption disagree")
    ratchet = DoubleRatchet.for_responder(
        root_key=keys.epoch.root_key,
        chain_key=keys.epoch.chain_key,
        own_ephemeral=answer.ephemeral,
        peer_ephemeral=pending.packet.ephemeral,
        associated_data=transcript,
        rng=rng,
    )
    channel = Channel(
        session_id=keys.session_id,
        epoch=0,
        ratchet=ratchet,
        lineage=keys.epoch.lineage,
        keyed_at=VECTOR_NOW,
        step_interval=PER_TURN,
    )
    first: list[Record] = [
        Sync(0x3132333435363738, 5, 0x4142434445464748, 7),
        Message(5, b"resumed"),
    ]
    return {
        "resumption_secret": _hex(secret),
        "lineage": _hex(lineage),
        "now": VECTOR_NOW,
        "ticket_id": _hex(ours.ticket_id),
        "ticket_key": _hex(ticket_key(secret)),
        "initiator_ephemeral_private": _hex(pending.ephemeral.private_bytes()),
        "responder_ephemeral_private": _hex(answer.ephemeral.private_bytes()),
        "resume": _hex(encode_packet(pending.packet)),
        "resume_ack": _hex(encode_packet(answer.reply)),
        "transcript": _hex(transcript),
        "keys": {
            "lineage": _hex(keys.epoch.lineage),
            "root_key": _hex(keys.epoch.root_key),
            "chain_key": _hex(keys.epoch.chain_key),
            "next_secret": _hex(keys.next_secret),
            "responder_confirm": _hex(keys.responder_confirm),
            "initiator_confirm": _hex(keys.initiator_confirm),
            "session_id": _hex(keys.session_id),
        },
        "next_ticket_id": _hex(ticket_id(keys.next_secret)),
        "first_packet": {"records": _record_list(first), "packet": _hex(channel.seal(first))},
    }


def session_vector(seed: str = "l2session session kat v1") -> dict[str, Any]:
    """The session key schedule on fixed inputs, sealed DATA packets, a
    rotation and a resumption (docs/PROTOCOL.md §6-§8); every random byte
    from ``SeededRandom(seed)``, ML-KEM encapsulation deterministic."""
    rng = SeededRandom(seed)
    return {
        "format": VECTOR_FORMAT,
        "description": (
            "session key schedule (lineage, rotation, resumption, tickets, RESUME MAC "
            "and transcript) on fixed inputs; DATA packets sealed by Channels on fixed "
            "keys; a rotation and a resumption with every random byte from "
            "SeededRandom(seed) and ML-KEM encapsulation via Encaps_internal"
        ),
        "seed": seed,
        "key_schedule": _key_schedule_part(),
        "data": _data_part(rng),
        "rotation": _rotation_part(rng),
        "resumption": _resumption_part(rng),
    }


def relay_vector() -> dict[str, Any]:
    """Every relay packet (docs/PROTOCOL.md §3.12) with its bytes; the
    RESERVE signature is by a fixed identity and verifies."""
    alice = Identity.generate(SeededRandom("relay vector alice"))
    relay = Identity.generate(SeededRandom("relay vector relay"))
    nonce, circuit, timestamp = bytes(range(16)), bytes(range(0xA0, 0xA8)), 1_800_000_000_000
    signed = reserve_signed_bytes(relay.did_text, alice.did_text, timestamp, nonce)
    signature = primitives.ed25519_sign(alice.signing, signed)
    examples: list[tuple[str, RelayPacket]] = [
        ("RESERVE", Reserve(timestamp, nonce, alice.did_text, signature)),
        ("RESERVE_OK", ReserveOk(nonce, 600, "203.0.113.7:40001")),
        ("RESERVE_REJ per_ip", ReserveReject(nonce, 3)),
        ("CONNECT", Connect(nonce, alice.did_text)),
        ("CONNECT_OK", ConnectOk(nonce, circuit, 1 << 30, 3600, "198.51.100.20:7000")),
        ("CONNECT_REJ no_reservation", ConnectReject(nonce, 6)),
        ("RELAY_DATA", RelayData(circuit, bytes([1, 0x20]) + bytes(4))),
        ("CIRCUIT_END byte_budget", CircuitEnd(circuit, 8)),
    ]
    return {
        "format": VECTOR_FORMAT,
        "description": "docs/PROTOCOL.md §3.12 relay packets: fields and exact encoding",
        "relay_did": relay.did_text,
        "reserving_did": alice.did_text,
        "reserve_signed_bytes": _hex(signed),
        "packets": [
            {
                "name": name,
                "kind": type(packet).__name__,
                "fields": {
                    k: (v.hex() if isinstance(v, bytes) else v)
                    for k, v in dataclasses.asdict(packet).items()
                },
                "hex": _hex(encode_relay(packet)),
            }
            for name, packet in examples
        ],
    }
