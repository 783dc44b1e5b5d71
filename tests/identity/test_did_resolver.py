"""Resolver registry routing and guarantees, and the MockResolver test double."""

from __future__ import annotations

import re

import pytest

from l2session.crypto import primitives
from l2session.errors import (
    ConfigError,
    DidNotFound,
    DidResolutionError,
    InvalidDid,
    UnsupportedDidMethod,
    UnsupportedKeyType,
)
from l2session.identity.did import Did, did_key_from_ed25519, ed25519_public_to_x25519
from l2session.identity.document import DidDocument, Service, did_key_document
from l2session.identity.resolver import (
    DidResolver,
    KeyDidResolver,
    ResolverRegistry,
    checked_resolve,
    default_resolver,
    resolve_signing_key,
)
from l2session.testing.resolver import MockResolver

ED = primitives.ed25519_from_seed(b"\x11" * 32).public
ED2 = primitives.ed25519_from_seed(b"\x12" * 32).public
X = primitives.x25519_from_private(b"\x13" * 32).public
DID_KEY = did_key_from_ed25519(ED)
ALICE = Did.parse("did:web:alice.example")


class _Static:
    """A resolver that returns one fixed document."""

    def __init__(self, document: object) -> None:
        self.document = document
        self.asked: list[Did] = []

    def resolve(self, did: Did) -> DidDocument:
        self.asked.append(did)
        return self.document  # type: ignore[return-value]


class _Broken:
    def resolve(self, did: Did) -> DidDocument:
        raise KeyError("cache miss")


def _alice_document() -> DidDocument:
    mock = MockResolver()
    return mock.add(ALICE, ED)


def test_protocol_is_runtime_checkable() -> None:
    assert isinstance(KeyDidResolver(), DidResolver)
    assert isinstance(MockResolver(), DidResolver)
    assert isinstance(default_resolver(), DidResolver)
    assert not isinstance(object(), DidResolver)


def test_default_resolver_resolves_did_key_offline() -> None:
    registry = default_resolver()
    assert registry.methods == ("key",)
    assert registry.resolve(DID_KEY) == did_key_document(DID_KEY)
    assert registry.resolve(str(DID_KEY)) == did_key_document(DID_KEY)
    assert resolve_signing_key(registry, DID_KEY) == ED


def test_key_resolver_refuses_other_methods_and_bad_keys() -> None:
    with pytest.raises(UnsupportedDidMethod, match="did:key only"):
        KeyDidResolver().resolve(ALICE)
    with pytest.raises(UnsupportedKeyType, match="x25519-pub"):
        default_resolver().resolve("did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F")


def test_registry_routes_by_method() -> None:
    web = _Static(_alice_document())
    registry = default_resolver()
    registry.register("web", web)
    assert registry.methods == ("key", "web")
    assert registry.resolve("did:web:alice.example").signing_key() == ED
    assert web.asked == [ALICE]
    assert registry.resolve(DID_KEY).signing_key() == ED
    assert web.asked == [ALICE]


def test_unknown_method_lists_the_registered_ones() -> None:
    registry = default_resolver()
    registry.register("web", _Static(_alice_document()))
    with pytest.raises(
        UnsupportedDidMethod,
        match=re.escape(
            "no resolver for did:plc (needed for did:plc:abc); registered methods: did:key, did:web"
        ),
    ):
        registry.resolve("did:plc:abc")
    with pytest.raises(UnsupportedDidMethod, match="registered methods: none"):
        ResolverRegistry().resolve(DID_KEY)


def test_invalid_did_text_is_invalid_did() -> None:
    with pytest.raises(InvalidDid):
        default_resolver().resolve("did:key:z6Mk#frag")


def test_registration_mistakes_are_config_errors() -> None:
    registry = default_resolver()
    with pytest.raises(ConfigError, match="already registered; pass replace=True"):
        registry.register("key", KeyDidResolver())
    registry.register("key", KeyDidResolver(), replace=True)
    with pytest.raises(ConfigError, match="not a DID method name"):
        registry.register("Web", KeyDidResolver())
    with pytest.raises(ConfigError, match="no resolve"):
        registry.register("web", object())  # type: ignore[arg-type]


def test_foreign_exceptions_are_wrapped() -> None:
    registry = ResolverRegistry({"web": _Broken()})
    with pytest.raises(
        DidResolutionError,
        match=re.escape("resolver _Broken failed on did:web:alice.example: KeyError"),
    ) as info:
        registry.resolve(ALICE)
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(DidResolutionError, match="KeyError"):
        resolve_signing_key(_Broken(), ALICE)


def test_library_errors_pass_through_unwrapped() -> None:
    mock = MockResolver()
    mock.fail_with(ALICE, DidNotFound("gone"))
    with pytest.raises(DidNotFound, match="gone"):
        ResolverRegistry({"web": mock}).resolve(ALICE)


