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
