"""The published did:key test vectors (W3C CCG did-method-key,
``test-vectors/ed25519-x25519.json``) reproduced by our implementation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from l2session.crypto import primitives
from l2session.identity import base58
from l2session.identity.did import (
    Did,
    b64url_decode,
    did_key_from_ed25519,
    ed25519_from_did_key,
    ed25519_public_to_x25519,
    x25519_did_key_fragment,
)
from l2session.identity.document import DidDocument, did_key_document
from l2session.identity.resolver import default_resolver, resolve_signing_key

VECTORS_FILE = Path(__file__).parent.parent / "vectors" / "did_key_w3c.json"
DATA: dict[str, Any] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DATA["vectors"]
JWK_VECTORS: list[dict[str, Any]] = DATA["jwk_vectors"]


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [f"seed-{v['seed'][-2:]}" for v in vectors]


def test_vector_file_names_its_source() -> None:
    assert "w3c-ccg/did-method-key" in DATA["source"]
    assert "test-vectors/ed25519-x25519.json" in DATA["source"]
    assert [v["seed"] for v in VECTORS] == [f"{i:064x}" for i in range(5)]


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_did_and_public_key_from_seed(vector: dict[str, Any]) -> None:
    signing = primitives.ed25519_from_seed(bytes.fromhex(vector["seed"]))
    assert base58.encode(signing.public) == vector["publicKeyBase58"]
    did = did_key_from_ed25519(signing.public)
    assert str(did) == vector["did"]
    assert did == Did.parse(vector["did"])
    assert ed25519_from_did_key(vector["did"]) == signing.public


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_x25519_key_agreement_key(vector: dict[str, Any]) -> None:
    seed = bytes.fromhex(vector["seed"])
    public = primitives.ed25519_from_seed(seed).public
    x25519 = ed25519_public_to_x25519(public)
    agreement = vector["keyAgreement"]
    assert base58.encode(x25519) == agreement["publicKeyBase58"]
    assert "#" + x25519_did_key_fragment(x25519) == agreement["id"]
    # The published X25519 private key is the RFC 8032 clamped scalar of the seed ...
    scalar = bytearray(hashlib.sha512(seed).digest()[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    assert base58.decode(agreement["privateKeyBase58"]) == bytes(scalar)
    # ... and its X25519 public key is the birationally mapped Ed25519 key.
    assert primitives.x25519_from_private(bytes(scalar)).public == x25519


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_did_key_document_is_the_published_document(vector: dict[str, Any]) -> None:
    document = did_key_document(vector["did"])
    assert document.to_json() == vector["didDocument"]
    assert DidDocument.from_json(vector["didDocument"]) == document
    public = base58.decode(vector["publicKeyBase58"])
    assert document.signing_key() == public
    assert document.agreement_keys() == (base58.decode(vector["keyAgreement"]["publicKeyBase58"]),)
    assert resolve_signing_key(default_resolver(), vector["did"]) == public


@pytest.mark.parametrize("vector", JWK_VECTORS, ids=_ids(JWK_VECTORS))
def test_published_json_web_key_document(vector: dict[str, Any]) -> None:
    public = primitives.ed25519_from_seed(bytes.fromhex(vector["seed"])).public
    assert str(did_key_from_ed25519(public)) == vector["did"]
    assert b64url_decode(vector["publicKeyJwk"]["x"]) == public
    document = DidDocument.from_json(vector["didDocument"])
    assert document.signing_key() == public
    x25519 = ed25519_public_to_x25519(public)
    assert document.agreement_keys() == (x25519,)
    assert vector["keyAgreement"]["id"].endswith("#" + x25519_did_key_fragment(x25519))
    assert document.to_json() == vector["didDocument"]
