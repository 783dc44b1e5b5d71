"""Fuzz targets of ``identity/``: DIDs and their encodings (did:key,
varint, multibase, base64url, base58), DID documents, key files, prekey
bundles and stores, and foreign (bridged) identities.

Text decoders get :func:`as_text` of the input; accepted values must print
back to the text they were parsed from, or survive a write/read cycle.
"""

from __future__ import annotations

import functools
import json
from typing import Final

from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    AuthenticationFailed,
    BridgeUnavailable,
    DidResolutionError,
    IdentityError,
    InvalidDid,
    InvalidForeignIdentity,
    KeyFileError,
    MalformedMessage,
    PrekeyError,
    UnsupportedKeyType,
)
from l2session.identity import base58
from l2session.identity.bundle import PrekeyBundle
from l2session.identity.did import (
    Did,
    b64url_decode,
    b64url_encode,
    decode_multibase_key,
    decode_varint,
    did_key_from_ed25519,
    ed25519_from_did_key,
    encode_multibase_key,
    encode_varint,
)
from l2session.identity.document import DidDocument, did_key_document
from l2session.identity.foreign import BridgeProtocol, ForeignIdentity
from l2session.identity.identity import Identity
from l2session.identity.keyfile import decode_identity, encode_identity
from l2session.identity.prekeys import PrekeyStore
from l2session.identity.resolver import default_resolver
from l2session.testing.fuzz_targets._base import (
    _DID_TOKENS,
    _JSON_TOKENS,
    _M,
    NOW,
    POLICY,
    FuzzTarget,
    _check_encoding,
    _constant,
    _decoder,
    _require,
    _text_decoder,
    as_text,
)
from l2session.testing.fuzz_targets._fixtures import _keys


def _did_seeds() -> tuple[bytes, ...]:
    return tuple(
        text.encode()
        for text in (
            _keys("alice").identity.did_text,
            "did:web:example.org:users:alice",
            "did:example:123%41bc:x",
        )
    )


def _check_did(data: bytes, did: object) -> None:
    _require(str(did) == as_text(data), "a DID is not the text it was parsed from")


def _check_did_key(data: bytes, key: object) -> None:
    assert isinstance(key, bytes)
    _require(str(did_key_from_ed25519(key)) == as_text(data), "did:key is not canonical")


def _check_varint(data: bytes, value: object) -> None:
    assert isinstance(value, tuple)
    number, length = value
    _require(encode_varint(number) == bytes(data[:length]), "varint is not minimal")


def _check_multibase(data: bytes, value: object) -> None:
    assert isinstance(value, tuple)
    codec, key = value
    _require(encode_multibase_key(codec, key) == as_text(data), "multibase key re-encodes")


def _check_b64url(data: bytes, value: object) -> None:
    assert isinstance(value, bytes)
    _require(b64url_encode(value) == as_text(data), "base64url re-encodes")


def _check_base58(data: bytes, value: object) -> None:
    assert isinstance(value, bytes)
    _require(base58.encode(value) == as_text(data), "base58 re-encodes to other text")


@functools.cache
def _multibase_seeds() -> tuple[bytes, ...]:
    alice = _keys("alice").identity
    return (
        encode_multibase_key(0xED, alice.signing_public).encode(),
        encode_multibase_key(0xEC, alice.agreement_public).encode(),
        encode_multibase_key(0x1200, bytes(33)).encode(),
    )


def _document(data: bytes) -> DidDocument:
    """JSON text to a document, as a resolver does.  Text that is not JSON
    never reaches the parser, so it is refused here as the resolver would."""
    try:
        obj = json.loads(as_text(data))
    except (ValueError, RecursionError):
        raise DidResolutionError("not JSON") from None
    return DidDocument.from_json(obj)


def _check_document(data: bytes, document: object) -> None:
    """Writing a parsed document out and parsing that again is stable."""
    assert isinstance(document, DidDocument)
    written = document.to_json()
    again = DidDocument.from_json(json.loads(json.dumps(written)))
    _require(again.to_json() == written, "a DID document does not survive to_json/from_json")


