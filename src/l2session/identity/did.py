"""Decentralized identifiers (W3C DID Core) and the Ed25519 ``did:key`` method.

A peer names itself by a DID; everything the session layer authenticates is
bound to that text.  Two consequences shape this module:

* Parsing is *strict*.  A DID that two implementations read differently (a
  stray fragment, an uppercase method, a bad ``%`` escape) would let one peer
  be two identities, so anything outside the DID Core ABNF (section 3.1) is
  refused with :class:`~l2session.errors.InvalidDid` saying what was wrong.
* ``did:key`` is decoded exactly as the W3C CCG did:key method defines it
  (``z`` + base58btc of the unsigned-varint multicodec ``0xed`` and the
  32-byte key), and every alternative spelling of the same key is refused:
  a non-minimal varint, a version component, a key that is not a point of
  the curve.  One key, one DID text.

Sans-I/O: pure functions and values, no clock, no randomness, no network.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from typing import Final

from l2session.crypto import primitives
from l2session.errors import InvalidDid, MalformedMessage, UnsupportedKeyType
from l2session.identity import base58

MAX_DID_LENGTH: Final = 512
"""Longest DID (in characters) this library accepts; longer input is refused
before any work is done on it."""

ED25519_PUB_CODEC: Final = 0xED
X25519_PUB_CODEC: Final = 0xEC
ED25519_PUBLIC_KEY_SIZE: Final = 32
X25519_PUBLIC_KEY_SIZE: Final = 32

KNOWN_CODECS: Final[dict[int, str]] = {
    0xE7: "secp256k1-pub",
    0xEA: "bls12_381-g1-pub",
    0xEB: "bls12_381-g2-pub",
    0xEC: "x25519-pub",
    0xED: "ed25519-pub",
    0xEE: "bls12_381-g1g2-pub",
    0xEF: "sr25519-pub",
    0x1200: "p256-pub",
    0x1201: "p384-pub",
    0x1202: "p521-pub",
    0x1203: "ed448-pub",
    0x1204: "x448-pub",
    0x1205: "rsa-pub",
    0x1206: "sm2-pub",
    0x120B: "mlkem-512-pub",
    0x120C: "mlkem-768-pub",
    0x1300: "ed25519-priv",
    0x1301: "secp256k1-priv",
    0x1302: "x25519-priv",
}
"""Multicodec key codes we can *name* in error messages (the multiformats
table); only ``ed25519-pub`` (and ``x25519-pub`` in documents) is usable."""

_MAX_VARINT_BYTES: Final = 9  # multiformats unsigned-varint: at most 63 bits
_MAX_MULTIBASE_LENGTH: Final = 4096

_MULTIBASE_NAMES: Final = {
    "z": "base58btc",
    "u": "base64url",
    "U": "base64url with padding",
    "m": "base64",
    "M": "base64 with padding",
    "f": "base16",
    "F": "base16 upper",
    "b": "base32",
    "B": "base32 upper",
    "k": "base36",
    "K": "base36 upper",
    "Q": "a bare CIDv0 (base58btc without prefix)",
}

_LOWER: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGIT: Final = frozenset("0123456789")
_METHOD_CHARS: Final = _LOWER | _DIGIT
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_ID_CHARS: Final = _METHOD_CHARS | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ.-_")
_B64URL_CHARS: Final = _ID_CHARS - frozenset(".")


def _show(text: str, limit: int = 60) -> str:
    """A bounded ``repr`` of hostile text for error messages."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


def _method_error(text: str, method: str) -> InvalidDid:
    if not method:
        return InvalidDid(
            f"{_show(text)}: the DID method name is empty (expected 'did:<method>:…')"
        )
    for position, char in enumerate(method, start=4):
        if char not in _METHOD_CHARS:
            hint = (
                f"; method names are lowercase (did:{method.lower()}:…)"
                if method.lower() != method and all(c in _METHOD_CHARS for c in method.lower())
                else "; a method name has only lowercase letters and digits"
            )
            return InvalidDid(
                f"{_show(text)}: character {char!r} at position {position} "
                f"is not allowed in the DID method name{hint}"
            )
    raise AssertionError("unreachable: method name is valid")  # pragma: no cover


