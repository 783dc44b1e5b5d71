"""DID documents: parsing every supported key encoding, refusing malformed
ones with the JSON path, skipping foreign ones, and writing them back."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.crypto import primitives
from l2session.errors import DidResolutionError, InvalidDid, UnsupportedKeyType
from l2session.identity import base58
from l2session.identity.did import (
    Did,
    b64url_encode,
    did_key_from_ed25519,
    ed25519_public_to_x25519,
    encode_multibase_key,
)
from l2session.identity.document import (
    DID_CONTEXT_V1,
    MAX_SERVICES,
    MAX_VERIFICATION_METHODS,
    DidDocument,
    Service,
    VerificationMethod,
    did_key_document,
)

DID = "did:example:alice"
ED = primitives.ed25519_from_seed(b"\x01" * 32).public
ED2 = primitives.ed25519_from_seed(b"\x02" * 32).public
X = primitives.x25519_from_private(b"\x03" * 32).public


def _ed_multibase(key: bytes = ED) -> str:
    return encode_multibase_key(0xED, key)


def _x_multibase(key: bytes = X) -> str:
    return encode_multibase_key(0xEC, key)


def _method(fragment: str, type_: str, **material: object) -> dict[str, object]:
    return {"id": f"{DID}#{fragment}", "type": type_, "controller": DID, **material}


def _doc(*methods: dict[str, object], **extra: object) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": [DID_CONTEXT_V1, "https://w3id.org/security/multikey/v1"],
        "id": DID,
        "verificationMethod": list(methods),
    }
    doc.update(extra)
    return doc


SUPPORTED_ED = [
    _method("k", "Multikey", publicKeyMultibase=_ed_multibase()),
    _method("k", "Ed25519VerificationKey2020", publicKeyMultibase=_ed_multibase()),
    _method("k", "Ed25519VerificationKey2018", publicKeyBase58=base58.encode(ED)),
    _method(
        "k", "JsonWebKey2020", publicKeyJwk={"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(ED)}
    ),
]
SUPPORTED_X = [
    _method("x", "Multikey", publicKeyMultibase=_x_multibase()),
    _method("x", "X25519KeyAgreementKey2020", publicKeyMultibase=_x_multibase()),
    _method("x", "X25519KeyAgreementKey2019", publicKeyBase58=base58.encode(X)),
    _method(
        "x", "JsonWebKey2020", publicKeyJwk={"kty": "OKP", "crv": "X25519", "x": b64url_encode(X)}
    ),
]


@pytest.mark.parametrize("ed", SUPPORTED_ED, ids=lambda m: str(m["type"]))
@pytest.mark.parametrize("x", SUPPORTED_X, ids=lambda m: str(m["type"]))
def test_every_supported_encoding_parses_and_round_trips(
    ed: dict[str, object], x: dict[str, object]
) -> None:
    raw = _doc(
        ed,
        x,
        authentication=[f"{DID}#k"],
        assertionMethod=["#k"],
        keyAgreement=[f"{DID}#x"],
        service=[{"id": "#msg", "type": "L2Session", "serviceEndpoint": "udp://203.0.113.5:4433"}],
    )
    document = DidDocument.from_json(raw)
    assert document.id == Did.parse(DID)
    assert document.signing_key() == ED
    assert document.agreement_keys() == (X,)
    assert document.assertion_method == (f"{DID}#k",)  # relative reference resolved
    assert document.services == (Service(f"{DID}#msg", "L2Session", "udp://203.0.113.5:4433"),)
    out = document.to_json()
    assert out["verificationMethod"] == [ed, x]
    assert DidDocument.from_json(out) == document
    assert DidDocument.from_json(json.loads(json.dumps(out))) == document


def test_embedded_methods_are_used_and_written_back_embedded() -> None:
    embedded = _method("auth", "Multikey", publicKeyMultibase=_ed_multibase(ED2))
    raw = _doc(
        _method("k", "Multikey", publicKeyMultibase=_ed_multibase()),
        authentication=[embedded, "#k"],
        keyAgreement=[_method("x", "Multikey", publicKeyMultibase=_x_multibase())],
    )
    document = DidDocument.from_json(raw)
    assert document.signing_key() == ED2
    assert document.agreement_keys() == (X,)
    assert document.authentication == (f"{DID}#auth", f"{DID}#k")
    assert [m.id for m in document.embedded_methods] == [f"{DID}#auth", f"{DID}#x"]
    out = document.to_json()
    assert out["authentication"] == [embedded, f"{DID}#k"]
    assert DidDocument.from_json(out) == document


def test_unknown_types_are_skipped_and_explained() -> None:
    p256 = encode_multibase_key(0x1200, b"\x02" * 33)
    raw = _doc(
        _method("a", "EcdsaSecp256k1VerificationKey2019", publicKeyHex="02" * 33),
        _method("b", "Multikey", publicKeyMultibase=p256),
        _method(
            "c", "JsonWebKey2020", publicKeyJwk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}
        ),
        _method("x", "Multikey", publicKeyMultibase=_x_multibase()),
        authentication=["#a", "#b", "#c", "#x", "#missing"],
    )
    document = DidDocument.from_json(raw)
    assert [m.id for m in document.ignored_methods] == [f"{DID}#a", f"{DID}#b", f"{DID}#c"]
    with pytest.raises(DidResolutionError) as info:
        document.signing_key()
    message = str(info.value)
    assert "no usable Ed25519 authentication key" in message
    assert "type 'EcdsaSecp256k1VerificationKey2019' is not supported" in message
    assert "key type 0x1200 (p256-pub) is not supported" in message
    assert "JWK kty='EC'" in message
    assert f"{DID}#x is an X25519 key" in message
    assert f"{DID}#missing is not a verification method of this document" in message


def test_no_authentication_at_all() -> None:
    document = DidDocument.from_json(
        _doc(_method("k", "Multikey", publicKeyMultibase=_ed_multibase()))
    )
    with pytest.raises(DidResolutionError, match="lists no authentication method"):
        document.signing_key()
    assert document.agreement_keys() == ()


def test_minimal_document_without_context() -> None:
    document = DidDocument.from_json({"id": DID})
    assert document.context == ()
    assert document.to_json() == {"id": DID}


def test_context_maps_are_dropped_and_strings_kept() -> None:
    document = DidDocument.from_json({"id": DID, "@context": [DID_CONTEXT_V1, {"@base": DID}]})
    assert document.context == (DID_CONTEXT_V1,)
    assert DidDocument.from_json({"id": DID, "@context": DID_CONTEXT_V1}).context == (
        DID_CONTEXT_V1,
    )


def test_services_with_sets_or_maps_are_skipped() -> None:
    raw = {
        "id": DID,
        "service": [
            {"id": "#a", "type": ["A", "B"], "serviceEndpoint": "https://a.example"},
            {"id": "#b", "type": "B", "serviceEndpoint": {"uri": "https://b.example"}},
            {"id": "https://c.example/#c", "type": "C", "serviceEndpoint": "https://c.example"},
        ],
    }
    document = DidDocument.from_json(raw)
    assert document.services == (Service("https://c.example/#c", "C", "https://c.example"),)


# --------------------------------------------------------------------------
# Refusals name the JSON path

BAD_POINT = (2).to_bytes(32, "little")  # not on the curve
SMALL_ORDER = (1).to_bytes(32, "little")


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        ([], "", "must be a JSON object, got an array"),
        ("did:example:alice", "", "must be a JSON object, got a string"),
        ({}, "id", "missing"),
        ({"id": 5}, "id", "must be a string, got a number"),
        ({"id": "did:example:alice#frag"}, "id", "DID URL"),
        ({"id": "DID:example:alice"}, "id", "lowercase"),
        (
            {"id": DID, "verificationMethod": {}},
            "verificationMethod",
            "must be an array, got an object",
        ),
        ({"id": DID, "verificationMethod": ["x"]}, r"verificationMethod\[0\]", "must be an object"),
        ({"id": DID, "@context": 5}, "@context", "string or an array"),
        ({"id": DID, "authentication": "#k"}, "authentication", "must be an array"),
        ({"id": DID, "authentication": [5]}, r"authentication\[0\]", "must be a string"),
        ({"id": DID, "authentication": ["#"]}, r"authentication\[0\]", "empty fragment"),
        ({"id": DID, "authentication": ["key-1"]}, r"authentication\[0\]", "neither a DID URL"),
        ({"id": DID, "authentication": ["did:EX:a#k"]}, r"authentication\[0\]", "not a DID URL"),
        (
            {"id": DID, "service": [{"id": "#s", "type": "T"}]},
            r"service\[0\]\.serviceEndpoint",
            "got null",
        ),
        (
            {"id": DID, "service": [{"id": "#s", "type": "T", "serviceEndpoint": "a b"}]},
            r"service\[0\]\.serviceEndpoint",
            "whitespace",
        ),
        (
            {"id": DID, "service": [{"id": "#s", "type": "T", "serviceEndpoint": "x"}] * 2},
            "service",
            "duplicate id",
        ),
        ({"id": DID, "service": [5]}, r"service\[0\]", "must be an object"),
    ],
)
def test_document_level_refusals(raw: object, path: str, reason: str) -> None:
    with pytest.raises(DidResolutionError, match=f"{path}.*{reason}"):
        DidDocument.from_json(raw)


@pytest.mark.parametrize(
    ("method", "path", "reason"),
    [
        (
            _method("k", "Multikey"),
            r"\[0\]\.publicKeyMultibase",
            "missing: a Multikey carries its key there",
        ),
        (
            _method("k", "Ed25519VerificationKey2018", publicKeyMultibase=_ed_multibase()),
            r"\[0\]\.publicKeyBase58",
            r"found publicKeyMultibase instead",
        ),
        (
            _method("k", "Multikey", publicKeyMultibase=_ed_multibase(), publicKeyBase58="x"),
            r"\[0\]",
            "has both publicKeyBase58 and publicKeyMultibase",
        ),
        ({"type": "Multikey", "controller": DID}, r"\[0\]\.id", "must be a string, got null"),
        ({"id": "#k", "controller": DID}, r"\[0\]\.type", "got null"),
        ({"id": "#k", "type": "Multikey"}, r"\[0\]\.controller", "got null"),
        (
            {"id": "#k", "type": "Multikey", "controller": "alice"},
            r"\[0\]\.controller",
            "starts with 'did:'",
        ),
        (
            _method("k", "Ed25519VerificationKey2018", publicKeyBase58="0OIl"),
            r"\[0\]\.publicKeyBase58",
            "not in the base58btc alphabet",
        ),
        (
            _method("k", "Ed25519VerificationKey2018", publicKeyBase58=base58.encode(ED[:31])),
            r"\[0\]\.publicKeyBase58",
            "must be 32 bytes, got 31",
        ),
        (
            _method("k", "Ed25519VerificationKey2018", publicKeyBase58="2" * 200),
            r"\[0\]\.publicKeyBase58",
            "at most 44",
        ),
        (
            _method("k", "Ed25519VerificationKey2018", publicKeyBase58=base58.encode(BAD_POINT)),
            r"\[0\]\.publicKeyBase58",
            "not a point",
        ),
        (
            _method("k", "Multikey", publicKeyMultibase=_ed_multibase(SMALL_ORDER)),
            r"\[0\]\.publicKeyMultibase",
            "small-order",
        ),
        (
            _method("x", "X25519KeyAgreementKey2019", publicKeyBase58=base58.encode(X + b"\0")),
            r"\[0\]\.publicKeyBase58",
            "X25519 public key must be 32 bytes, got 33",
        ),
        (
            _method("k", "Multikey", publicKeyMultibase="u" + b64url_encode(ED)),
            r"\[0\]\.publicKeyMultibase",
            r"prefix must be 'z'",
        ),
        (
            _method("k", "Multikey", publicKeyMultibase="z" + base58.encode(b"\xed\x81\x00" + ED)),
            r"\[0\]\.publicKeyMultibase",
            "not minimal",
        ),
        (
            _method("k", "Multikey", publicKeyMultibase=encode_multibase_key(0x1300, ED)),
            r"\[0\]\.publicKeyMultibase",
            "private key",
        ),
        (
            _method("k", "Ed25519VerificationKey2020", publicKeyMultibase=_x_multibase()),
            r"\[0\]\.publicKeyMultibase",
            r"must hold 0xed \(ed25519-pub\), got 0xec \(x25519-pub\)",
        ),
        (
            _method(
                "k",
                "X25519KeyAgreementKey2020",
                publicKeyMultibase=encode_multibase_key(0x1200, b"\2" * 33),
            ),
            r"\[0\]\.publicKeyMultibase",
            r"got 0x1200 \(p256-pub\)",
        ),
        (
            _method("k", "JsonWebKey2020", publicKeyJwk="x"),
            r"\[0\]\.publicKeyJwk",
            "must be an object",
        ),
        (
            _method(
                "k",
                "JsonWebKey2020",
                publicKeyJwk={"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(ED), "d": "AAAA"},
            ),
            r"\[0\]\.publicKeyJwk",
            r"private key \('d'\)",
        ),
        (
            _method("k", "JsonWebKey2020", publicKeyJwk={"crv": "Ed25519"}),
            r"\[0\]\.publicKeyJwk\.kty",
            "got null",
        ),
        (
            _method("k", "JsonWebKey2020", publicKeyJwk={"kty": "OKP", "crv": "Ed25519"}),
            r"\[0\]\.publicKeyJwk\.x",
            "got null",
        ),
        (
            _method(
                "k",
                "JsonWebKey2020",
                publicKeyJwk={"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(ED) + "="},
            ),
            r"\[0\]\.publicKeyJwk\.x",
            "no '='",
        ),
        (
            _method(
                "k",
                "JsonWebKey2020",
                publicKeyJwk={"kty": "OKP", "crv": "X25519", "x": b64url_encode(X[:16])},
            ),
            r"\[0\]\.publicKeyJwk",
            "must be 32 bytes, got 16",
        ),
    ],
)
def test_method_refusals_name_the_path(method: dict[str, object], path: str, reason: str) -> None:
    with pytest.raises(DidResolutionError, match=f"verificationMethod{path}: .*{reason}"):
        DidDocument.from_json(_doc(method))


def test_duplicate_method_ids_are_refused() -> None:
    method = _method("k", "Multikey", publicKeyMultibase=_ed_multibase())
    with pytest.raises(DidResolutionError, match=r"verificationMethod\[1\]\.id: duplicate"):
        DidDocument.from_json(_doc(method, {**method, "id": "#k"}))
    with pytest.raises(DidResolutionError, match=r"authentication\[0\]\.id: duplicate"):
        DidDocument.from_json(_doc(method, authentication=[method]))


def test_input_is_bounded() -> None:
    many = [
        _method(f"k{i}", "Multikey", publicKeyMultibase=_ed_multibase())
        for i in range(MAX_VERIFICATION_METHODS + 1)
    ]
    assert DidDocument.from_json(_doc(*many[:MAX_VERIFICATION_METHODS]))
    with pytest.raises(
        DidResolutionError, match="verificationMethod: has 65 entries; the limit is 64"
    ):
        DidDocument.from_json(_doc(*many))
    with pytest.raises(
        DidResolutionError, match=r"authentication\[24\]: more than 64 verification methods"
    ):
        DidDocument.from_json(_doc(*many[:40], authentication=many[40:]))
    services = [
        {"id": f"#s{i}", "type": "T", "serviceEndpoint": "x"} for i in range(MAX_SERVICES + 1)
    ]
    with pytest.raises(DidResolutionError, match="service: has 65 entries"):
        DidDocument.from_json({"id": DID, "service": services})
    with pytest.raises(DidResolutionError, match="limit is 2048"):
        DidDocument.from_json(
            {"id": DID, "service": [{"id": "#" + "a" * 3000, "type": "T", "serviceEndpoint": "x"}]}
        )


# --------------------------------------------------------------------------
# Values


def test_values_validate_on_construction() -> None:
    did = Did.parse(DID)
    with pytest.raises(DidResolutionError, match="small-order"):
        VerificationMethod(f"{DID}#k", "Multikey", did, "Ed25519", SMALL_ORDER)
    with pytest.raises(DidResolutionError, match="cannot hold an X25519 key"):
        VerificationMethod(f"{DID}#k", "Ed25519VerificationKey2018", did, "X25519", X)
    with pytest.raises(DidResolutionError, match="not one l2session can represent"):
        VerificationMethod(f"{DID}#k", "RsaVerificationKey2018", did, "Ed25519", ED)
    with pytest.raises(DidResolutionError, match="not a DID URL"):
        VerificationMethod("#k", "Multikey", did, "Ed25519", ED)
    with pytest.raises(DidResolutionError, match="must be 32 bytes"):
        VerificationMethod(f"{DID}#k", "Multikey", did, "X25519", b"\0" * 31)
    with pytest.raises(DidResolutionError, match="whitespace"):
        Service(f"{DID}#s", "T", "two words")
    method = VerificationMethod(f"{DID}#k", "Multikey", did, "Ed25519", ED)
    with pytest.raises(DidResolutionError, match="duplicate id"):
        DidDocument(did, verification_methods=(method, method))
    with pytest.raises(DidResolutionError, match=r"authentication\[0\]"):
        DidDocument(did, verification_methods=(method,), authentication=("#k",))
    document = DidDocument(did, verification_methods=(method,), authentication=(method.id,))
    assert document.signing_key() == ED
    assert document.method("#k") == method


# --------------------------------------------------------------------------
# did:key documents


def test_did_key_document_errors_are_did_errors() -> None:
    with pytest.raises(InvalidDid):
        did_key_document("did:key:z" + base58.encode(b"\xed\x01" + ED[:31]))
    with pytest.raises(UnsupportedKeyType):
        did_key_document("did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F")
    with pytest.raises(InvalidDid):
        did_key_document("did:web:example.com")


def test_did_key_document_shape() -> None:
    did = did_key_from_ed25519(ED)
    document = did_key_document(did)
    assert document == did_key_document(str(did))
    assert document.signing_key() == ED
    assert document.agreement_keys() == (ed25519_public_to_x25519(ED),)
    assert (
        document.capability_invocation == document.capability_delegation == document.authentication
    )


# --------------------------------------------------------------------------
# Hostile JSON

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from([DID, "#k", "#x", "Multikey", "JsonWebKey2020", "Ed25519VerificationKey2018",
                     "X25519KeyAgreementKey2019", "OKP", "Ed25519", "X25519", _ed_multibase(),
                     _x_multibase(), base58.encode(ED), b64url_encode(X)]),
)  # fmt: skip
_keys = st.sampled_from(
    ["id", "type", "controller", "publicKeyMultibase", "publicKeyBase58", "publicKeyJwk",
     "kty", "crv", "x", "d", "authentication", "keyAgreement", "verificationMethod",
     "service", "serviceEndpoint", "@context", "assertionMethod"]
) | st.text(max_size=8)  # fmt: skip
json_values = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_raises_only_resolution_errors(value: object) -> None:
    with contextlib.suppress(DidResolutionError):
        DidDocument.from_json(value)


@settings(max_examples=150)
@given(st.dictionaries(_keys, json_values, max_size=6), st.data())
def test_arbitrary_documents_with_an_id_raise_only_resolution_errors(
    body: dict[str, object], data: st.DataObject
) -> None:
    body["id"] = DID
    if data.draw(st.booleans()):
        body["verificationMethod"] = data.draw(
            st.lists(st.dictionaries(_keys, json_values), max_size=3)
        )
    try:
        document = DidDocument.from_json(body)
    except DidResolutionError:
        return
    assert DidDocument.from_json(document.to_json()) == document
    with contextlib.suppress(DidResolutionError):
        document.signing_key()


@settings(max_examples=200)
@given(st.data())
def test_mutated_valid_documents_raise_only_resolution_errors(data: st.DataObject) -> None:
    raw = _doc(
        *copy.deepcopy(SUPPORTED_ED[:1] + SUPPORTED_X[2:3]),
        authentication=["#k"],
        keyAgreement=["#x"],
    )
    target = data.draw(st.sampled_from(raw["verificationMethod"]))
    target[data.draw(_keys)] = data.draw(json_values)
    with contextlib.suppress(DidResolutionError):
        DidDocument.from_json(raw)
