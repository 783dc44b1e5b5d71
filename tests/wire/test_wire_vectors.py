"""tests/vectors/wire_kat.json, checked two ways.

1. The codec reproduces every vector byte for byte (encode the fields,
   decode the bytes) and refuses every malformed one.
2. An independent reader that knows only the tables of docs/PROTOCOL.md §3
   and §4 (offsets, sizes, big-endian integers) parses every vector to the
   same fields.  If the document and the code disagree, this fails.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from l2session.errors import MalformedMessage
from l2session.testing.vectors import (
    PACKET_KINDS,
    RECORD_KINDS,
    from_json_fields,
    json_fields,
    wire_vector,
)
from l2session.wire.packets import Packet, decode_packet, encode_packet
from l2session.wire.records import Record, decode_records, encode_records, record_size

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "wire_kat.json").read_text(encoding="utf-8"))
    return data


VECTOR = load()


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["name"] for entry in entries]


def packet_of(entry: dict[str, Any]) -> Packet:
    packet = from_json_fields(entry["kind"], entry["fields"])
    assert isinstance(packet, PACKET_KINDS[entry["kind"]])
    return packet


def record_of(entry: dict[str, Any]) -> Record:
    record = from_json_fields(entry["kind"], entry["fields"])
    assert isinstance(record, RECORD_KINDS[entry["kind"]])
    return record


# ---------------------------------------------------------------------------
# 1. the codec


def test_wire_vector_is_reproduced_exactly() -> None:
    assert wire_vector() == VECTOR


def test_every_packet_and_record_type_has_a_vector() -> None:
    assert {entry["kind"] for entry in VECTOR["packets"]} == set(PACKET_KINDS)
    assert {entry["kind"] for entry in VECTOR["records"]} == set(RECORD_KINDS)
    assert max(len(payload["records"]) for payload in VECTOR["payloads"]) >= 4


@pytest.mark.parametrize("entry", VECTOR["packets"], ids=ids(VECTOR["packets"]))
def test_packet_vector(entry: dict[str, Any]) -> None:
    data = bytes.fromhex(entry["hex"])
    packet = packet_of(entry)
    assert encode_packet(packet) == data
    decoded = decode_packet(data)
    assert decoded == packet
    assert json_fields(decoded) == entry["fields"]


@pytest.mark.parametrize("entry", VECTOR["records"], ids=ids(VECTOR["records"]))
def test_record_vector(entry: dict[str, Any]) -> None:
    data = bytes.fromhex(entry["hex"])
    record = record_of(entry)
    assert encode_records([record]) == data
    assert decode_records(data) == [record]
    assert record_size(record) == len(data)


@pytest.mark.parametrize("entry", VECTOR["payloads"], ids=ids(VECTOR["payloads"]))
def test_payload_vector(entry: dict[str, Any]) -> None:
    data = bytes.fromhex(entry["hex"])
    records = [record_of(r) for r in entry["records"]]
    assert encode_records(records) == data
    assert decode_records(data) == records
    assert sum(record_size(r) for r in records) == len(data)


@pytest.mark.parametrize("entry", VECTOR["malformed_packets"], ids=ids(VECTOR["malformed_packets"]))
def test_malformed_packet_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        decode_packet(bytes.fromhex(entry["hex"]))


@pytest.mark.parametrize(
    "entry", VECTOR["malformed_payloads"], ids=ids(VECTOR["malformed_payloads"])
)
def test_malformed_payload_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        decode_records(bytes.fromhex(entry["hex"]))


# ---------------------------------------------------------------------------
# 2. docs/PROTOCOL.md's tables, read independently
#
# A field is ("name", size) for fixed bytes or ("name", codec) where codec is
# one of u8/u32/u64 (big-endian), str16/var16/var32 (length-prefixed),
# "rest" (to the end of the packet) or "sack" (ACK ranges).

Layout = tuple[str, list[tuple[str, int | str]]]

PACKETS: dict[int, Layout] = {
    0x10: ("HANDSHAKE", [("session_id", 16), ("message", "rest")]),
    0x11: ("BUNDLE_REQ", [("nonce", 16), ("did", "str16")]),
    0x12: ("BUNDLE", [("nonce", 16), ("bundle", "var16")]),
    0x20: ("DATA", [("session_id", 16), ("epoch", "u32"), ("ciphertext", "rest")]),
    0x30: (
        "RESUME",
        [("ticket_id", 16), ("ephemeral", 32), ("timestamp_ms", "u64"), ("mac", 32)],
    ),
    0x31: ("RESUME_ACK", [("ticket_id", 16), ("ephemeral", 32), ("mac", 32)]),
    0x32: ("RESUME_REJ", [("ticket_id", 16), ("reason", "u8")]),
    0x14: ("PREKEY_GONE", [("session_id", 16), ("reason", "u8"), ("prekey_id", "u32")]),
}
RECORDS: dict[int, Layout] = {
    0x01: ("MESSAGE", [("seq", "u64"), ("payload", "var32")]),
    0x02: ("ACK", [("next_expected", "u64"), ("ranges", "sack")]),
    0x03: ("HEARTBEAT", [("counter", "u64")]),
    0x04: ("HEARTBEAT_ACK", [("counter", "u64")]),
    0x05: (
        "ROTATE_INIT",
        [("epoch", "u32"), ("ephemeral_dh", 32), ("ephemeral_kem", 1184), ("signature", 64)],
    ),
    0x06: (
        "ROTATE_RESPONSE",
        [("epoch", "u32"), ("ephemeral_dh", 32), ("kem_ciphertext", 1088), ("signature", 64)],
    ),
    0x07: ("ROTATE_DONE", [("epoch", "u32")]),
    0x08: (
        "SYNC",
        [
            ("out_stream", "u64"),
            ("first_unacked", "u64"),
            ("in_stream", "u64"),
            ("next_expected", "u64"),
        ],
    ),
    0x09: ("CLOSE", [("reason", "str16")]),
    0x0A: ("MIGRATE", [("sequence", "u32"), ("endpoint", "str16")]),
    0x0B: ("PATH_CHALLENGE", [("token", 8)]),
    0x0C: ("PATH_RESPONSE", [("token", 8)]),
    0x0E: ("PUNCH_SYNC", []),
}


class DocReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        assert len(out) == n, "truncated"
        self.pos += n
        return out

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def field(self, codec: int | str) -> Any:
        if isinstance(codec, int):
            return self.take(codec).hex()
        if codec in ("u8", "u32", "u64"):
            return self.uint({"u8": 1, "u32": 4, "u64": 8}[codec])
        if codec == "str16":
            return self.take(self.uint(2)).decode("utf-8")
        if codec == "var16":
            return self.take(self.uint(2)).hex()
        if codec == "var32":
            return self.take(self.uint(4)).hex()
        if codec == "rest":
            return self.take(len(self.data) - self.pos).hex()
        assert codec == "sack"
        return [[self.uint(8), self.uint(8)] for _ in range(self.uint(1))]

    def fields(self, layout: list[tuple[str, int | str]]) -> dict[str, Any]:
        return {name: self.field(codec) for name, codec in layout}


def doc_packet(data: bytes) -> tuple[str, dict[str, Any]]:
    reader = DocReader(data)
    assert reader.uint(1) == 1  # protocol version
    kind, layout = PACKETS[reader.uint(1)]
    fields = reader.fields(layout)
    if kind == "BUNDLE_REQ":
        assert len(data) == 1200
        assert set(reader.take(len(data) - reader.pos)) <= {0}
    assert reader.pos == len(data)
    return kind, fields


def doc_records(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    reader = DocReader(data)
    out = []
    while reader.pos < len(data):
        kind, layout = RECORDS[reader.uint(1)]
        out.append((kind, reader.fields(layout)))
    return out


@pytest.mark.parametrize("entry", VECTOR["packets"], ids=ids(VECTOR["packets"]))
def test_packet_vector_follows_the_document(entry: dict[str, Any]) -> None:
    assert doc_packet(bytes.fromhex(entry["hex"])) == (entry["kind"], entry["fields"])


@pytest.mark.parametrize("entry", VECTOR["records"], ids=ids(VECTOR["records"]))
def test_record_vector_follows_the_document(entry: dict[str, Any]) -> None:
    assert doc_records(bytes.fromhex(entry["hex"])) == [(entry["kind"], entry["fields"])]


@pytest.mark.parametrize("entry", VECTOR["payloads"], ids=ids(VECTOR["payloads"]))
def test_payload_vector_follows_the_document(entry: dict[str, Any]) -> None:
    expected = [(r["kind"], r["fields"]) for r in entry["records"]]
    assert doc_records(bytes.fromhex(entry["hex"])) == expected


def test_fixed_sizes_match_the_document() -> None:
    """The sizes PROTOCOL.md §3 states for the fixed-size packets and the
    header of DATA and HANDSHAKE."""
    sizes = {entry["kind"]: len(entry["hex"]) // 2 for entry in VECTOR["packets"]}
    assert (sizes["RESUME"], sizes["RESUME_ACK"], sizes["RESUME_REJ"]) == (90, 82, 19)
    assert sizes["BUNDLE_REQ"] == 1200
    data = next(e for e in VECTOR["packets"] if e["kind"] == "DATA")
    assert len(data["hex"]) // 2 == 22 + len(data["fields"]["ciphertext"]) // 2
    assert struct.unpack(">BB16sI", bytes.fromhex(data["hex"])[:22])[:2] == (1, 0x20)