def _check_method_id(text: str, method_id: str, offset: int) -> None:
    """Validate ``method-specific-id = *( *idchar ":" ) 1*idchar``."""
    if not method_id:
        raise InvalidDid(f"{_show(text)}: the method-specific identifier is empty")
    where = min((i for i in map(method_id.find, "/?#") if i >= 0), default=-1)
    if where >= 0:
        char = method_id[where]
        part = {"#": "fragment", "?": "query", "/": "path"}[char]
        raise InvalidDid(
            f"{_show(text)} is a DID URL (it has a {part} starting with {char!r} at "
            f"position {offset + where}); a DID URL is not a DID — use the part before "
            f"{char!r}"
        )
    if method_id.endswith(":"):
        raise InvalidDid(
            f"{_show(text)}: the method-specific identifier ends with ':'; "
            "its last segment must not be empty"
        )
    index = 0
    while index < len(method_id):
        char = method_id[index]
        if char == "%":
            escape = method_id[index + 1 : index + 3]
            if len(escape) != 2 or not all(c in _HEX for c in escape):
                raise InvalidDid(
                    f"{_show(text)}: '%' at position {offset + index} must be followed by "
                    f"two hex digits (got {escape!r})"
                )
            index += 3
            continue
        if char != ":" and char not in _ID_CHARS:
            raise InvalidDid(
                f"{_show(text)}: character {char!r} at position {offset + index} is not "
                "allowed in a DID (allowed: letters, digits, '.', '-', '_', ':' and "
                "%-escapes)"
            )
        index += 1


@dataclass(frozen=True, slots=True)
class Did:
    """A syntactically valid DID, ``did:<method>:<method_id>``.

    A value object so that code passing DIDs around cannot hold an invalid
    one: construction validates (``Did("key", "x#y")`` raises), and equality
    is exact text equality, which is how DID Core compares DIDs.
    """

    method: str
    method_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not isinstance(self.method_id, str):
            raise InvalidDid(
                "Did(method, method_id) takes two str, got "
                f"{type(self.method).__name__} and {type(self.method_id).__name__}"
            )
        text = f"did:{self.method}:{self.method_id}"
        if len(text) > MAX_DID_LENGTH:
            raise InvalidDid(f"DID is {len(text)} characters long; the limit is {MAX_DID_LENGTH}")
        if not self.method or any(c not in _METHOD_CHARS for c in self.method):
            raise _method_error(text, self.method)
        _check_method_id(text, self.method_id, len(self.method) + 5)

    @classmethod
    def parse(cls, text: str) -> Did:
        """Parse ``text`` as a DID, strictly (W3C DID Core, section 3.1).

        Refused with :class:`InvalidDid` and the reason: non-``str`` input,
        more than :data:`MAX_DID_LENGTH` characters, a scheme other than
        lowercase ``did:``, an empty or non-lowercase method, an empty or
        ``:``-terminated method-specific id, a character outside the ABNF,
        a ``%`` not followed by two hex digits, and DID URLs (a path, query
        or fragment).
        """
        if not isinstance(text, str):
            raise InvalidDid(f"a DID must be a str, got {type(text).__name__}")
        if len(text) > MAX_DID_LENGTH:
            raise InvalidDid(f"DID is {len(text)} characters long; the limit is {MAX_DID_LENGTH}")
        if cls is Did:
            return _parse_cached(text)
        return cls._parse_uncached(text)

    @classmethod
    def _parse_uncached(cls, text: str) -> Did:
        if not text:
            raise InvalidDid("the empty string is not a DID")
        if not text.startswith("did:"):
            if text[:4].lower() == "did:":
                raise InvalidDid(f"{_show(text)}: the DID scheme must be lowercase 'did:'")
            raise InvalidDid(f"{_show(text)} is not a DID: a DID starts with 'did:'")
        method, colon, method_id = text[4:].partition(":")
        if not colon:
            raise InvalidDid(
                f"{_show(text)}: no ':' after the method name (expected 'did:<method>:<id>')"
            )
        if not method or any(c not in _METHOD_CHARS for c in method):
            raise _method_error(text, method)
        _check_method_id(text, method_id, len(method) + 5)
        return cls(method, method_id)

    def __str__(self) -> str:
        return f"did:{self.method}:{self.method_id}"


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Did:
    """DIDs are immutable and parsing validates every character (twice, as
    construction re-validates): peers' DIDs are parsed once per process."""
    return Did._parse_uncached(text)


def _as_did(did: Did | str) -> Did:
    if isinstance(did, Did):
        return did
    return Did.parse(did)


# --------------------------------------------------------------------------
# Ed25519 points (RFC 8032 section 5.1.3) and the map to X25519


_P: Final = 2**255 - 19


