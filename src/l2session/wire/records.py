"""The records carried inside an encrypted DATA packet.

One DATA packet's plaintext is a sequence of records, each a type byte
followed by fixed or length-prefixed fields.  Packing several records per
packet lets an acknowledgement ride on data, and a SYNC ride in front of the
first messages after a re-key, at no extra AEAD cost.

Records are only ever parsed after the ratchet authenticated the packet, but
the codec still treats every byte as hostile: a buggy or compromised peer
must not be able to crash us with a well-encrypted malformed record.
docs/PROTOCOL.md §4 specifies every record byte by byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from l2session.codec import U64_MAX, Reader, Writer
from l2session.crypto.primitives import (
    ED25519_SIGNATURE_SIZE,
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    X25519_KEY_SIZE,
)
from l2session.errors import MalformedMessage

#: Largest application payload (SessionConfig.max_message_size at most).
MAX_PAYLOAD_BYTES: Final = 60_000
#: Largest message body one record may carry: a payload plus the envelope of
#: a capability request (core/link/envelope.py; at most 1,065 bytes).
MAX_MESSAGE_BYTES: Final = MAX_PAYLOAD_BYTES + 1_440
#: Selective-acknowledgement ranges per ACK record.
MAX_ACK_RANGES: Final = 16
#: Records per packet (a bound on parsing work per authenticated packet).
MAX_RECORDS: Final = 256
MAX_REASON_BYTES: Final = 200
#: Longest endpoint ("host:port", a multiaddr) a MIGRATE record may name.
MAX_ENDPOINT_BYTES: Final = 255
#: Size of a path-validation token (RFC 9000's PATH_CHALLENGE is 8 bytes too).
PATH_TOKEN_SIZE: Final = 8

REC_MESSAGE: Final = 0x01
REC_ACK: Final = 0x02
REC_HEARTBEAT: Final = 0x03
REC_HEARTBEAT_ACK: Final = 0x04
REC_ROTATE_INIT: Final = 0x05
REC_ROTATE_RESPONSE: Final = 0x06
REC_ROTATE_DONE: Final = 0x07
REC_SYNC: Final = 0x08
REC_CLOSE: Final = 0x09
REC_MIGRATE: Final = 0x0A
REC_PATH_CHALLENGE: Final = 0x0B
REC_PATH_RESPONSE: Final = 0x0C
#: 0x0D stays unassigned: the known-answer vectors use it as "an unknown type".
REC_PUNCH_SYNC: Final = 0x0E


class Message:
    """One application message with its per-stream sequence number.

    A slotted plain class, not a frozen dataclass like the other records:
    one is built per message on both ends, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) was about a tenth of the
    per-message cost.  Treat it as immutable all the same; it compares,
    hashes and pattern-matches (``case Message(seq, payload)``) by value.
    """

    __slots__ = ("payload", "seq")
    __match_args__ = ("seq", "payload")
    seq: int
    payload: bytes

    def __init__(self, seq: int, payload: bytes) -> None:
        self.seq = seq
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        if type(other) is not Message:
            return NotImplemented
        return self.seq == other.seq and self.payload == other.payload

    def __hash__(self) -> int:
        return hash((Message, self.seq, self.payload))

    def __repr__(self) -> str:
        return f"Message(seq={self.seq!r}, payload={self.payload!r})"


@dataclass(frozen=True, slots=True)
class Ack:
    """Everything below ``next_expected`` arrived; ``ranges`` are half-open
    ``[start, end)`` runs received beyond the gap (selective ack)."""

    next_expected: int
    ranges: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A liveness probe; ``counter`` strictly increases per sender."""

    counter: int


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    counter: int


@dataclass(frozen=True, slots=True)
class RotateInit:
    """Rotation initiator's fresh X25519 and ML-KEM-768 keys for key epoch
    ``epoch``, signed by its DID key."""

    epoch: int
    ephemeral_dh: bytes
    ephemeral_kem: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class RotateResponse:
    """The peer's fresh X25519 key and an ML-KEM ciphertext to the
    initiator's key, signed by its DID key."""

    epoch: int
    ephemeral_dh: bytes
    kem_ciphertext: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class RotateDone:
    """Sent in the new epoch: "I now send under ``epoch``"."""

    epoch: int


@dataclass(frozen=True, slots=True)
class Sync:
    """Delivery versions, exchanged after every (re-)keying: the sender's
    outbound stream and first unacknowledged sequence number, and how far
    it received the peer's stream (DESIGN.md §4, the overview's
    offline-first reconciliation)."""

    out_stream: int
    first_unacked: int
    in_stream: int
    next_expected: int


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


@dataclass(frozen=True, slots=True)
class Migrate:
    """ "My address changed": the sender's ``sequence``-th migration, to
    ``endpoint``.  The receiver validates the new path (PATH_CHALLENGE)
    before it carries data; keys stay (overview, "Session Migration")."""

    sequence: int
    endpoint: str


