"""The records inside an encrypted DATA packet: round trips, limits, and
hostile bytes (which may only ever raise MalformedMessage)."""

from __future__ import annotations

import struct
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.crypto.primitives import (
    ED25519_SIGNATURE_SIZE,
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    X25519_KEY_SIZE,
)
from l2session.errors import MalformedMessage, MessageTooLarge
from l2session.testing.fuzz import mutate
from l2session.wire.records import (
    MAX_ACK_RANGES,
    MAX_ENDPOINT_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_REASON_BYTES,
    MAX_RECORDS,
    REC_ACK,
    REC_CLOSE,
    REC_MESSAGE,
    REC_MIGRATE,
    REC_ROTATE_INIT,
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
    decode_records,
    encode_records,
    record_size,
)

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
KNOWN_TYPES = frozenset(range(0x01, 0x0D)) | {0x0E}  # 0x0D: unassigned

u64 = st.integers(0, U64_MAX)
u32 = st.integers(0, U32_MAX)


def fixed(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


@st.composite
def acks(draw: st.DrawFn) -> Ack:
    """Valid ACKs: next_expected < start0 < end0 < start1 < end1 < ..."""
    count = draw(st.integers(0, MAX_ACK_RANGES))
    values = sorted(draw(st.sets(u64, min_size=2 * count + 1, max_size=2 * count + 1)))
    ranges = tuple((values[1 + 2 * i], values[2 + 2 * i]) for i in range(count))
    return Ack(values[0], ranges)


# At most 50 characters of at most 4 UTF-8 bytes each: within MAX_REASON_BYTES.
reasons = st.text(min_size=1, max_size=MAX_REASON_BYTES // 4)

records: st.SearchStrategy[Record] = st.one_of(
    st.builds(Message, u64, st.binary(max_size=300)),
    acks(),
    st.builds(Heartbeat, u64),
    st.builds(HeartbeatAck, u64),
    st.builds(
        RotateInit,
        u32,
        fixed(X25519_KEY_SIZE),
        fixed(MLKEM768_PUBLIC_KEY_SIZE),
        fixed(ED25519_SIGNATURE_SIZE),
    ),
    st.builds(
        RotateResponse,
        u32,
        fixed(X25519_KEY_SIZE),
        fixed(MLKEM768_CIPHERTEXT_SIZE),
        fixed(ED25519_SIGNATURE_SIZE),
    ),
    st.builds(RotateDone, u32),
    st.builds(Sync, u64, u64, u64, u64),
    st.builds(Close, reasons),
    st.builds(Migrate, u32, st.text(min_size=1, max_size=MAX_ENDPOINT_BYTES // 4)),
    st.builds(PathChallenge, fixed(8)),
    st.builds(PathResponse, fixed(8)),
    st.just(PunchSync()),
)

#: One valid example of every record type (for exhaustive byte-level checks).
EXAMPLES: list[Record] = [
    Message(7, b"hello"),
    Message(U64_MAX, b""),
    Ack(3),
    Ack(0, ((2, 4), (9, 10), (11, U64_MAX))),
    Heartbeat(1),
    HeartbeatAck(U64_MAX),
    RotateInit(
        5,
        b"\x01" * X25519_KEY_SIZE,
        b"\x02" * MLKEM768_PUBLIC_KEY_SIZE,
        b"\x03" * ED25519_SIGNATURE_SIZE,
    ),
    RotateResponse(
        U32_MAX,
        b"\x04" * X25519_KEY_SIZE,
        b"\x05" * MLKEM768_CIPHERTEXT_SIZE,
        b"\x06" * ED25519_SIGNATURE_SIZE,
    ),
    RotateDone(0),
    Sync(1, 2, 3, 4),
    Close("bye ✓"),
    Migrate(1, "192.0.2.7:4433"),
    PathChallenge(b"\x07" * 8),
    PunchSync(),
    PathResponse(b"\x08" * 8),
]


def decodes(data: bytes) -> list[Record] | None:
    """Decode, treating MalformedMessage as a refusal; any other exception
    propagates and fails the test."""
    try:
        return decode_records(data)
    except MalformedMessage:
        return None


def assert_canonical(data: bytes) -> None:
    """Whatever decodes re-encodes to exactly the same bytes."""
    decoded = decodes(data)
    if decoded is not None:
        assert 1 <= len(decoded) <= MAX_RECORDS
        assert encode_records(decoded) == data


# --------------------------------------------------------------------------
# Round trips


def test_every_record_type_is_exercised() -> None:
    assert {type(r) for r in EXAMPLES} == set(get_args(Record))


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_examples_round_trip(record: Record) -> None:
    data = encode_records([record])
    assert decode_records(data) == [record]
    assert record_size(record) == len(data)


@settings(max_examples=300, deadline=None)
@given(records)
def test_single_record_round_trips(record: Record) -> None:
    data = encode_records([record])
    assert decode_records(data) == [record]
    assert record_size(record) == len(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(records, min_size=1, max_size=12))
def test_multi_record_packets_round_trip(batch: list[Record]) -> None:
    data = encode_records(batch)
    assert decode_records(data) == batch
    assert encode_records(tuple(batch)) == data
    assert len(data) == sum(record_size(r) for r in batch)


def test_acks_and_messages_share_a_packet() -> None:
    batch: list[Record] = [
        Sync(10, 0, 20, 5),
        Ack(5, ((7, 9),)),
        Message(0, b"a"),
        Message(1, b"b" * 1000),
    ]
    assert decode_records(encode_records(batch)) == batch


# --------------------------------------------------------------------------
# Limits and field sizes


def test_record_count_bounds() -> None:
    full: list[Record] = [Heartbeat(i) for i in range(MAX_RECORDS)]
    assert decode_records(encode_records(full)) == full
    with pytest.raises(MalformedMessage, match=r"1\.\.256 records"):
        encode_records([*full, Heartbeat(0)])
    with pytest.raises(MalformedMessage, match="records"):
        encode_records([])
    too_many = encode_records(full) + encode_records([Heartbeat(0)])
    with pytest.raises(MalformedMessage, match="at most 256 records"):
        decode_records(too_many)
    with pytest.raises(MalformedMessage, match="at least one record"):
        decode_records(b"")


def test_message_size_bounds() -> None:
    biggest = Message(1, b"\xaa" * MAX_MESSAGE_BYTES)
    data = encode_records([biggest])
    assert decode_records(data) == [biggest]
    assert len(data) == record_size(biggest) == 13 + MAX_MESSAGE_BYTES
    with pytest.raises(MessageTooLarge):
        encode_records([Message(1, b"\xaa" * (MAX_MESSAGE_BYTES + 1))])


@pytest.mark.parametrize("declared", [MAX_MESSAGE_BYTES + 1, U32_MAX])
def test_oversized_message_length_is_refused_before_reading(declared: int) -> None:
    # The payload really is there (for MAX + 1): the length field alone is refused.
    payload = b"\x00" * (MAX_MESSAGE_BYTES + 1)
    data = struct.pack(">BQI", REC_MESSAGE, 0, declared) + payload
    with pytest.raises(MalformedMessage, match="outside"):
        decode_records(data)


def test_ack_range_count_bounds() -> None:
    ranges = tuple((2 * i + 1, 2 * i + 2) for i in range(MAX_ACK_RANGES))
    full = Ack(0, ranges)
    assert decode_records(encode_records([full])) == [full]
    with pytest.raises(MalformedMessage, match="at most 16 ranges"):
        encode_records([Ack(0, (*ranges, (100, 101)))])
    body = struct.pack(">BQB", REC_ACK, 0, MAX_ACK_RANGES + 1) + b"".join(
        struct.pack(">QQ", 2 * i + 1, 2 * i + 2) for i in range(MAX_ACK_RANGES + 1)
    )
    with pytest.raises(MalformedMessage, match="exceed the limit"):
        decode_records(body)


BAD_RANGES: list[tuple[int, tuple[tuple[int, int], ...]]] = [
    (5, ((5, 7),)),  # starts at the gap itself
    (5, ((3, 7),)),  # starts below the gap
    (0, ((4, 4),)),  # empty
    (0, ((6, 4),)),  # reversed
    (0, ((2, 4), (4, 6))),  # adjacent: must be merged
    (0, ((2, 6), (5, 8))),  # overlapping
    (0, ((7, 9), (2, 4))),  # descending
    (U64_MAX, ((U64_MAX, U64_MAX),)),
]


@pytest.mark.parametrize(("next_expected", "ranges"), BAD_RANGES)
def test_ack_range_ordering_is_enforced(
    next_expected: int, ranges: tuple[tuple[int, int], ...]
) -> None:
    raw = struct.pack(">BQB", REC_ACK, next_expected, len(ranges)) + b"".join(
        struct.pack(">QQ", start, end) for start, end in ranges
    )
    with pytest.raises(MalformedMessage, match="ascending"):
        decode_records(raw)
    with pytest.raises(MalformedMessage, match="ascending"):
        encode_records([Ack(next_expected, ranges)])


def test_ack_ranges_may_reach_the_top_of_the_sequence_space() -> None:
    ack = Ack(0, ((1, U64_MAX),))
    assert decode_records(encode_records([ack])) == [ack]


@pytest.mark.parametrize(
    "record",
    [
        RotateInit(1, b"\x00" * 31, b"\x00" * MLKEM768_PUBLIC_KEY_SIZE, b"\x00" * 64),
        RotateInit(1, b"\x00" * 33, b"\x00" * MLKEM768_PUBLIC_KEY_SIZE, b"\x00" * 64),
        RotateInit(1, b"\x00" * 32, b"\x00" * (MLKEM768_PUBLIC_KEY_SIZE - 1), b"\x00" * 64),
        RotateInit(1, b"\x00" * 32, b"\x00" * MLKEM768_CIPHERTEXT_SIZE, b"\x00" * 64),
        RotateInit(1, b"\x00" * 32, b"\x00" * MLKEM768_PUBLIC_KEY_SIZE, b"\x00" * 63),
        RotateResponse(1, b"", b"\x00" * MLKEM768_CIPHERTEXT_SIZE, b"\x00" * 64),
        RotateResponse(1, b"\x00" * 32, b"\x00" * MLKEM768_PUBLIC_KEY_SIZE, b"\x00" * 64),
        RotateResponse(1, b"\x00" * 32, b"\x00" * (MLKEM768_CIPHERTEXT_SIZE + 1), b"\x00" * 64),
        RotateResponse(1, b"\x00" * 32, b"\x00" * MLKEM768_CIPHERTEXT_SIZE, b"\x00" * 65),
    ],
)
def test_fixed_size_fields_of_the_wrong_size_are_refused(record: Record) -> None:
    with pytest.raises(MessageTooLarge, match="expected"):
        encode_records([record])


def test_close_reason_bounds() -> None:
    longest = Close("x" * MAX_REASON_BYTES)
    assert decode_records(encode_records([longest])) == [longest]
    # The limit counts UTF-8 bytes, not characters.
    assert decode_records(encode_records([Close("é" * 100)])) == [Close("é" * 100)]
    with pytest.raises(MessageTooLarge):
        encode_records([Close("é" * 101)])
    with pytest.raises(MessageTooLarge):
        encode_records([Close("x" * (MAX_REASON_BYTES + 1))])
    with pytest.raises(MalformedMessage, match="reason"):
        encode_records([Close("")])


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (bytes([REC_CLOSE, 0, 0]), "outside"),  # empty reason
        (bytes([REC_CLOSE, 0, 2]) + b"\xc3\x28", "UTF-8"),
        (bytes([REC_CLOSE, 0, 1]) + b"\x80", "UTF-8"),
        (bytes([REC_CLOSE, 0, MAX_REASON_BYTES + 1]) + b"x" * 201, "outside"),
    ],
)
def test_bad_close_reasons_are_refused(raw: bytes, match: str) -> None:
    with pytest.raises(MalformedMessage, match=match):
        decode_records(raw)


@pytest.mark.parametrize("kind", sorted(set(range(256)) - KNOWN_TYPES))
def test_unknown_record_types_are_refused(kind: int) -> None:
    with pytest.raises(MalformedMessage, match="unknown record type"):
        decode_records(bytes([kind]) + b"\x00" * 40)


# --------------------------------------------------------------------------
# Truncation and trailing bytes


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_truncation_at_every_offset_is_refused(record: Record) -> None:
    data = encode_records([record])
    for cut in range(len(data)):
        with pytest.raises(MalformedMessage):
            decode_records(data[:cut])


@settings(max_examples=100, deadline=None)
@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_truncated_packets_yield_a_prefix_or_nothing(
    batch: list[Record], data: st.DataObject
) -> None:
    encoded = encode_records(batch)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    boundaries = {sum(record_size(r) for r in batch[:n]): n for n in range(1, len(batch))}
    decoded = decodes(encoded[:cut])
    if cut in boundaries:
        assert decoded == batch[: boundaries[cut]]
    else:
        assert decoded is None


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize(
    "garbage",
    [b"\x00", b"\xff", b"\x03\x00\x00", bytes([REC_ROTATE_INIT]) + b"\x00" * 100],
)
def test_trailing_garbage_is_refused(record: Record, garbage: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_records(encode_records([record]) + garbage)


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="expected bytes"):
        decode_records("not bytes")  # type: ignore[arg-type]
    raw = bytearray(encode_records([Heartbeat(9)]))
    assert decode_records(raw) == [Heartbeat(9)]  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Fuzzing: hostile bytes raise MalformedMessage and nothing else


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda kind, rest: bytes([kind]) + rest,
            st.sampled_from(sorted(KNOWN_TYPES)),
            st.binary(max_size=200),
        ),
    )
)
def test_random_bytes_only_raise_malformed(data: bytes) -> None:
    assert_canonical(data)