def test_a_document_for_another_did_is_refused() -> None:
    other = MockResolver().add("did:web:mallory.example", ED)
    registry = ResolverRegistry({"web": _Static(other)})
    with pytest.raises(
        DidResolutionError,
        match=re.escape(
            "returned the document of did:web:mallory.example when asked for did:web:alice.example"
        ),
    ):
        registry.resolve(ALICE)
    with pytest.raises(DidResolutionError, match="returned the document of"):
        resolve_signing_key(_Static(other), ALICE)


def test_a_non_document_is_refused() -> None:
    with pytest.raises(DidResolutionError, match=r"returned dict .* not a DidDocument"):
        checked_resolve(_Static({"id": str(ALICE)}), ALICE)


def test_resolve_signing_key_reports_documents_without_one() -> None:
    document = DidDocument(ALICE)
    with pytest.raises(DidResolutionError, match="lists no authentication method"):
        resolve_signing_key(_Static(document), ALICE)


# --------------------------------------------------------------------------
# MockResolver


def test_mock_add_builds_a_multikey_document() -> None:
    mock = MockResolver()
    document = mock.add(
        ALICE,
        ED,
        X,
        services=[
            ("L2Session", "udp://198.51.100.7:4433"),
            Service("https://x.example", "T", "https://x.example"),
        ],
    )
    assert mock.resolve(ALICE) is document
    assert document.signing_key() == ED
    assert document.agreement_keys() == (X,)
    assert [m.type for m in document.verification_methods] == ["Multikey", "Multikey"]
    assert document.services[0] == Service(
        f"{ALICE}#service-1", "L2Session", "udp://198.51.100.7:4433"
    )
    assert DidDocument.from_json(document.to_json()) == document
    assert resolve_signing_key(mock, "did:web:alice.example") == ED


def test_mock_counts_calls_and_reports_unknown_dids() -> None:
    mock = MockResolver()
    mock.add(ALICE, ED)
    mock.resolve(ALICE)
    with pytest.raises(DidNotFound, match=re.escape("no document for did:web:bob.example")):
        mock.resolve(Did.parse("did:web:bob.example"))
    assert mock.call_count == 2
    assert mock.calls == [ALICE, Did.parse("did:web:bob.example")]


def test_mock_resolves_real_did_keys_without_setup() -> None:
    mock = MockResolver()
    assert mock.resolve(DID_KEY) == did_key_document(DID_KEY)
    assert resolve_signing_key(mock, DID_KEY) == ED
    # An explicitly added document wins (for inconsistent-document tests).
    mock.add(DID_KEY, ED2)
    assert resolve_signing_key(mock, DID_KEY) == ED2
    offline = MockResolver(resolve_did_key=False)
    with pytest.raises(DidNotFound):
        offline.resolve(DID_KEY)


def test_mock_add_document_and_remove() -> None:
    mock = MockResolver()
    document = did_key_document(DID_KEY)
    other = Did.parse("did:example:copy")
    mock.add_document(_alice_document())
    mock.remove("did:web:alice.example")
    with pytest.raises(DidNotFound):
        mock.resolve(ALICE)
    with pytest.raises(DidNotFound, match="to remove"):
        mock.remove(ALICE)
    mock.add_document(document)
    assert mock.resolve(DID_KEY) is document
    with pytest.raises(DidNotFound):
        mock.resolve(other)


def test_mock_fail_with_once_then_recover() -> None:
    mock = MockResolver()
    mock.add(ALICE, ED)
    mock.fail_with(ALICE, DidResolutionError("timeout"), times=2)
    for _ in range(2):
        with pytest.raises(DidResolutionError, match="timeout"):
            mock.resolve(ALICE)
    assert mock.resolve(ALICE).signing_key() == ED
    assert mock.call_count == 3


def test_mock_fail_with_until_cleared() -> None:
    mock = MockResolver()
    mock.fail_with(DID_KEY, DidNotFound("revoked"))
    for _ in range(3):
        with pytest.raises(DidNotFound, match="revoked"):
            mock.resolve(DID_KEY)
    mock.clear_failure(DID_KEY)
    assert mock.resolve(DID_KEY).signing_key() == ED


def test_mock_fail_with_checks_its_arguments() -> None:
    mock = MockResolver()
    with pytest.raises(TypeError):
        mock.fail_with(ALICE, RuntimeError("x"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        mock.fail_with(ALICE, DidNotFound("x"), times=0)


def test_mock_documents_can_be_inconsistent_on_purpose() -> None:
    mock = MockResolver()
    document = mock.add(DID_KEY, ED2, ed25519_public_to_x25519(ED2))
    assert document.signing_key() == ED2 != ED
