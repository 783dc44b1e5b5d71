"""The rules every part of a DID document is held to: the key types and
encodings kept, the bounds on its size, and the checks of strings, DID
URLs and key material, each failing with a
:class:`~l2session.errors.DidResolutionError` that names the JSON path.

Apart from :mod:`l2session.identity.document` (the values and the JSON
parser) because both the values' own validation and the parser apply
them; the document module re-exports the public constants.
"""

from __future__ import annotations

from typing import Final, Literal

from l2session.errors import DidResolutionError, InvalidDid, MalformedMessage
from l2session.identity.did import (
    ED25519_PUB_CODEC,
    X25519_PUB_CODEC,
    Did,
    check_ed25519_public,
)

KeyType = Literal["Ed25519", "X25519"]

DID_CONTEXT_V1: Final = "https://www.w3.org/ns/did/v1"
ED25519_2018_CONTEXT: Final = "https://w3id.org/security/suites/ed25519-2018/v1"
X25519_2019_CONTEXT: Final = "https://w3id.org/security/suites/x25519-2019/v1"
MULTIKEY_CONTEXT: Final = "https://w3id.org/security/multikey/v1"

MAX_VERIFICATION_METHODS: Final = 64
MAX_SERVICES: Final = 64
MAX_RELATIONSHIP_ENTRIES: Final = 64
MAX_CONTEXT_ENTRIES: Final = 32
MAX_STRING_LENGTH: Final = 2048

_KEY_SIZE: Final = 32
MAX_BASE58_KEY_LENGTH: Final = 128

# type -> (property holding the key, key types that type can hold)
METHOD_TYPES: Final[dict[str, tuple[str, frozenset[KeyType]]]] = {
    "Ed25519VerificationKey2018": ("publicKeyBase58", frozenset({"Ed25519"})),
    "X25519KeyAgreementKey2019": ("publicKeyBase58", frozenset({"X25519"})),
    "Ed25519VerificationKey2020": ("publicKeyMultibase", frozenset({"Ed25519"})),
    "X25519KeyAgreementKey2020": ("publicKeyMultibase", frozenset({"X25519"})),
    "Multikey": ("publicKeyMultibase", frozenset({"Ed25519", "X25519"})),
    "JsonWebKey2020": ("publicKeyJwk", frozenset({"Ed25519", "X25519"})),
}
MATERIAL_PROPERTIES: Final = ("publicKeyBase58", "publicKeyMultibase", "publicKeyJwk")
CODEC_KEY_TYPES: Final[dict[int, KeyType]] = {
    ED25519_PUB_CODEC: "Ed25519",
    X25519_PUB_CODEC: "X25519",
}
KEY_TYPE_CODECS: Final[dict[KeyType, int]] = {
    "Ed25519": ED25519_PUB_CODEC,
    "X25519": X25519_PUB_CODEC,
}
RELATIONSHIPS: Final = (
    ("assertionMethod", "assertion_method"),
    ("authentication", "authentication"),
    ("capabilityInvocation", "capability_invocation"),
    ("capabilityDelegation", "capability_delegation"),
    ("keyAgreement", "key_agreement"),
)


def fail(path: str, message: str) -> DidResolutionError:
    return DidResolutionError(f"{path}: {message}")


def quoted(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


def check_text(value: object, path: str) -> str:
    """A non-empty bounded string without whitespace or control characters."""
    if not isinstance(value, str):
        raise fail(path, f"must be a string, got {json_type(value)}")
    if not value:
        raise fail(path, "must not be empty")
    if len(value) > MAX_STRING_LENGTH:
        raise fail(path, f"is {len(value)} characters long; the limit is {MAX_STRING_LENGTH}")
    # str.isprintable() is False for every whitespace character but the
    # ASCII space (Unicode separators and controls), so this is the
    # per-character test in two C loops (it runs for every DID resolved).
    if not value.isprintable() or " " in value:
        raise fail(path, f"{quoted(value)} contains whitespace or a control character")
    return value


_JSON_TYPES: Final = ((bool, "a boolean"), (int | float, "a number"), (dict, "an object"),
               (list, "an array"), (str, "a string"))  # fmt: skip


def json_type(value: object) -> str:
    """How error messages name the JSON type of ``value``."""
    if value is None:
        return "null"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "?")


def check_did_url(value: object, path: str) -> str:
    """An absolute DID URL: a valid DID followed by a path, query or fragment."""
    text = check_text(value, path)
    cut = min((i for i in (text.find(c) for c in "/?#") if i >= 0), default=len(text))
    try:
        Did.parse(text[:cut])
    except InvalidDid as exc:
        raise fail(path, f"{quoted(text)} is not a DID URL ({exc})") from None
    return text


def resolve_ref(value: object, path: str, base: Did) -> str:
    """An absolute DID URL, or a ``#fragment`` resolved against ``base``."""
    text = check_text(value, path)
    if text.startswith("#"):
        if len(text) == 1:
            raise fail(path, "'#' with an empty fragment does not name anything")
        return check_did_url(f"{base}{text}", path)
    if not text.startswith("did:"):
        raise fail(path, f"{quoted(text)} is neither a DID URL nor a relative '#fragment'")
    return check_did_url(text, path)


def check_key(key_type: KeyType, key: bytes, path: str) -> None:
    """Every key kept is 32 bytes, and an Ed25519 key a valid, not small-order point."""
    if len(key) != _KEY_SIZE:
        raise fail(path, f"{key_type} public key must be 32 bytes, got {len(key)}")
    if key_type == "Ed25519":
        try:
            check_ed25519_public(key)
        except MalformedMessage as exc:
            raise fail(path, str(exc)) from None