@dataclass(frozen=True, slots=True)
class PathChallenge:
    """Sent on a path to be validated; answered on the same path."""

    token: bytes


@dataclass(frozen=True, slots=True)
class PathResponse:
    """Echoes a :class:`PathChallenge` token: the path works both ways."""

    token: bytes


@dataclass(frozen=True, slots=True)
class PunchSync:
    """Hole punching's SYNC (DCUtR): sent through the relay by the side
    that measured the relayed round trip, which fires its punch half a
    round trip later; the receiver fires on receipt, so both punches leave
    at about the same moment (PROTOCOL.md §12.1).  No fields."""


Record = (
    Message
    | Ack
    | Heartbeat
    | HeartbeatAck
    | RotateInit
    | RotateResponse
    | RotateDone
    | Sync
    | Close
    | Migrate
    | PathChallenge
    | PathResponse
    | PunchSync
)


def _write(out: Writer, record: Record) -> None:
    match record:
        case Message(seq, payload):
            out.u8(REC_MESSAGE).u64(seq).var32(payload, "message", max_len=MAX_MESSAGE_BYTES)
        case Ack(next_expected, ranges):
            if len(ranges) > MAX_ACK_RANGES:
                raise MalformedMessage(f"an ACK carries at most {MAX_ACK_RANGES} ranges")
            out.u8(REC_ACK).u64(next_expected).u8(len(ranges))
            low = next_expected
            for start, end in ranges:
                if not low < start < end:
                    raise MalformedMessage(
                        "ACK: ranges must be ascending, disjoint and above the gap"
                    )
                out.u64(start).u64(end)
                low = end
        case Heartbeat(counter):
            out.u8(REC_HEARTBEAT).u64(counter)
        case HeartbeatAck(counter):
            out.u8(REC_HEARTBEAT_ACK).u64(counter)
        case RotateInit(epoch, dh, kem, signature):
            out.u8(REC_ROTATE_INIT).u32(epoch)
            out.fixed(dh, X25519_KEY_SIZE, "ephemeral key")
            out.fixed(kem, MLKEM768_PUBLIC_KEY_SIZE, "ephemeral kem key")
            out.fixed(signature, ED25519_SIGNATURE_SIZE, "signature")
        case RotateResponse(epoch, dh, ciphertext, signature):
            out.u8(REC_ROTATE_RESPONSE).u32(epoch)
            out.fixed(dh, X25519_KEY_SIZE, "ephemeral key")
            out.fixed(ciphertext, MLKEM768_CIPHERTEXT_SIZE, "kem ciphertext")
            out.fixed(signature, ED25519_SIGNATURE_SIZE, "signature")
        case RotateDone(epoch):
            out.u8(REC_ROTATE_DONE).u32(epoch)
        case Sync(out_stream, first_unacked, in_stream, next_expected):
            out.u8(REC_SYNC).u64(out_stream).u64(first_unacked).u64(in_stream).u64(next_expected)
        case Close(reason):
            if not reason:
                raise MalformedMessage("a CLOSE record needs a reason")
            out.u8(REC_CLOSE).text16(reason, "close reason", max_len=MAX_REASON_BYTES)
        case Migrate(sequence, endpoint):
            if not endpoint:
                raise MalformedMessage("a MIGRATE record needs an endpoint")
            out.u8(REC_MIGRATE).u32(sequence)
            out.text16(endpoint, "endpoint", max_len=MAX_ENDPOINT_BYTES)
        case PathChallenge(token):
            out.u8(REC_PATH_CHALLENGE).fixed(token, PATH_TOKEN_SIZE, "path token")
        case PathResponse(token):
            out.u8(REC_PATH_RESPONSE).fixed(token, PATH_TOKEN_SIZE, "path token")
        case PunchSync():
            out.u8(REC_PUNCH_SYNC)


#: A MESSAGE record's fixed part: type, seq, payload length (PROTOCOL.md §4).
_MESSAGE_HEAD: Final = struct.Struct(">BQI")
_MESSAGE_HEAD_SIZE: Final = _MESSAGE_HEAD.size  # 13


def encode_records(records: list[Record] | tuple[Record, ...]) -> bytes:
    """Encode a packet's records (at least one, at most MAX_RECORDS).

    MESSAGE records, nearly all of a busy packet, take a fast path (one
    ``struct.pack`` each); the bytes are the same as :func:`_write`'s.
    """
    if not 0 < len(records) <= MAX_RECORDS:
        raise MalformedMessage(f"a packet carries 1..{MAX_RECORDS} records, not {len(records)}")
    parts: list[bytes] = []
    pack = _MESSAGE_HEAD.pack
    for record in records:
        if (
            type(record) is Message
            and len(record.payload) <= MAX_MESSAGE_BYTES
            and 0 <= record.seq <= U64_MAX
        ):
            payload = record.payload
            parts.append(pack(REC_MESSAGE, record.seq, len(payload)))
            parts.append(bytes(payload))
        else:  # every other record, and a bad MESSAGE (it raises)
            out = Writer()
            _write(out, record)
            parts.append(out.getvalue())
    return b"".join(parts)


