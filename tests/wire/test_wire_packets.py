"""Packets, as one transport datagram carries them: round trips, limits,
bundle-request padding, and hostile bytes (MalformedMessage only)."""

from __future__ import annotations

import struct
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.crypto.handshake_messages import PROTOCOL_VERSION
from l2session.crypto.prekey_records import MAX_DID_BYTES
from l2session.errors import MalformedMessage, MessageTooLarge
from l2session.testing.fuzz import mutate
from l2session.wire.packets import (
    BUNDLE_REQUEST_SIZE,
    GONE_ONE_TIME,
    MAC_SIZE,
    MAX_PACKET,
    NONCE_SIZE,
    PKT_BUNDLE,
    PKT_BUNDLE_REQUEST,
    PKT_DATA,
    PKT_HANDSHAKE,
    PKT_PREKEY_GONE,
    PKT_RESUME,
    PKT_RESUME_ACK,
    PKT_RESUME_EARLY,
    PKT_RESUME_REJECT,
    REJECT_STALE,
    SESSION_ID_SIZE,
    TICKET_ID_SIZE,
    BundlePacket,
    BundleRequest,
    DataPacket,
    HandshakePacket,
    Packet,
    PrekeyGonePacket,
    ResumeAckPacket,
    ResumeEarlyPacket,
    ResumePacket,
    ResumeRejectPacket,
    decode_packet,
    encode_packet,
)

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1
MAX_HANDSHAKE = 8192
MAX_BUNDLE = 16384
KNOWN_TYPES = (
    PKT_HANDSHAKE,
    PKT_BUNDLE_REQUEST,
    PKT_BUNDLE,
    PKT_DATA,
    PKT_RESUME,
    PKT_RESUME_ACK,
    PKT_RESUME_REJECT,
    PKT_RESUME_EARLY,
    PKT_PREKEY_GONE,
)
#: Types whose last field runs to the end of the packet, and their header size.
REST_OF_PACKET = {
    HandshakePacket: 2 + SESSION_ID_SIZE,
    DataPacket: 2 + SESSION_ID_SIZE + 4,
    ResumeEarlyPacket: 2 + TICKET_ID_SIZE + 32 + 8 + MAC_SIZE,
}