@st.composite
def mutated(draw: st.DrawFn, strategy: st.SearchStrategy[list[Record]]) -> bytes:
    """A valid encoding with bit flips, insertions, deletions, truncation."""
    return mutate(draw, encode_records(draw(strategy)), [0x00, 0x01, 0x0F, 0x10, 0x7F, 0x80, 0xFF])


@settings(max_examples=500, deadline=None)
@given(mutated(st.lists(records, min_size=1, max_size=4)))
def test_mutated_encodings_only_raise_malformed(data: bytes) -> None:
    assert_canonical(data)


def test_migrate_and_close_need_their_text() -> None:
    """An empty endpoint or close reason is refused both ways, and an
    endpoint longer than its declared maximum never decodes."""
    for bad in (Migrate(1, ""), Close("")):
        with pytest.raises(MalformedMessage, match="needs"):
            encode_records([bad])
    empty_migrate = bytes([REC_MIGRATE]) + (1).to_bytes(4, "big") + b"\x00\x00"
    with pytest.raises(MalformedMessage, match=r"endpoint length 0 outside \[1, 255\]"):
        decode_records(empty_migrate)
    empty_close = bytes([REC_CLOSE]) + b"\x00\x00"
    with pytest.raises(MalformedMessage, match=r"close reason length 0 outside"):
        decode_records(empty_close)
    too_long = "a" * (MAX_ENDPOINT_BYTES + 1)
    with pytest.raises(MessageTooLarge, match="endpoint: 256 bytes exceeds the maximum 255"):
        encode_records([Migrate(1, too_long)])
    raw = (
        bytes([REC_MIGRATE])
        + (1).to_bytes(4, "big")
        + len(too_long).to_bytes(2, "big")
        + too_long.encode()
    )
    with pytest.raises(MalformedMessage, match=r"endpoint length 256 outside"):
        decode_records(raw)


