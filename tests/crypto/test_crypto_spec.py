"""docs/CRYPTO.md, re-implemented from the text and checked against the vectors.

Nothing from l2session is imported here: the messages are parsed by the
offsets the document gives, and every key, signature, MAC and ciphertext is
recomputed with `cryptography` and `blake3` directly.  If the document and
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

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def kdf(label: str, *parts: bytes, length: int = 32) -> bytes:
    material = b"".join(u32(len(p)) + p for p in parts)
    return blake3.blake3(material, derive_key_context="l2session v1 " + label).digest(length)


def mac(key: bytes, data: bytes) -> bytes:
    return blake3.blake3(data, key=key).digest()


class Transcript:
    def __init__(self) -> None:
        self.h = blake3.blake3(b"l2session v1 pqxdh transcript")

    def absorb(self, item: bytes) -> None:
        self.h.update(u32(len(item)) + item)

    def digest(self) -> bytes:
        return self.h.digest()


def x25519(private_hex: str, public: bytes) -> bytes:
    private = X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex))
    return private.exchange(X25519PublicKey.from_public_bytes(public))


def x25519_public(private_hex: str) -> bytes:
    return (
        X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex))
        .public_key()
        .public_bytes_raw()
    )


class Cursor:
    """Reads fields at the offsets docs/CRYPTO.md gives."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        assert len(out) == n
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack(">Q", self.take(8))[0]
        return value

    def str16(self) -> str:
        return self.take(self.u16()).decode()

    def end(self) -> None:
        assert self.pos == len(self.data)


def parse_signed_set(c: Cursor) -> dict[str, Any]:
    start = c.pos
    record = {
        "version": c.u8(),
        "owner": c.str16(),
        "ik": c.take(32),
        "id": c.u32(),
        "spk": c.take(32),
        "pqspk": c.take(1184),
        "created": c.u64(),
        "expires": c.u64(),
    }
    record["body"] = c.data[start : c.pos]
    record["signature"] = c.take(64)
    record["bytes"] = c.data[start : c.pos]
    return record


def parse_one_time(c: Cursor) -> dict[str, Any]:
    start = c.pos
    record = {"version": c.u8(), "owner": c.str16(), "id": c.u32(), "opk": c.take(32)}
    record["body"] = c.data[start : c.pos]
    record["signature"] = c.take(64)
    record["bytes"] = c.data[start : c.pos]
    return record


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    return load("pqxdh_kat.json")


def test_kdf_vector_follows_the_documented_construction() -> None:
    v = load("kdf_kat.json")
    a, b = bytes.fromhex(v["inputs"]["a"]), bytes.fromhex(v["inputs"]["b"])
    assert set(v["kdf"]) == {
        "pqxdh stage1",
        "pqxdh master",
        "session id",
        "ratchet root",
        "ratchet chain",
        "ratchet header",
        "ratchet pq reseed",
        "identity keyfile",
    }
    for label, outputs in v["kdf"].items():
        assert kdf(label, a, b).hex() == outputs["a_b_32"]
        assert kdf(label, a, length=100).hex() == outputs["a_100"]
        assert kdf(label).hex() == outputs["empty_32"]
    step = kdf("ratchet chain", a, length=76)
    assert step[:32].hex() == v["chain_step_a"]["next_chain_key"]
    assert step[32:64].hex() == v["chain_step_a"]["message_key"]
    assert step[64:].hex() == v["chain_step_a"]["nonce"]
    assert mac(a, b).hex() == v["mac_a_b"]
    t = Transcript()
    for item in (b"first", b"", bytes(300)):
        t.absorb(item)
    assert t.digest().hex() == v["transcript_first_empty_300zero"]
    stream = blake3.blake3(b"l2session seeded random v1", key=blake3.blake3(b"abc").digest())
    assert stream.digest(64).hex() == v["seeded_random"]["first_64"]