@functools.cache
def _document_seeds() -> tuple[bytes, ...]:
    alice = _keys("alice").identity
    did = "did:example:alice"
    ed = encode_multibase_key(0xED, alice.signing_public)
    rich = {
        "@context": ["https://www.w3.org/ns/did/v1", {"@vocab": "https://example.org#"}],
        "id": did,
        "verificationMethod": [
            {"id": "#key-1", "type": "Multikey", "controller": did, "publicKeyMultibase": ed},
            {
                "id": f"{did}#jwk",
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": {
                    "kty": "OKP",
                    "crv": "X25519",
                    "x": b64url_encode(alice.agreement_public),
                },
            },
            {
                "id": f"{did}#b58",
                "type": "Ed25519VerificationKey2018",
                "controller": did,
                "publicKeyBase58": base58.encode(alice.signing_public),
            },
            {"id": f"{did}#rsa", "type": "RsaVerificationKey2018", "controller": did},
        ],
        "authentication": ["#key-1", f"{did}#b58"],
        "keyAgreement": [
            f"{did}#jwk",
            {
                "id": "#embedded",
                "type": "X25519KeyAgreementKey2020",
                "controller": did,
                "publicKeyMultibase": encode_multibase_key(0xEC, alice.agreement_public),
            },
        ],
        "service": [
            {"id": "#l2", "type": "L2Session", "serviceEndpoint": "quic://192.0.2.1:7000"},
            {"id": "#set", "type": ["A", "B"], "serviceEndpoint": {"uri": "x"}},
        ],
    }
    return (
        json.dumps(did_key_document(alice.did).to_json()).encode(),
        json.dumps(rich).encode(),
    )


#: The passphrase the key-file target tries on cheap encrypted files.
_PASSPHRASE: Final = "fuzz passphrase"  # noqa: S105 - a test value
#: scrypt cost (n * r * p) above which the target does not decrypt: the
#: decoder bounds it at 2**22 by design, which is seconds per input.
_MAX_FUZZ_SCRYPT_WORK: Final = 2**14


def _keyfile(data: bytes) -> Identity:
    """Decode without a passphrase; a passphrase-protected file with cheap
    scrypt parameters is then decrypted with the fuzz passphrase too."""
    try:
        return decode_identity(data, passphrase=None)
    except KeyFileError as error:
        cheap = _cheap_kdf(data)
        if not cheap:
            raise
        try:
            return decode_identity(data, passphrase=_PASSPHRASE)
        except KeyFileError:
            raise error from None


def _cheap_kdf(data: bytes) -> bool:
    """Whether ``data`` names scrypt parameters cheap enough to run."""
    try:
        kdf = json.loads(data)["kdf"]
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
    except (ValueError, RecursionError, TypeError, KeyError, IndexError):
        return False
    numbers = (n, r, p)
    if not all(type(x) is int and 0 < x <= _MAX_FUZZ_SCRYPT_WORK for x in numbers):
        return False
    return bool(n * r * p <= _MAX_FUZZ_SCRYPT_WORK)


def _check_keyfile(data: bytes, identity: object) -> None:
    assert isinstance(identity, Identity)
    again = decode_identity(
        encode_identity(identity, passphrase=None, rng=SeededRandom("fuzz keyfile")),
        passphrase=None,
    )
    _require(
        again.did == identity.did
        and again.signing.seed() == identity.signing.seed()
        and again.agreement.private_bytes() == identity.agreement.private_bytes(),
        "an identity does not survive encoding and decoding",
    )


@functools.cache
def _keyfile_seeds() -> tuple[bytes, ...]:
    alice = _keys("alice").identity
    rng = SeededRandom("fuzz keyfile seeds")
    return (
        encode_identity(alice, passphrase=None, rng=rng),
        encode_identity(alice, passphrase=_PASSPHRASE, rng=rng, scrypt_n=2**10, scrypt_r=1),
    )


def _bundle(data: bytes) -> PrekeyBundle:
    """Decode, then verify as a fetched bundle is (signatures, did:key)."""
    bundle = PrekeyBundle.decode(data)
    bundle.verify(default_resolver(), now=NOW)
    return bundle


def _bundle_seeds() -> tuple[bytes, ...]:
    return (_keys("alice").party().prekeys.bundle().encode(),)


def _prekey_store(data: bytes) -> PrekeyStore:
    return PrekeyStore.from_bytes(data, _keys("alice").identity, POLICY)


def _check_prekey_store(data: bytes, store: object) -> None:
    assert isinstance(store, PrekeyStore)
    _require(store.to_bytes() == bytes(data), "a prekey store re-encodes to other bytes")


def _prekey_store_seeds() -> tuple[bytes, ...]:
    party = _keys("alice").party()
    fresh = party.prekeys.to_bytes()
    party.prekeys.consume_one_time_prekey(party.prekeys.bundle().one_time_prekeys[0].prekey_id)
    party.prekeys.maintain(rng=SeededRandom("fuzz rotate"), now=NOW + 8 * 86_400)
    return (fresh, party.prekeys.to_bytes())


_DOCUMENT_TOKENS: Final = (
    *_JSON_TOKENS,
    *_DID_TOKENS,
    b'"id"',
    b'"type"',
    b'"controller"',
    b'"verificationMethod"',
    b'"publicKeyMultibase"',
    b'"publicKeyBase58"',
    b'"publicKeyJwk"',
    b'"authentication"',
    b'"keyAgreement"',
    b'"Multikey"',
    b'"JsonWebKey2020"',
    b'"kty"',
    b'"OKP"',
    b'"Ed25519"',
    b'"X25519"',
    b'"service"',
    b'"serviceEndpoint"',
    b"#key-1",
)
_KEYFILE_TOKENS: Final = (
    *_JSON_TOKENS,
    b'"format"',
    b'"l2session-identity"',
    b'"version"',
    b'"protection"',
    b'"passphrase"',
    b'"none"',
    b'"kdf"',
    b'"scrypt"',
    b'"salt"',
    b'"nonce"',
    b'"secret"',
    b"1024",
)