# --------------------------------------------------------------------------
# The MESSAGE fast path (issue 18) gives the field-by-field codec's bytes
# and errors.


def _slow_encode(records: list[Record]) -> bytes:
    from l2session.codec import Writer
    from l2session.wire.records import _write

    out = Writer()
    for record in records:
        _write(out, record)
    return out.getvalue()


def test_message_fast_path_is_byte_identical_and_round_trips() -> None:
    records: list[Record] = [
        Message(0, b""),
        Ack(5, ((7, 9),)),
        Message((1 << 64) - 1, b"x" * 1000),
        Heartbeat(3),
        Message(42, b"\xff\x00tail"),
    ]
    encoded = encode_records(records)
    assert encoded == _slow_encode(records)
    assert decode_records(encoded) == records


def test_a_truncated_or_oversized_message_raises_the_readers_error() -> None:
    good = encode_records([Message(1, b"hello")])
    with pytest.raises(MalformedMessage, match="truncated"):
        decode_records(good[:-1])
    with pytest.raises(MalformedMessage, match="truncated"):
        decode_records(good[:10])
    oversized = bytes([0x01]) + (1).to_bytes(8, "big") + (MAX_MESSAGE_BYTES + 1).to_bytes(4, "big")
    with pytest.raises(MalformedMessage, match="outside"):
        decode_records(oversized + b"\x00" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(MessageTooLarge):
        encode_records([Message(1, b"\x00" * (MAX_MESSAGE_BYTES + 1))])


def test_message_compares_hashes_and_matches_by_value() -> None:
    a, b = Message(3, b"p"), Message(3, b"p")
    assert a == b
    assert hash(a) == hash(b)
    assert a != Message(4, b"p")
    assert a != (3, b"p")
    assert repr(a) == "Message(seq=3, payload=b'p')"
    match a:
        case Message(seq, payload):
            assert (seq, payload) == (3, b"p")
