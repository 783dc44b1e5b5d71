"""Relay packets (wire/relay.py, docs/PROTOCOL.md §3.12): the checked-in
known-answer vectors are reproduced byte for byte, every packet round trips,
the RESERVE signature verifies, and hostile bytes raise MalformedMessage
only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2session.crypto import primitives
from l2session.errors import MalformedMessage
from l2session.identity.did import Did, ed25519_from_did_key
from l2session.testing.vectors import relay_vector
from l2session.wire.relay import (
    RELAY_TYPES,
    Connect,
    Reserve,
    connect_signed_bytes,
    decode_relay,
    encode_relay,
    is_relay_packet,
    reserve_signed_bytes,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "relay_kat.json"
KAT: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))


def test_relay_vector_is_reproduced_exactly() -> None:
    assert relay_vector() == KAT


def test_every_relay_packet_type_has_a_vector() -> None:
    assert {bytes.fromhex(p["hex"])[1] for p in KAT["packets"]} == set(RELAY_TYPES)


@pytest.mark.parametrize("entry", KAT["packets"], ids=lambda e: e["name"])
def test_relay_vector_decodes_and_re_encodes(entry: dict[str, Any]) -> None:
    data = bytes.fromhex(entry["hex"])
    packet = decode_relay(data)
    assert type(packet).__name__ == entry["kind"]
    assert encode_relay(packet) == data
    assert is_relay_packet(data)


def test_the_reserve_signature_verifies_for_the_did_and_this_relay_only() -> None:
    reserve = decode_relay(bytes.fromhex(KAT["packets"][0]["hex"]))
    assert isinstance(reserve, Reserve)
    key = ed25519_from_did_key(Did.parse(KAT["reserving_did"]))
    signed = reserve_signed_bytes(
        KAT["relay_did"], reserve.did, reserve.timestamp_ms, reserve.nonce
    )
    assert signed.hex() == KAT["reserve_signed_bytes"]
    primitives.ed25519_verify(key, reserve.signature, signed, what="RESERVE")
    elsewhere = reserve_signed_bytes(
        KAT["reserving_did"], reserve.did, reserve.timestamp_ms, reserve.nonce
    )
    with pytest.raises(Exception, match="signature"):
        primitives.ed25519_verify(key, reserve.signature, elsewhere, what="RESERVE")


def test_the_connect_signature_verifies_for_the_initiator_this_relay_and_target() -> None:
    [connect] = [p for p in KAT["packets"] if p["name"] == "CONNECT signed"]
    packet = decode_relay(bytes.fromhex(connect["hex"]))
    assert isinstance(packet, Connect)
    assert packet.signed
    assert packet.initiator == KAT["connecting_did"]
    assert packet.target == KAT["reserving_did"]
    assert packet.timestamp_ms is not None
    assert packet.signature is not None
    key = ed25519_from_did_key(Did.parse(KAT["connecting_did"]))
    signed = connect_signed_bytes(
        KAT["relay_did"], KAT["connecting_did"], packet.target, packet.timestamp_ms, packet.nonce
    )
    assert signed.hex() == KAT["connect_signed_bytes"]
    primitives.ed25519_verify(key, packet.signature, signed, what="CONNECT")
    for relay, target in ((KAT["reserving_did"], packet.target), (KAT["relay_did"], "did:x")):
        other = connect_signed_bytes(
            relay, KAT["connecting_did"], target, packet.timestamp_ms, packet.nonce
        )
        with pytest.raises(Exception, match="signature"):
            primitives.ed25519_verify(key, packet.signature, other, what="CONNECT")


def test_the_unsigned_connect_of_the_first_release_still_decodes_as_unsigned() -> None:
    [connect] = [p for p in KAT["packets"] if p["name"] == "CONNECT"]
    packet = decode_relay(bytes.fromhex(connect["hex"]))
    assert isinstance(packet, Connect)
    assert not packet.signed
    with pytest.raises(MalformedMessage, match="all three"):
        encode_relay(Connect(packet.nonce, packet.target, 1, None, None))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("0146a0a1a2a3a4a5a6a7", "without a payload"),
        ("0142" + "00" * 16, "reason"),
        ("0142" + "00" * 16 + "0300", "trailing"),
        ("0148", "unknown packet type"),
        ("0243" + "00" * 16 + "01" + "61", "version"),
        ("0143" + "00" * 16 + "00", "length 0"),
        ("0141" + "00" * 16 + "00000258" + "02ffff", "UTF-8"),
        # A signed CONNECT cut short: a timestamp without the rest, and
        # everything but the last byte of the signature.
        ("0143" + "00" * 16 + "0161" + "00" * 8, "initiator DID length"),
        ("0143" + "00" * 16 + "0161" + "00" * 8 + "0162" + "00" * 63, "truncated"),
        ("0145" + "00" * 16 + "0b" + "00", "relay DID length 0"),
    ],
)
def test_damaged_relay_packets_are_malformed(data: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        decode_relay(bytes.fromhex(data))


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_malformed(data: bytes) -> None:
    try:
        packet = decode_relay(data)
    except MalformedMessage:
        return
    assert encode_relay(packet) == data