#: Foreign peer names (identity/foreign.py) in every accepted spelling.
_FOREIGN_SEEDS: Final = (
    b"nostr:npub1k4qsp3j0h76z9ekuv0ve62gccjwhns87lpsvs26mtj4rj0lt3c3sj0fqgh",
    b"npub1k4qsp3j0h76z9ekuv0ve62gccjwhns87lpsvs26mtj4rj0lt3c3sj0fqgh",
    b"b54100c64fbfb422e6dc63d99d2918c49d79c0fef860c82b5b5caa393feb8e23",
    b"custom:loopback:alice",
)


def _check_foreign(data: bytes, result: object) -> None:
    """An accepted name has one canonical text, which parses to itself."""
    assert isinstance(result, ForeignIdentity)
    assert ForeignIdentity.parse(result.text) == result


#: The targets of identity/.
TARGETS: Final[tuple[FuzzTarget, ...]] = (
    _text_decoder(
        "did",
        ("l2session.identity.did:Did.parse",),
        Did.parse,
        _did_seeds,
        (InvalidDid,),
        verify=_check_did,
        max_len=1024,
        tokens=_DID_TOKENS,
    ),
    _text_decoder(
        "did_key",
        ("l2session.identity.did:ed25519_from_did_key",),
        ed25519_from_did_key,
        _did_seeds,
        (InvalidDid, UnsupportedKeyType),
        verify=_check_did_key,
        max_len=1024,
        tokens=_DID_TOKENS,
    ),
    _decoder(
        "did_varint",
        ("l2session.identity.did:decode_varint",),
        decode_varint,
        _constant(b"\xed\x01", b"\x00", b"\x80\x24", b"\xff" * 8 + b"\x7f"),
        _M,
        verify=_check_varint,
        max_len=32,
    ),
    _text_decoder(
        "did_multibase",
        ("l2session.identity.did:decode_multibase_key",),
        decode_multibase_key,
        _multibase_seeds,
        _M,
        verify=_check_multibase,
        max_len=8192,
    ),
    _text_decoder(
        "did_b64url",
        ("l2session.identity.did:b64url_decode",),
        b64url_decode,
        _constant(b"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", b"AQ", b"AQI"),
        _M,
        verify=_check_b64url,
        max_len=256,
    ),
    _text_decoder(
        "base58",
        ("l2session.identity.base58:decode",),
        base58.decode,
        _constant(b"6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", b"111z", b"1"),
        _M,
        verify=_check_base58,
        max_len=512,
    ),
    _decoder(
        "did_document",
        ("l2session.identity.document:DidDocument.from_json",),
        _document,
        _document_seeds,
        (DidResolutionError,),
        verify=_check_document,
        max_len=16384,
        tokens=_DOCUMENT_TOKENS,
        text=True,
    ),
    _decoder(
        "keyfile",
        ("l2session.identity.keyfile:decode_identity",),
        _keyfile,
        _keyfile_seeds,
        (KeyFileError,),
        verify=_check_keyfile,
        max_len=4096,
        cost=3,
        tokens=_KEYFILE_TOKENS,
    ),
    _decoder(
        "prekey_bundle",
        ("l2session.identity.bundle:PrekeyBundle.decode",),
        _bundle,
        _bundle_seeds,
        (MalformedMessage, AuthenticationFailed, PrekeyError, IdentityError),
        verify=_check_encoding,
        max_len=16384,
    ),
    _decoder(
        "prekey_store",
        ("l2session.identity.prekeys:PrekeyStore.from_bytes",),
        _prekey_store,
        _prekey_store_seeds,
        _M,
        verify=_check_prekey_store,
        max_len=16384,
        cost=2,
    ),
    _text_decoder(
        "foreign_identity",
        ("l2session.identity.foreign:ForeignIdentity.parse",),
        ForeignIdentity.parse,
        _constant(*_FOREIGN_SEEDS),
        (InvalidForeignIdentity,),
        verify=_check_foreign,
        max_len=256,
        tokens=(b"nostr:", b"npub1", b"custom:", b"qpzry9x8", b"0123456789abcdef"),
    ),
    _text_decoder(
        "bridge_protocol",
        ("l2session.identity.foreign:BridgeProtocol.parse",),
        BridgeProtocol.parse,
        _constant(b"nostr", b"activitypub", b"xmtp", b"custom:echo", b"Custom:x.y-z"),
        (BridgeUnavailable,),
        max_len=128,
        tokens=(b"custom:", b"nostr"),
    ),
)
