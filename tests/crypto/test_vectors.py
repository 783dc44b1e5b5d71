"""The checked-in known-answer vectors are reproduced byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from l2session.crypto.handshake_messages import KIND_EPHEMERAL, HandshakeInit
from l2session.crypto.rng import SeededRandom
from l2session.testing.vectors import kdf_vector, pqxdh_vector
from l2session.testing.vectors_ext import extensions_vector

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


def test_pqxdh_vector_is_reproduced_exactly() -> None:
    expected = load("pqxdh_kat.json")
    assert pqxdh_vector(expected["seed"]) == expected


def test_kdf_vector_is_reproduced_exactly() -> None:
    assert kdf_vector() == load("kdf_kat.json")


def test_another_seed_changes_every_byte() -> None:
    expected = load("pqxdh_kat.json")
    other = pqxdh_vector("a different seed")
    assert other["handshake"]["init"] != expected["handshake"]["init"]
    assert other["root_key"] != expected["root_key"]
    assert other["conversation"][0]["message"] != expected["conversation"][0]["message"]


def test_seeded_random_is_a_stream() -> None:
    """Reading 10 + 22 bytes equals reading 32: the stream has no framing."""
    one, two = SeededRandom("s"), SeededRandom("s")
    assert one.random_bytes(10) + one.random_bytes(22) == two.random_bytes(32)
    assert SeededRandom(7).random_bytes(16) != SeededRandom(8).random_bytes(16)


def test_extensions_vector_is_reproduced_exactly() -> None:
    expected = load("extensions_kat.json")
    assert extensions_vector(expected["seed"]) == expected


def test_extensions_vector_init_carries_the_kind_byte() -> None:
    vector = load("extensions_kat.json")["ephemeral_handshake"]
    init = bytes.fromhex(vector["init"])
    assert init[vector["kind_byte_offset"]] == KIND_EPHEMERAL
    assert len(init) - vector["kind_byte_offset"] == 1 + 64  # kind, then the signature
    assert HandshakeInit.decode(init).session_kind == KIND_EPHEMERAL


def test_pqxdh_vector_secrets_follow_the_documented_draw_order() -> None:
    """docs/CRYPTO.md §8: replaying SeededRandom(seed) in the documented
    order gives every secret and public key of pqxdh_kat.json."""
    from l2session.crypto import primitives

    vector = load("pqxdh_kat.json")
    rng = SeededRandom(vector["seed"])
    draw = rng.random_bytes
    initiator_seed, initiator_ik = draw(32), draw(32)
    responder_seed, responder_ik = draw(32), draw(32)
    signed_prekey, pq_prekey = draw(32), draw(64)
    one_time = [draw(32) for _ in range(3)]
    pick = int.from_bytes(draw(8), "big") % 3
    ek_a, ekem_a, _m1, ek_b = draw(32), draw(64), draw(32), draw(32)
    secrets = vector["secrets"]
    assert (
        primitives.ed25519_from_seed(initiator_seed).public.hex()
        == (vector["initiator"]["signing_public"])
    )
    assert (
        primitives.ed25519_from_seed(responder_seed).public.hex()
        == (vector["responder"]["signing_public"])
    )
    assert initiator_ik.hex() == secrets["initiator_identity_dh_private"]
    assert responder_ik.hex() == secrets["responder_identity_dh_private"]
    assert signed_prekey.hex() == secrets["responder_signed_prekey_private"]
    assert pq_prekey.hex() == secrets["responder_pq_prekey_seed"]
    assert one_time[pick].hex() == secrets["responder_one_time_prekey_private"]
    assert vector["one_time_prekey_id"] == 2 + pick  # the signed set is id 1
    assert ek_a.hex() == secrets["initiator_ephemeral_dh_private"]
    assert ekem_a.hex() == secrets["initiator_ephemeral_kem_seed"]
    assert ek_b.hex() == secrets["responder_ephemeral_dh_private"]
