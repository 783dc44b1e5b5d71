"""tests/vectors/session_kat.json, checked two ways.

1. The code reproduces the vector byte for byte, and Channels rebuilt from
   the vector's keys open its DATA packets to the listed records (and refuse
   them with any byte changed).
2. docs/PROTOCOL.md §6-§8, re-implemented from the text with `blake3` and
   `cryptography` only: the key schedule, the RESUME MAC and transcript, the
   rotation transcript and signatures, and the decryption of every DATA
   packet (the ratchet steps of docs/CRYPTO.md §5).  If the documents and
   the code disagree, this fails.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import blake3
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from l2session.core.link.channel import Channel
from l2session.crypto import primitives
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.rng import SeededRandom
from l2session.errors import AuthenticationFailed, MalformedMessage, ReplayDetected
from l2session.testing.vectors import RECORD_KINDS, from_json_fields, session_vector
from l2session.wire.packets import DataPacket, decode_packet
from l2session.wire.records import Record, decode_records, encode_records

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "session_kat.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    return load()


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def records_of(entries: list[dict[str, Any]]) -> list[Record]:
    out: list[Record] = []
    for entry in entries:
        record = from_json_fields(entry["kind"], entry["fields"])
        assert isinstance(record, RECORD_KINDS[entry["kind"]])
        out.append(record)
    return out


# ---------------------------------------------------------------------------
# 1. the code


def test_session_vector_is_reproduced_exactly(vector: dict[str, Any]) -> None:
    assert session_vector(vector["seed"]) == vector


def test_another_seed_changes_every_exchange(vector: dict[str, Any]) -> None:
    other = session_vector("a different seed")
    assert other["key_schedule"] == vector["key_schedule"]  # fixed inputs only
    assert other["rotation"]["rotate_init"] != vector["rotation"]["rotate_init"]
    assert other["resumption"]["resume"] != vector["resumption"]["resume"]
    assert other["data"]["packets"][0]["packet"] != vector["data"]["packets"][0]["packet"]


def test_data_plaintexts_are_the_listed_records(vector: dict[str, Any]) -> None:
    for packet in vector["data"]["packets"]:
        records = records_of(packet["records"])
        assert encode_records(records) == h(packet["plaintext"])
        assert decode_records(h(packet["plaintext"])) == records


def _receiving_channel(data: dict[str, Any], side: str) -> Channel:
    """A fresh Channel for ``side`` on the vector's fixed keys."""
    own = primitives.x25519_from_private(h(data[f"{side}_ratchet_private"]))
    other = "initiator" if side == "responder" else "responder"
    peer = primitives.x25519_from_private(h(data[f"{other}_ratchet_private"])).public
    build = DoubleRatchet.for_responder if side == "responder" else DoubleRatchet.for_initiator
    ratchet = build(
        root_key=h(data["root_key"]),
        chain_key=h(data["chain_key"]),
        own_ephemeral=own,
        peer_ephemeral=peer,
        associated_data=h(data["associated_data"]),
        rng=SeededRandom("unused"),
    )
    return Channel(
        session_id=h(data["session_id"]), epoch=0, ratchet=ratchet, lineage=bytes(32), keyed_at=0.0
    )


def test_channels_on_the_vector_keys_open_the_packets(vector: dict[str, Any]) -> None:
    data = vector["data"]
    initiator = _receiving_channel(data, "initiator")
    first = decode_packet(h(data["packets"][0]["packet"]))
    assert isinstance(first, DataPacket)
    assert first.session_id == h(data["session_id"])
    assert first.epoch == data["key_epoch"]
    assert initiator.open(first) == records_of(data["packets"][0]["records"])
    # The same packet again is a replay.
    with pytest.raises(ReplayDetected):
        initiator.open(first)