def test_handshake_vector_follows_the_document(vector: dict[str, Any]) -> None:
    s = vector["secrets"]
    msgs = {k: bytes.fromhex(h) for k, h in vector["handshake"].items()}
    initiator_key = Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(vector["initiator"]["signing_public"])
    )
    responder_key = Ed25519PublicKey.from_public_bytes(
        bytes.fromhex(vector["responder"]["signing_public"])
    )

    # §3: the bundle and its records.
    c = Cursor(bytes.fromhex(vector["responder"]["bundle"]))
    assert c.u8() == 1
    assert c.str16() == vector["responder"]["did"]
    assert c.take(32) == bytes.fromhex(vector["responder"]["signing_public"])
    signed = parse_signed_set(c)
    one_times = [parse_one_time(c) for _ in range(c.u16())]
    c.end()
    responder_key.verify(signed["signature"], b"l2session v1 signed prekeys\x00" + signed["body"])
    assert signed["ik"] == x25519_public(s["responder_identity_dh_private"])
    assert signed["spk"] == x25519_public(s["responder_signed_prekey_private"])
    pq_prekey = MLKEM768PrivateKey.from_seed_bytes(bytes.fromhex(s["responder_pq_prekey_seed"]))
    assert signed["pqspk"] == pq_prekey.public_key().public_bytes_raw()
    used = next(r for r in one_times if r["id"] == vector["one_time_prekey_id"])
    responder_key.verify(used["signature"], b"l2session v1 one-time prekey\x00" + used["body"])
    assert used["opk"] == x25519_public(s["responder_one_time_prekey_private"])

    # §4.1 INIT.
    c = Cursor(msgs["init"])
    assert (c.u8(), c.u8()) == (1, 0x01)
    assert c.str16() == vector["initiator"]["did"]
    assert c.str16() == vector["responder"]["did"]
    ik_a, ek_a, ekem_a = c.take(32), c.take(32), c.take(1184)
    assert c.u32() == signed["id"]
    assert (c.u8(), c.u32()) == (1, used["id"])
    ct1 = c.take(1088)
    assert c.u64() == int(vector["now"] * 1000)
    body_end = c.pos
    sig_a = c.take(64)
    c.end()
    assert ik_a == x25519_public(s["initiator_identity_dh_private"])
    assert ek_a == x25519_public(s["initiator_ephemeral_dh_private"])
    ekem_private = MLKEM768PrivateKey.from_seed_bytes(
        bytes.fromhex(s["initiator_ephemeral_kem_seed"])
    )
    assert ekem_a == ekem_private.public_key().public_bytes_raw()

    t = Transcript()
    t.absorb(bytes.fromhex(vector["initiator"]["signing_public"]))
    t.absorb(bytes.fromhex(vector["responder"]["signing_public"]))
    t.absorb(signed["bytes"])
    t.absorb(used["bytes"])
    t.absorb(msgs["init"][:body_end])
    initiator_key.verify(sig_a, b"l2session v1 pqxdh initiator\x00" + t.digest())
    t.absorb(sig_a)
    th1 = t.digest()
    assert kdf("session id", th1, length=16).hex() == vector["session_id"]

    dh1 = x25519(s["initiator_identity_dh_private"], signed["spk"])
    assert dh1 == x25519(s["responder_signed_prekey_private"], ik_a)
    dh2 = x25519(s["initiator_ephemeral_dh_private"], signed["ik"])
    assert dh2 == x25519(s["responder_identity_dh_private"], ek_a)
    dh3 = x25519(s["initiator_ephemeral_dh_private"], signed["spk"])
    dh4 = x25519(s["initiator_ephemeral_dh_private"], used["opk"])
    assert dh4 == x25519(s["responder_one_time_prekey_private"], ek_a)
    ss1 = pq_prekey.decapsulate(ct1)
    s1 = kdf("pqxdh stage1", dh1, dh2, dh3, dh4, ss1, th1)

    # §4.2 RESPONSE.
    c = Cursor(msgs["response"])
    assert (c.u8(), c.u8()) == (1, 0x02)
    ek_b, ct2 = c.take(32), c.take(1088)
    sig_b, confirm_b = c.take(64), c.take(32)
    c.end()
    assert ek_b == x25519_public(s["responder_ephemeral_dh_private"])
    t.absorb(msgs["response"][: 2 + 32 + 1088])
    responder_key.verify(sig_b, b"l2session v1 pqxdh responder\x00" + t.digest())
    t.absorb(sig_b)
    th2 = t.digest()
    dh5 = x25519(s["responder_ephemeral_dh_private"], ek_a)
    assert dh5 == x25519(s["initiator_ephemeral_dh_private"], ek_b)
    ss2 = ekem_private.decapsulate(ct2)
    master = kdf("pqxdh master", s1, dh5, ss2, th2, length=160)
    root, chain, resumption, kc_r, kc_i = (master[i : i + 32] for i in range(0, 160, 32))
    assert confirm_b == mac(kc_r, th2)
    t.absorb(confirm_b)

    # §4.3 FINISH and §4.4 outputs.
    assert msgs["finish"] == b"\x01\x03" + mac(kc_i, t.digest())
    t.absorb(msgs["finish"][2:])
    handshake_hash = t.digest()
    assert handshake_hash.hex() == vector["handshake_hash"]
    assert root.hex() == vector["root_key"]
    assert resumption.hex() == vector["resumption_secret"]

    # §5: the responder's first message travels on `chain` under EK_B.
    first = bytes.fromhex(vector["conversation"][0]["message"])
    header = first[:52]
    dh, pn, n, seq, epoch = struct.unpack(">32sIIQI", header)
    assert (dh, pn, n, seq, epoch) == (ek_b, 0, 0, 0, 0)
    assert first[52:68] == mac(kdf("ratchet header", chain), header)[:16]
    step = kdf("ratchet chain", chain, length=76)
    plaintext = ChaCha20Poly1305(step[32:64]).decrypt(
        step[64:], first[68:], handshake_hash + first[:68]
    )
    assert plaintext.hex() == vector["conversation"][0]["plaintext"]

    # §5: the initiator's first message is a DH step from `root` with a new key.
    second = bytes.fromhex(vector["conversation"][1]["message"])
    header = second[:52]
    new_key, pn, n, seq, epoch = struct.unpack(">32sIIQI", header)
    assert (pn, n, seq, epoch) == (0, 0, 0, 0)
    step_out = kdf(
        "ratchet root", root, x25519(s["responder_ephemeral_dh_private"], new_key), length=64
    )
    assert second[52:68] == mac(kdf("ratchet header", step_out[32:]), header)[:16]
    step = kdf("ratchet chain", step_out[32:], length=76)
    plaintext = ChaCha20Poly1305(step[32:64]).decrypt(
        step[64:], second[68:], handshake_hash + second[:68]
    )
    assert plaintext.hex() == vector["conversation"][1]["plaintext"]


def test_conversation_headers_follow_the_document(vector: dict[str, Any]) -> None:
    """Counters and epochs in every header are what §5 and §5.1 prescribe."""
    headers = [
        struct.unpack(">32sIIQI", bytes.fromhex(m["message"])[:52]) for m in vector["conversation"]
    ]
    by_sender: dict[str, list[tuple[bytes, int, int, int, int]]] = {}
    for message, header in zip(vector["conversation"], headers, strict=True):
        by_sender.setdefault(message["sender"], []).append(header)
    for sent in by_sender.values():
        assert [h[3] for h in sent] == list(range(len(sent)))  # seq counts every packet
    initiator = by_sender["initiator"]
    # Three messages in one chain: same key, N = 0, 1, 2.
    assert len({h[0] for h in initiator[:3]}) == 1
    assert [h[2] for h in initiator[:3]] == [0, 1, 2]
    # After the re-seed the initiator's next chain carries epoch 1 and PN = 3.
    assert initiator[3][4] == 1
    assert initiator[3][1] == 3
    assert vector["final_epochs"] == {"initiator": 1, "responder": 1}