def fixed(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


# At most 128 characters of at most 4 UTF-8 bytes each: within MAX_DID_BYTES.
dids = st.text(min_size=1, max_size=MAX_DID_BYTES // 4)

packets: st.SearchStrategy[Packet] = st.one_of(
    st.builds(HandshakePacket, fixed(SESSION_ID_SIZE), st.binary(min_size=1, max_size=300)),
    st.builds(BundleRequest, fixed(NONCE_SIZE), dids),
    st.builds(BundlePacket, fixed(NONCE_SIZE), st.binary(max_size=300)),
    st.builds(
        DataPacket,
        fixed(SESSION_ID_SIZE),
        st.integers(0, U32_MAX),
        st.binary(min_size=1, max_size=300),
    ),
    st.builds(
        ResumePacket,
        fixed(TICKET_ID_SIZE),
        fixed(32),
        st.integers(0, U64_MAX),
        fixed(MAC_SIZE),
    ),
    st.builds(ResumeAckPacket, fixed(TICKET_ID_SIZE), fixed(32), fixed(MAC_SIZE)),
    st.builds(ResumeRejectPacket, fixed(TICKET_ID_SIZE), st.integers(0, 255)),
    st.builds(
        ResumeEarlyPacket,
        fixed(TICKET_ID_SIZE),
        fixed(32),
        st.integers(0, U64_MAX),
        fixed(MAC_SIZE),
        st.binary(min_size=17, max_size=300),
    ),
    st.builds(
        PrekeyGonePacket, fixed(SESSION_ID_SIZE), st.sampled_from([1, 2]), st.integers(0, U32_MAX)
    ),
)

SID = bytes(range(SESSION_ID_SIZE))
NONCE = b"\x11" * NONCE_SIZE
TICKET = b"\x22" * TICKET_ID_SIZE
EPH = b"\x33" * 32
MAC = b"\x44" * MAC_SIZE

EXAMPLES: list[Packet] = [
    HandshakePacket(SID, b"pqxdh init bytes"),
    BundleRequest(NONCE, "did:key:z6MkexampleDid"),
    BundlePacket(NONCE, b"signed bundle"),
    BundlePacket(NONCE, b""),
    DataPacket(SID, 7, b"ciphertext"),
    ResumePacket(TICKET, EPH, 1_800_000_000_000, MAC),
    ResumeAckPacket(TICKET, EPH, MAC),
    ResumeRejectPacket(TICKET, REJECT_STALE),
    ResumeEarlyPacket(TICKET, EPH, 1_800_000_000_000, MAC, b"sealed early records"),
    PrekeyGonePacket(SID, GONE_ONE_TIME, 0xFFFFFFFF),
]
FIXED_LENGTH = [p for p in EXAMPLES if type(p) not in REST_OF_PACKET]


def decodes(data: bytes) -> Packet | None:
    """Decode, treating MalformedMessage as a refusal; any other exception
    propagates and fails the test."""
    try:
        return decode_packet(data)
    except MalformedMessage:
        return None


def assert_canonical(data: bytes) -> None:
    """Whatever decodes re-encodes to exactly the same bytes."""
    decoded = decodes(data)
    if decoded is not None:
        assert encode_packet(decoded) == data


def name(packet: Packet) -> str:
    return type(packet).__name__


# --------------------------------------------------------------------------
# Round trips


def test_every_packet_type_is_exercised() -> None:
    assert {type(p) for p in EXAMPLES} == set(get_args(Packet))


@pytest.mark.parametrize("packet", EXAMPLES, ids=name)
def test_examples_round_trip(packet: Packet) -> None:
    data = encode_packet(packet)
    assert data[0] == PROTOCOL_VERSION
    assert data[1] in KNOWN_TYPES
    assert decode_packet(data) == packet
    assert decode_packet(bytearray(data)) == packet  # type: ignore[arg-type]
    assert decode_packet(memoryview(data)) == packet  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(packets)
def test_packets_round_trip(packet: Packet) -> None:
    data = encode_packet(packet)
    assert decode_packet(data) == packet
    assert len(data) <= MAX_PACKET


def test_header_layouts() -> None:
    data = encode_packet(DataPacket(SID, 0x01020304, b"\xee"))
    assert data == bytes([PROTOCOL_VERSION, PKT_DATA]) + SID + b"\x01\x02\x03\x04\xee"
    resume = encode_packet(ResumePacket(TICKET, EPH, 5, MAC))
    assert (
        resume == bytes([PROTOCOL_VERSION, PKT_RESUME]) + TICKET + EPH + struct.pack(">Q", 5) + MAC
    )
    reject = encode_packet(ResumeRejectPacket(TICKET, 3))
    assert reject == bytes([PROTOCOL_VERSION, PKT_RESUME_REJECT]) + TICKET + b"\x03"


# --------------------------------------------------------------------------
# Field sizes and limits


@pytest.mark.parametrize(
    "packet",
    [
        HandshakePacket(SID[:-1], b"m"),
        HandshakePacket(SID + b"\x00", b"m"),
        BundleRequest(NONCE[:-1], "did:x"),
        BundlePacket(b"", b"b"),
        DataPacket(SID[:15], 0, b"c"),
        ResumePacket(TICKET[:-1], EPH, 0, MAC),
        ResumePacket(TICKET, EPH[:-1], 0, MAC),
        ResumePacket(TICKET, EPH, 0, MAC + b"\x00"),
        ResumeAckPacket(TICKET + b"\x00", EPH, MAC),
        ResumeAckPacket(TICKET, EPH + b"\x00", MAC),
        ResumeAckPacket(TICKET, EPH, MAC[:-1]),
        ResumeRejectPacket(b"\x00" * 17, 1),
    ],
    ids=name,
)
def test_fixed_size_fields_of_the_wrong_size_are_refused(packet: Packet) -> None:
    with pytest.raises(MessageTooLarge, match="expected"):
        encode_packet(packet)


def test_handshake_message_bounds() -> None:
    largest = HandshakePacket(SID, b"h" * MAX_HANDSHAKE)
    assert decode_packet(encode_packet(largest)) == largest
    with pytest.raises(MalformedMessage, match="handshake"):
        encode_packet(HandshakePacket(SID, b"h" * (MAX_HANDSHAKE + 1)))
    with pytest.raises(MalformedMessage, match="handshake"):
        encode_packet(HandshakePacket(SID, b""))
    header = bytes([PROTOCOL_VERSION, PKT_HANDSHAKE]) + SID
    with pytest.raises(MalformedMessage, match="size out of range"):
        decode_packet(header + b"h" * (MAX_HANDSHAKE + 1))
    with pytest.raises(MalformedMessage, match="size out of range"):
        decode_packet(header)


def test_bundle_bounds() -> None:
    largest = BundlePacket(NONCE, b"b" * MAX_BUNDLE)
    assert decode_packet(encode_packet(largest)) == largest
    with pytest.raises(MessageTooLarge):
        encode_packet(BundlePacket(NONCE, b"b" * (MAX_BUNDLE + 1)))
    raw = bytes([PROTOCOL_VERSION, PKT_BUNDLE]) + NONCE + struct.pack(">H", MAX_BUNDLE + 1)
    with pytest.raises(MalformedMessage, match="outside"):
        decode_packet(raw + b"b" * (MAX_BUNDLE + 1))


def test_data_packet_bounds() -> None:
    header = bytes([PROTOCOL_VERSION, PKT_DATA]) + SID + b"\x00\x00\x00\x01"
    largest = header + b"c" * (MAX_PACKET - len(header))
    packet = decode_packet(largest)
    assert isinstance(packet, DataPacket)
    assert len(packet.ciphertext) == MAX_PACKET - len(header)
    assert encode_packet(packet) == largest
    with pytest.raises(MalformedMessage, match="exceeds"):
        decode_packet(largest + b"c")
    with pytest.raises(MalformedMessage, match="exceeds"):
        encode_packet(DataPacket(SID, 1, b"c" * (MAX_PACKET - len(header) + 1)))
    with pytest.raises(MalformedMessage, match="without ciphertext"):
        decode_packet(header)
    with pytest.raises(MalformedMessage, match="without ciphertext"):
        encode_packet(DataPacket(SID, 1, b""))


def test_oversized_input_is_refused_whatever_its_type() -> None:
    with pytest.raises(MalformedMessage, match="exceeds"):
        decode_packet(bytes([PROTOCOL_VERSION, PKT_RESUME]) + bytes(MAX_PACKET))


# --------------------------------------------------------------------------
# Bundle request padding (anti-amplification)


@pytest.mark.parametrize("did", ["d", "did:key:z6Mk" + "a" * 100, "é" * (MAX_DID_BYTES // 2)])
def test_bundle_requests_are_padded_to_1200_bytes(did: str) -> None:
    data = encode_packet(BundleRequest(NONCE, did))
    assert len(data) == BUNDLE_REQUEST_SIZE
    body = 2 + NONCE_SIZE + 2 + len(did.encode())
    assert data[body:] == bytes(BUNDLE_REQUEST_SIZE - body)
    assert decode_packet(data) == BundleRequest(NONCE, did)


def test_bundle_request_did_bounds() -> None:
    with pytest.raises(MessageTooLarge):
        encode_packet(BundleRequest(NONCE, "x" * (MAX_DID_BYTES + 1)))
    with pytest.raises(MalformedMessage, match="DID"):
        encode_packet(BundleRequest(NONCE, ""))
    raw = bytes([PROTOCOL_VERSION, PKT_BUNDLE_REQUEST]) + NONCE + b"\x00\x00"
    with pytest.raises(MalformedMessage, match="outside"):
        decode_packet(raw + bytes(BUNDLE_REQUEST_SIZE - len(raw)))
    raw = bytes([PROTOCOL_VERSION, PKT_BUNDLE_REQUEST]) + NONCE + b"\x00\x02\xff\xfe"
    with pytest.raises(MalformedMessage, match="UTF-8"):
        decode_packet(raw + bytes(BUNDLE_REQUEST_SIZE - len(raw)))


@pytest.mark.parametrize("offset", [-1, -600, 2 + NONCE_SIZE + 2 + 5])
def test_nonzero_padding_is_refused(offset: int) -> None:
    data = bytearray(encode_packet(BundleRequest(NONCE, "did:x")))
    data[offset] = 0x01
    with pytest.raises(MalformedMessage, match="padding must be zero"):
        decode_packet(bytes(data))


@pytest.mark.parametrize("size", [2 + NONCE_SIZE + 2 + 5, 600, BUNDLE_REQUEST_SIZE - 1])
def test_short_bundle_requests_are_refused(size: int) -> None:
    data = encode_packet(BundleRequest(NONCE, "did:x"))[:size]
    with pytest.raises(MalformedMessage, match="padded"):
        decode_packet(data)


def test_over_padded_bundle_requests_are_refused() -> None:
    data = encode_packet(BundleRequest(NONCE, "did:x"))
    with pytest.raises(MalformedMessage, match="padded"):
        decode_packet(data + b"\x00")


# --------------------------------------------------------------------------
# Version, type, truncation, trailing bytes


@pytest.mark.parametrize("packet", EXAMPLES, ids=name)
@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, 0xFF])
def test_unknown_versions_are_refused(packet: Packet, version: int) -> None:
    data = bytearray(encode_packet(packet))
    data[0] = version
    with pytest.raises(MalformedMessage, match="protocol version"):
        decode_packet(bytes(data))


@pytest.mark.parametrize("kind", sorted(set(range(256)) - set(KNOWN_TYPES)))
def test_unknown_types_are_refused(kind: int) -> None:
    with pytest.raises(MalformedMessage, match="unknown type"):
        decode_packet(bytes([PROTOCOL_VERSION, kind]) + bytes(100))


@pytest.mark.parametrize("packet", FIXED_LENGTH, ids=name)
def test_truncation_at_every_offset_is_refused(packet: Packet) -> None:
    data = encode_packet(packet)
    for cut in range(len(data)):
        with pytest.raises(MalformedMessage):
            decode_packet(data[:cut])


@pytest.mark.parametrize("packet", [p for p in EXAMPLES if type(p) in REST_OF_PACKET], ids=name)
def test_rest_of_packet_types_refuse_truncated_headers(packet: Packet) -> None:
    data = encode_packet(packet)
    header = REST_OF_PACKET[type(packet)]
    # Up to and including a header with nothing after it.
    for cut in range(header + 1):
        with pytest.raises(MalformedMessage):
            decode_packet(data[:cut])
    # Their last field runs to the end: a shorter one is still a packet.
    shorter = decodes(data[:-1])
    assert shorter is not None
    assert encode_packet(shorter) == data[:-1]


@pytest.mark.parametrize("packet", FIXED_LENGTH, ids=name)
@pytest.mark.parametrize("garbage", [b"\x00", b"\x01", bytes(64)])
def test_trailing_garbage_is_refused(packet: Packet, garbage: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_packet(encode_packet(packet) + garbage)


@pytest.mark.parametrize("value", ["text", None, 42, [1, 2]])
def test_non_bytes_input_is_refused(value: object) -> None:
    with pytest.raises(MalformedMessage, match="expected bytes"):
        decode_packet(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Fuzzing: hostile bytes raise MalformedMessage and nothing else


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda kind, rest: bytes([PROTOCOL_VERSION, kind]) + rest,
            st.sampled_from(KNOWN_TYPES),
            st.binary(max_size=300),
        ),
    )
)
def test_random_bytes_only_raise_malformed(data: bytes) -> None:
    assert_canonical(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid encoding with bit flips, insertions, deletions, truncation."""
    return mutate(draw, encode_packet(draw(packets)), [0x00, 0x01, 0x11, 0x20, 0x7F, 0x80, 0xFF])


@settings(max_examples=500, deadline=None)
@given(mutated())
def test_mutated_encodings_only_raise_malformed(data: bytes) -> None:
    assert_canonical(data)