@pytest.mark.parametrize("offset", [22, 22 + 40, 22 + 52, 22 + 68, -1])
def test_any_changed_byte_is_refused(vector: dict[str, Any], offset: int) -> None:
    """Ratchet key, counters, header tag, body, AEAD tag: each is covered."""
    data = vector["data"]
    raw = bytearray(h(data["packets"][0]["packet"]))
    raw[offset] ^= 0x01
    packet = decode_packet(bytes(raw))
    assert isinstance(packet, DataPacket)
    with pytest.raises((AuthenticationFailed, MalformedMessage, ReplayDetected)):
        _receiving_channel(data, "initiator").open(packet)


def test_unknown_key_epoch_is_refused(vector: dict[str, Any]) -> None:
    data = vector["data"]
    raw = bytearray(h(data["packets"][0]["packet"]))
    raw[18:22] = (1).to_bytes(4, "big")
    packet = decode_packet(bytes(raw))
    assert isinstance(packet, DataPacket)
    with pytest.raises(MalformedMessage):
        _receiving_channel(data, "initiator").open(packet)


# ---------------------------------------------------------------------------
# 2. the documents, re-implemented


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def kdf(label: str, *parts: bytes, length: int = 32) -> bytes:
    material = b"".join(u32(len(p)) + p for p in parts)
    return blake3.blake3(material, derive_key_context="l2session v1 " + label).digest(length)


def mac(key: bytes, data: bytes) -> bytes:
    return blake3.blake3(data, key=key).digest()


def fingerprint(*parts: bytes) -> bytes:
    return blake3.blake3(b"".join(u32(len(p)) + p for p in parts)).digest()


def x25519(private: bytes, public: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private)
    return key.exchange(X25519PublicKey.from_public_bytes(public))