def check_ed25519_public(public: bytes) -> None:
    """Refuse bytes that are not a usable Ed25519 public key.

    Delegates to :func:`l2session.crypto.primitives.ed25519_public_key`, which
    does the full RFC 8032 decoding (canonical ``y``, ``x`` exists, sign bit
    consistent) and refuses the eight small-order points: no one holds a
    private key for them and anyone can forge their signatures, so a DID
    naming one identifies nobody.  Raises
    :class:`~l2session.errors.MalformedMessage`.
    """
    primitives.ed25519_public_key(bytes(public))


def ed25519_public_to_x25519(public: bytes) -> bytes:
    """The X25519 public key of an Ed25519 public key, ``u = (1+y)/(1-y)``.

    This is the birational map of RFC 7748 section 4.1, which the did:key
    method uses to derive a document's ``keyAgreement`` key from the DID's
    own Ed25519 key.  (l2session's handshake itself uses a separate X25519
    identity key; this map exists only to produce standard documents.)
    Raises :class:`~l2session.errors.MalformedMessage` for an invalid key.
    """
    check_ed25519_public(public)
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, -1, _P) % _P  # 1 - y != 0: y = 1 is small-order
    return u.to_bytes(X25519_PUBLIC_KEY_SIZE, "little")


# --------------------------------------------------------------------------
# Multicodec / multibase keys


def codec_name(codec: int) -> str:
    """``"0xec (x25519-pub)"`` for a known codec, ``"0x… (unknown)"``
    otherwise: how error messages name a key type."""
    return f"0x{codec:x} ({KNOWN_CODECS.get(codec, 'unknown')})"


def encode_varint(value: int) -> bytes:
    """Multiformats unsigned varint (LEB128, minimal) of ``value``."""
    if value < 0 or value >= 1 << 63:
        raise MalformedMessage(f"varint value {value} is out of range (0 ≤ value < 2^63)")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes) -> tuple[int, int]:
    """``(value, length)`` of the unsigned varint at the start of ``data``.

    Refuses truncated, over-long (more than 9 bytes) and non-minimal
    encodings (a final ``0x00`` group), so each value has one encoding.
    Raises :class:`~l2session.errors.MalformedMessage`.
    """
    value = 0
    for index, byte in enumerate(data[:_MAX_VARINT_BYTES]):
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise MalformedMessage(
                    f"multicodec varint is not minimal ({data[: index + 1].hex()} has a "
                    "redundant final zero group)"
                )
            return value, index + 1
    if len(data) < _MAX_VARINT_BYTES:
        raise MalformedMessage(f"multicodec varint is truncated ({bytes(data).hex()})")
    raise MalformedMessage("multicodec varint is longer than 9 bytes")


def encode_multibase_key(codec: int, key: bytes) -> str:
    """``z`` + base58btc(varint(codec) + key): the Multikey / did:key form."""
    return "z" + base58.encode(encode_varint(codec) + bytes(key))