def _read_ack(r: Reader) -> Ack:
    next_expected = r.u64("ack next")
    count = r.u8("ack range count")
    if count > MAX_ACK_RANGES:
        raise MalformedMessage(f"ACK: {count} ranges exceed the limit of {MAX_ACK_RANGES}")
    ranges = []
    low = next_expected
    for _ in range(count):
        start, end = r.u64("ack range start"), r.u64("ack range end")
        if not low < start < end:
            raise MalformedMessage("ACK: ranges must be ascending, disjoint and above the gap")
        ranges.append((start, end))
        low = end
    return Ack(next_expected, tuple(ranges))


def _read(r: Reader) -> Record:
    kind = r.u8("record type")
    if kind == REC_MESSAGE:
        return Message(r.u64("seq"), r.var32("message", max_len=MAX_MESSAGE_BYTES))
    if kind == REC_ACK:
        return _read_ack(r)
    if kind == REC_HEARTBEAT:
        return Heartbeat(r.u64("heartbeat counter"))
    if kind == REC_HEARTBEAT_ACK:
        return HeartbeatAck(r.u64("heartbeat counter"))
    if kind == REC_ROTATE_INIT:
        return RotateInit(
            r.u32("epoch"),
            r.fixed(X25519_KEY_SIZE, "ephemeral key"),
            r.fixed(MLKEM768_PUBLIC_KEY_SIZE, "ephemeral kem key"),
            r.fixed(ED25519_SIGNATURE_SIZE, "signature"),
        )
    if kind == REC_ROTATE_RESPONSE:
        return RotateResponse(
            r.u32("epoch"),
            r.fixed(X25519_KEY_SIZE, "ephemeral key"),
            r.fixed(MLKEM768_CIPHERTEXT_SIZE, "kem ciphertext"),
            r.fixed(ED25519_SIGNATURE_SIZE, "signature"),
        )
    if kind == REC_ROTATE_DONE:
        return RotateDone(r.u32("epoch"))
    if kind == REC_SYNC:
        return Sync(r.u64("out stream"), r.u64("first unacked"), r.u64("in stream"), r.u64("next"))
    if kind == REC_CLOSE:
        return Close(r.text16("close reason", max_len=MAX_REASON_BYTES))
    if kind == REC_MIGRATE:
        # text16 refuses an empty endpoint (its minimum length is 1).
        return Migrate(
            r.u32("migration sequence"), r.text16("endpoint", max_len=MAX_ENDPOINT_BYTES)
        )
    if kind == REC_PATH_CHALLENGE:
        return PathChallenge(r.fixed(PATH_TOKEN_SIZE, "path token"))
    if kind == REC_PATH_RESPONSE:
        return PathResponse(r.fixed(PATH_TOKEN_SIZE, "path token"))
    if kind == REC_PUNCH_SYNC:
        return PunchSync()
    raise MalformedMessage(f"unknown record type {kind:#04x}")


def decode_records(data: bytes) -> list[Record]:
    """Decode a packet's plaintext; raises only MalformedMessage.

    A well-formed MESSAGE record is cut with one ``struct.unpack_from`` and
    a slice; anything else (another record, or a MESSAGE that is truncated
    or too long) goes through the field-by-field reader, which raises the
    precise error.
    """
    r = Reader(data, "packet records")
    data = r.data
    size = len(data)
    records: list[Record] = []
    append = records.append
    unpack = _MESSAGE_HEAD.unpack_from
    pos = 0
    while pos < size:
        if len(records) == MAX_RECORDS:
            raise MalformedMessage(f"a packet carries at most {MAX_RECORDS} records")
        if data[pos] == REC_MESSAGE and pos + _MESSAGE_HEAD_SIZE <= size:
            _, seq, length = unpack(data, pos)
            start = pos + _MESSAGE_HEAD_SIZE
            end = start + length
            if length <= MAX_MESSAGE_BYTES and end <= size:
                append(Message(seq, data[start:end]))
                pos = end
                continue
        r.seek(pos)
        append(_read(r))
        pos = r.position
    if not records:
        raise MalformedMessage("a packet carries at least one record")
    return records


def record_size(record: Record) -> int:
    """Encoded size of one record (used to fill packets up to a budget)."""
    if isinstance(record, Message):
        return 13 + len(record.payload)
    out = Writer()
    _write(out, record)
    return len(out.getvalue())