def x25519_public(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def open_data(
    packet: bytes, *, session_id: bytes, epoch: int, chain_key: bytes, ad: bytes
) -> tuple[bytes, tuple[bytes, int, int, int, int]]:
    """PROTOCOL.md §3.5 and CRYPTO.md §5: DATA header, ratchet header, header
    tag, AEAD.  ``chain_key`` is the first key of the sender's chain and the
    packet is its first message (N = 0)."""
    version, kind, sid, key_epoch = struct.unpack(">BB16sI", packet[:22])
    assert (version, kind, sid, key_epoch) == (1, 0x20, session_id, epoch)
    message = packet[22:]
    header, tag, body = message[:52], message[52:68], message[68:]
    fields = struct.unpack(">32sIIQI", header)
    assert tag == mac(kdf("ratchet header", chain_key), header)[:16]
    step = kdf("ratchet chain", chain_key, length=76)
    plaintext = ChaCha20Poly1305(step[32:64]).decrypt(step[64:76], body, ad + header + tag)
    return plaintext, fields


def test_key_schedule_follows_the_document(vector: dict[str, Any]) -> None:
    v = vector["key_schedule"]
    i: dict[str, Any] = {k: h(x) if isinstance(x, str) else x for k, x in v["inputs"].items()}
    lineage = kdf("session lineage", i["root_key"], i["handshake_hash"])
    assert lineage.hex() == v["initial_lineage"]
    parts = [h(p) for p in v["inputs"]["rotation_parts"]]
    th_rotation = fingerprint(i["session_id"], u32(i["rotation_epoch"]), *parts)
    assert th_rotation.hex() == v["rotation_transcript"]
    out = kdf(
        "session rotation",
        lineage,
        i["dh"],
        i["kem_secret"],
        i["transcript_hash"],
        length=96,
    )
    assert [out[:32].hex(), out[32:64].hex(), out[64:].hex()] == [
        v["rotation_keys"]["lineage"],
        v["rotation_keys"]["root_key"],
        v["rotation_keys"]["chain_key"],
    ]
    secret = i["resumption_secret"]
    ticket_id = kdf("resumption ticket id", secret, length=16)
    ticket_key = kdf("resumption ticket key", secret)
    assert (ticket_id.hex(), ticket_key.hex()) == (v["ticket_id"], v["ticket_key"])
    mac_input = (
        b"l2session v1 resume\x00"
        + ticket_id
        + i["resume_ephemeral"]
        + u64(i["resume_timestamp_ms"])
    )
    assert mac_input.hex() == v["resume_mac_input"]
    tag = mac(ticket_key, mac_input)
    assert tag.hex() == v["resume_mac"]
    transcript = fingerprint(
        ticket_id,
        i["resume_ephemeral"],
        u64(i["resume_timestamp_ms"]),
        tag,
        i["resume_responder_ephemeral"],
    )
    assert transcript.hex() == v["resume_transcript"]
    out = kdf("session resumption", secret, lineage, i["dh"], i["transcript_hash"], length=192)
    keys = v["resumption_keys"]
    assert [out[k : k + 32].hex() for k in range(0, 192, 32)] == [
        keys["lineage"],
        keys["root_key"],
        keys["chain_key"],
        keys["next_secret"],
        keys["responder_confirm"],
        keys["initiator_confirm"],
    ]
    assert kdf("resumed session id", i["transcript_hash"], length=16).hex() == keys["session_id"]


def test_data_packets_follow_the_document(vector: dict[str, Any]) -> None:
    d = vector["data"]
    root, chain, ad = h(d["root_key"]), h(d["chain_key"]), h(d["associated_data"])
    sid = h(d["session_id"])
    responder_private = h(d["responder_ratchet_private"])
    first, second = d["packets"]
    # The responder's first packet: its handshake ephemeral, no DH step.
    plaintext, header = open_data(
        h(first["packet"]), session_id=sid, epoch=0, chain_key=chain, ad=ad
    )
    assert header == (x25519_public(responder_private), 0, 0, 0, 0)
    assert plaintext.hex() == first["plaintext"]
    # The initiator's reply: a DH step first (new ratchet key).
    new_key = x25519_public(h(second["sender_ratchet_private"]))
    step = kdf("ratchet root", root, x25519(responder_private, new_key), length=64)
    plaintext, header = open_data(
        h(second["packet"]), session_id=sid, epoch=0, chain_key=step[32:], ad=ad
    )
    assert header == (new_key, 0, 0, 0, 0)
    assert plaintext.hex() == second["plaintext"]


def test_rotation_follows_the_document(vector: dict[str, Any]) -> None:
    r = vector["rotation"]
    sid, lineage = h(r["session_id"]), h(r["lineage"])
    init, response = h(r["rotate_init"]), h(r["rotate_response"])
    # ROTATE_INIT: type, epoch, X25519 key, ML-KEM key, signature.
    assert len(init) == 1 + 4 + 32 + 1184 + 64
    assert init[0] == 0x05
    epoch = int.from_bytes(init[1:5], "big")
    assert epoch == 1
    init_dh, init_kem, init_sig = init[5:37], init[37:1221], init[1221:]
    kem_key = MLKEM768PrivateKey.from_seed_bytes(h(r["initiator_ephemeral_kem_seed"]))
    assert init_dh == x25519_public(h(r["initiator_ephemeral_private"]))
    assert init_kem == kem_key.public_key().public_bytes_raw()
    th_init = fingerprint(sid, u32(epoch), init_dh, init_kem)
    assert th_init.hex() == r["transcript_init"]
    Ed25519PublicKey.from_public_bytes(h(r["initiator_signing_public"])).verify(
        init_sig, b"l2session v1 rotate init\x00" + th_init
    )
    # ROTATE_RESPONSE: type, epoch, X25519 key, ML-KEM ciphertext, signature.
    assert len(response) == 1 + 4 + 32 + 1088 + 64
    assert response[0] == 0x06
    assert int.from_bytes(response[1:5], "big") == epoch
    resp_dh, ciphertext, resp_sig = response[5:37], response[37:1125], response[1125:]
    assert resp_dh == x25519_public(h(r["responder_ephemeral_private"]))
    th = fingerprint(sid, u32(epoch), th_init, init_sig, resp_dh, ciphertext)
    assert th.hex() == r["transcript"]
    Ed25519PublicKey.from_public_bytes(h(r["responder_signing_public"])).verify(
        resp_sig, b"l2session v1 rotate response\x00" + th
    )
    dh = x25519(h(r["initiator_ephemeral_private"]), resp_dh)
    secret = kem_key.decapsulate(ciphertext)
    assert (dh.hex(), secret.hex()) == (r["dh"], r["kem_secret"])
    out = kdf("session rotation", lineage, dh, secret, th, length=96)
    keys = r["keys"]
    assert [out[:32].hex(), out[32:64].hex(), out[64:].hex()] == [
        keys["lineage"],
        keys["root_key"],
        keys["chain_key"],
    ]
    # The initiator's first packet under the new key epoch: its ratchet takes
    # a DH step against the responder's rotation key; AD is the session id.
    packet = h(r["rotate_done_packet"])
    sender_key = packet[22:54]
    step = kdf(
        "ratchet root",
        out[32:64],
        x25519(h(r["responder_ephemeral_private"]), sender_key),
        length=64,
    )
    plaintext, header = open_data(packet, session_id=sid, epoch=1, chain_key=step[32:], ad=sid)
    assert header == (sender_key, 0, 0, 0, 0)
    assert plaintext == bytes([0x07]) + u32(epoch)  # ROTATE_DONE(1)


def test_resumption_follows_the_document(vector: dict[str, Any]) -> None:
    r = vector["resumption"]
    secret, lineage = h(r["resumption_secret"]), h(r["lineage"])
    initiator_private = h(r["initiator_ephemeral_private"])
    responder_private = h(r["responder_ephemeral_private"])
    resume, ack = h(r["resume"]), h(r["resume_ack"])
    # RESUME: version, type, ticket id, ephemeral, timestamp, MAC (90 bytes).
    assert len(resume) == 90
    assert resume[:2] == b"\x01\x30"
    ticket_id, ephemeral, stamp, tag = resume[2:18], resume[18:50], resume[50:58], resume[58:]
    assert ticket_id == kdf("resumption ticket id", secret, length=16)
    assert ticket_id.hex() == r["ticket_id"]
    ticket_key = kdf("resumption ticket key", secret)
    assert ticket_key.hex() == r["ticket_key"]
    assert ephemeral == x25519_public(initiator_private)
    assert int.from_bytes(stamp, "big") == round(r["now"] * 1000)
    assert tag == mac(ticket_key, b"l2session v1 resume\x00" + ticket_id + ephemeral + stamp)
    # RESUME_ACK: version, type, ticket id, ephemeral, confirmation (82 bytes).
    assert len(ack) == 82
    assert ack[:2] == b"\x01\x31"
    assert ack[2:18] == ticket_id
    responder_ephemeral, confirm = ack[18:50], ack[50:]
    assert responder_ephemeral == x25519_public(responder_private)
    transcript = fingerprint(ticket_id, ephemeral, stamp, tag, responder_ephemeral)
    assert transcript.hex() == r["transcript"]
    dh = x25519(initiator_private, responder_ephemeral)
    assert dh == x25519(responder_private, ephemeral)
    out = kdf("session resumption", secret, lineage, dh, transcript, length=192)
    keys = r["keys"]
    assert [out[k : k + 32].hex() for k in range(0, 192, 32)] == [
        keys["lineage"],
        keys["root_key"],
        keys["chain_key"],
        keys["next_secret"],
        keys["responder_confirm"],
        keys["initiator_confirm"],
    ]
    assert confirm == mac(out[128:160], transcript)
    session_id = kdf("resumed session id", transcript, length=16)
    assert session_id.hex() == keys["session_id"]
    assert kdf("resumption ticket id", out[96:128], length=16).hex() == r["next_ticket_id"]
    # The responder's first packet in the resumed channel: key epoch 0, its
    # RESUME_ACK ephemeral as ratchet key, no DH step, AD = the transcript.
    first = r["first_packet"]
    plaintext, header = open_data(
        h(first["packet"]), session_id=session_id, epoch=0, chain_key=out[64:96], ad=transcript
    )
    assert header == (responder_ephemeral, 0, 0, 0, 0)
    assert decode_records(plaintext) == records_of(first["records"])