def decode_multibase_key(text: str) -> tuple[int, bytes]:
    """``(codec, key bytes)`` of a ``z…`` multibase multicodec value.

    Checks the form only (prefix, alphabet, canonical base58, minimal
    varint); callers check the codec and the key.  Raises
    :class:`~l2session.errors.MalformedMessage`.
    """
    if not isinstance(text, str):
        raise MalformedMessage(f"multibase value must be a str, got {type(text).__name__}")
    if not text:
        raise MalformedMessage("multibase value is empty")
    if len(text) > _MAX_MULTIBASE_LENGTH:
        raise MalformedMessage(
            f"multibase value is {len(text)} characters; the limit is {_MAX_MULTIBASE_LENGTH}"
        )
    if text[0] != "z":
        name = _MULTIBASE_NAMES.get(text[0])
        got = f"{text[0]!r} ({name})" if name else repr(text[0])
        raise MalformedMessage(f"multibase prefix must be 'z' (base58btc), got {got}")
    if len(text) == 1:
        raise MalformedMessage("multibase value has the 'z' prefix but no data")
    data = base58.decode(text[1:])
    if base58.encode(data) != text[1:]:  # pragma: no cover - base58btc is bijective
        raise MalformedMessage("base58btc encoding is not canonical")
    codec, length = decode_varint(data)
    return codec, data[length:]


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url (RFC 7515 section 2), the encoding of the
    ``x`` of an OKP JSON Web Key: no padding, no other alphabet, and no
    non-zero trailing bits, so one key has one spelling.  Raises
    :class:`~l2session.errors.MalformedMessage`."""
    if any(c not in _B64URL_CHARS for c in text):
        raise MalformedMessage("not unpadded base64url (only A-Z a-z 0-9 - _ allowed, no '=')")
    if len(text) % 4 == 1:
        raise MalformedMessage("base64url length is impossible (length % 4 == 1)")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        raise MalformedMessage("not valid base64url") from None
    if b64url_encode(data) != text:
        raise MalformedMessage("base64url is not canonical (non-zero trailing bits)")
    return data


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url of ``data`` (the JWK form)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def x25519_did_key_fragment(x25519_public: bytes) -> str:
    """The ``z6LS…`` multibase (multicodec ``0xec``) of an X25519 public key:
    the fragment of the keyAgreement method in a did:key document, and the
    ``publicKeyMultibase`` of an X25519 Multikey."""
    if len(x25519_public) != X25519_PUBLIC_KEY_SIZE:
        raise MalformedMessage(f"X25519 public key must be 32 bytes, got {len(x25519_public)}")
    return encode_multibase_key(X25519_PUB_CODEC, x25519_public)


def ed25519_multibase(public: bytes) -> str:
    """The ``z6Mk…`` multibase (multicodec ``0xed``) of an Ed25519 public key."""
    check_ed25519_public(public)
    return encode_multibase_key(ED25519_PUB_CODEC, public)


# --------------------------------------------------------------------------
# did:key


def did_key_from_ed25519(public: bytes) -> Did:
    """The ``did:key`` of an Ed25519 public key (``did:key:z6Mk…``).

    The key is validated first (:func:`check_ed25519_public`): publishing a
    DID for bytes that are not a key would create an identity nobody owns.
    Raises :class:`~l2session.errors.MalformedMessage` for an invalid key.
    """
    return Did("key", ed25519_multibase(public))


def ed25519_from_did_key(did: Did | str) -> bytes:
    """The Ed25519 public key a ``did:key`` names, decoded strictly.

    Raises :class:`InvalidDid` for anything that is not the one canonical
    did:key text of a valid Ed25519 key, and :class:`UnsupportedKeyType`
    for a well-formed did:key of another key type (the message names the
    multicodec, say ``x25519-pub (0xec)``).
    """
    if not isinstance(did, Did | str):
        raise InvalidDid(f"expected a Did or str, got {type(did).__name__}")
    parsed = _as_did(did)
    if parsed.method != "key":
        raise InvalidDid(f"{parsed} is not a did:key (method is {parsed.method!r})")
    value = parsed.method_id
    if ":" in value:
        raise InvalidDid(
            f"{parsed}: did:key with a version or extra ':' component is not supported; "
            "the method-specific id must be a single 'z…' multibase value"
        )
    try:
        codec, key = decode_multibase_key(value)
    except MalformedMessage as exc:
        raise InvalidDid(f"{parsed}: {exc}") from None
    if codec != ED25519_PUB_CODEC:
        leaked = (
            " — it is a private key: whoever published it must consider it compromised"
            if KNOWN_CODECS.get(codec, "").endswith("-priv")
            else ""
        )
        raise UnsupportedKeyType(
            f"{parsed} uses multicodec {codec_name(codec)}; "
            f"l2session identities need Ed25519 (0x{ED25519_PUB_CODEC:x}){leaked}"
        )
    if len(key) != ED25519_PUBLIC_KEY_SIZE:
        raise InvalidDid(
            f"{parsed}: an ed25519-pub did:key carries a 32-byte key, got {len(key)} bytes "
            f"(decoded length {len(key) + 2}, expected 34)"
        )
    try:
        check_ed25519_public(key)
    except MalformedMessage as exc:
        raise InvalidDid(f"{parsed}: {exc}") from None
    return key


__all__ = [
    "ED25519_PUBLIC_KEY_SIZE",
    "ED25519_PUB_CODEC",
    "KNOWN_CODECS",
    "MAX_DID_LENGTH",
    "X25519_PUBLIC_KEY_SIZE",
    "X25519_PUB_CODEC",
    "Did",
    "b64url_decode",
    "b64url_encode",
    "check_ed25519_public",
    "codec_name",
    "decode_multibase_key",
    "decode_varint",
    "did_key_from_ed25519",
    "ed25519_from_did_key",
    "ed25519_multibase",
    "ed25519_public_to_x25519",
    "encode_multibase_key",
    "encode_varint",
    "x25519_did_key_fragment",
]
