"""The identity key-file format: encoding and strict decoding, no file I/O.

An identity file is a small UTF-8 JSON object::

    {
      "format": "l2session-identity",
      "version": 1,
      "did": "did:key:z6Mk...",
      "protection": "passphrase",
      "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<b64>"},
      "nonce": "<b64, 12 bytes>",
      "secret": "<b64>"
    }

The secret is the 32-byte Ed25519 seed followed by the 32-byte X25519 private
key.  With ``"protection": "none"`` it is stored as is (and ``kdf``/``nonce``
are absent); with ``"passphrase"`` it is ChaCha20-Poly1305 encrypted under
``scrypt(NFC(passphrase), salt, n, r, p)``, with the format, version, DID,
protection and KDF parameters as associated data, so that editing any of them
makes decryption fail rather than, say, silently weakening the KDF or pinning
the keys to somebody else's DID.

Why JSON: the file is meant to be inspected (which DID is this?) and backed
up by people; the secret is opaque either way.  Why scrypt: it is memory-hard
and ships with ``cryptography``, which l2session already depends on.

Decoding treats the bytes as hostile (a key file may come from a backup, a
USB stick or a bug): every field's type, size and range is checked, unknown
fields are refused, and the scrypt cost is bounded before any work is done,
so that a crafted file cannot make us allocate gigabytes or spin for minutes.
Every refusal is a :class:`~l2session.errors.KeyFileError` subclass whose
message names the source and the problem, never a secret.

This module is sans-I/O; reading and writing files (permissions, atomic
replacement) is :mod:`l2session.store.keyfile`.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from l2session.codec import length_prefixed
from l2session.crypto.primitives import ED25519_SEED_SIZE, X25519_KEY_SIZE
from l2session.crypto.rng import RandomSource
from l2session.errors import (
    ConfigError,
    IdentityError,
    KeyFileError,
    KeyFileFormatError,
    L2SessionError,
    PassphraseRequired,
    WrongPassphrase,
)
from l2session.identity.did import Did
from l2session.identity.identity import Identity

FORMAT: Final = "l2session-identity"
VERSION: Final = 1

PROTECTION_NONE: Final = "none"
# The name of a protection mode, not a password.
PROTECTION_PASSPHRASE: Final = "passphrase"  # noqa: S105

#: Largest key file we read.  A real one is well under 1 KiB; the bound keeps
#: a wrong path (a disk image, /dev/zero) from being slurped into memory.
MAX_KEYFILE_SIZE: Final = 64 * 1024

SECRET_SIZE: Final = ED25519_SEED_SIZE + X25519_KEY_SIZE
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
KEY_SIZE: Final = 32
SALT_SIZE: Final = 16

DEFAULT_SCRYPT_N: Final = 2**15
DEFAULT_SCRYPT_R: Final = 8
DEFAULT_SCRYPT_P: Final = 1

# Bounds on scrypt parameters, enforced when writing and (before any work)
# when reading.  Each parameter alone is bounded, and so are the memory
# (128 * n * r bytes) and the total work (n * r * p): n = 2**20 with r = 32
# would otherwise be 4 GiB, and p = 16 on top of that minutes of CPU.
MIN_SCRYPT_LOG_N: Final = 10
MAX_SCRYPT_LOG_N: Final = 20
MAX_SCRYPT_R: Final = 32
MAX_SCRYPT_P: Final = 16
MIN_SALT_SIZE: Final = 16
MAX_SALT_SIZE: Final = 64
MAX_SCRYPT_MEMORY: Final = 256 * 1024 * 1024
MAX_SCRYPT_WORK: Final = 2**22

#: Longest DID text accepted in a key file (DIDs are short; this only keeps
#: a hostile value out of error messages and the parser).
MAX_DID_LENGTH: Final = 2048

_AAD_DOMAIN: Final = b"l2session identity keyfile aad"

_COMMON_FIELDS: Final = frozenset({"format", "version", "did", "protection", "secret"})
_PASSPHRASE_FIELDS: Final = _COMMON_FIELDS | {"kdf", "nonce"}
_KDF_FIELDS: Final = frozenset({"name", "n", "r", "p", "salt"})


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """The KDF parameters of a passphrase-protected file (all public)."""

    n: int
    r: int
    p: int
    salt: bytes


# --------------------------------------------------------------------------
# Encoding


def encode_identity(
    identity: Identity,
    *,
    passphrase: str | None,
    rng: RandomSource,
    scrypt_n: int = DEFAULT_SCRYPT_N,
    scrypt_r: int = DEFAULT_SCRYPT_R,
    scrypt_p: int = DEFAULT_SCRYPT_P,
) -> bytes:
    """The key-file bytes of ``identity``.

    With ``passphrase=None`` the secret is stored unencrypted (the file's
    permissions are then its only protection).  An empty passphrase is
    refused rather than treated as "none", so that a blank prompt cannot
    silently produce a weakly protected file.  ``rng`` supplies the salt and
    the nonce; scrypt parameters outside the bounds this module also
    enforces when reading are refused, so we never write a file we would not
    read back.
    """
    did_text = str(identity.did)
    secret = identity.signing.seed() + identity.agreement.private_bytes()
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "did": did_text}
    if passphrase is None:
        doc["protection"] = PROTECTION_NONE
        doc["secret"] = _b64(secret)
    else:
        passphrase_bytes = _passphrase_bytes(passphrase)
        if not passphrase_bytes:
            raise ConfigError(
                "passphrase must not be empty; pass passphrase=None for an unencrypted file"
            )
        problem = _scrypt_problem(scrypt_n, scrypt_r, scrypt_p, SALT_SIZE)
        if problem is not None:
            raise ConfigError(f"scrypt parameters: {problem}")
        params = ScryptParams(scrypt_n, scrypt_r, scrypt_p, rng.random_bytes(SALT_SIZE))
        nonce = rng.random_bytes(NONCE_SIZE)
        key = _derive_key(passphrase_bytes, params)
        aad = _associated_data(did_text, params)
        doc["protection"] = PROTECTION_PASSPHRASE
        doc["kdf"] = {
            "name": "scrypt",
            "n": params.n,
            "r": params.r,
            "p": params.p,
            "salt": _b64(params.salt),
        }
        doc["nonce"] = _b64(nonce)
        doc["secret"] = _b64(ChaCha20Poly1305(key).encrypt(nonce, secret, aad))
    return (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode("ascii")


# --------------------------------------------------------------------------
# Decoding


def decode_identity(data: bytes, *, passphrase: str | None, source: str = "<memory>") -> Identity:
    """The identity stored in key-file bytes ``data``.

    ``source`` (typically the path) prefixes every error message.  Raises
    :class:`PassphraseRequired` for an encrypted file without a passphrase
    (``None`` or ``""``), :class:`WrongPassphrase` when decryption fails
    (wrong passphrase, or the file was modified), :class:`KeyFileFormatError`
    for anything malformed, and :class:`KeyFileError` when a passphrase is
    given for an unencrypted file: the caller expected an encrypted file, and
    an unencrypted one in its place may have been substituted by somebody
    else, so we do not quietly accept it.
    """
    if passphrase is not None and not isinstance(passphrase, str):
        raise ConfigError("passphrase must be a str or None")
    doc = _parse_json(data, source)
    did_text, did = _check_header(doc, source)
    protection = doc["protection"]
    if protection == PROTECTION_NONE:
        secret = _b64_field(doc, "secret", source, size=SECRET_SIZE)
        if passphrase:
            raise KeyFileError(
                f"{source}: the identity file is not encrypted, but a passphrase was given; "
                "refusing in case the file was replaced. If it is meant to be unencrypted, "
                "load it without a passphrase (and re-save it with one to protect it)"
            )
    else:
        params = _check_kdf(doc["kdf"], source)
        nonce = _b64_field(doc, "nonce", source, size=NONCE_SIZE)
        ciphertext = _b64_field(doc, "secret", source, size=SECRET_SIZE + TAG_SIZE)
        if not passphrase:
            raise PassphraseRequired(
                f"{source}: the identity file is encrypted; a passphrase is required"
            )
        key = _derive_key(_passphrase_bytes(passphrase), params, source)
        try:
            secret = ChaCha20Poly1305(key).decrypt(
                nonce, ciphertext, _associated_data(did_text, params)
            )
        except InvalidTag:
            raise WrongPassphrase(
                f"{source}: wrong passphrase, or the identity file was modified"
            ) from None
    return _build_identity(secret, did, source)


def _parse_json(data: bytes, source: str) -> dict[str, Any]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise KeyFileFormatError(f"{source}: expected bytes, got {type(data).__name__}")
    if len(data) > MAX_KEYFILE_SIZE:
        raise KeyFileFormatError(
            f"{source}: {len(data)} bytes is too large for an identity file "
            f"(at most {MAX_KEYFILE_SIZE} bytes); is this the right file?"
        )
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileFormatError(
            f"{source}: not an l2session identity file (not UTF-8 text)"
        ) from None
    try:
        doc = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_refuse_constant
        )
    except _DuplicateKey as exc:
        raise KeyFileFormatError(
            f"{source}: invalid identity file: field {exc.args[0]} appears twice"
        ) from None
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError, NaN/Infinity and over-long integers.
        raise KeyFileFormatError(
            f"{source}: not an l2session identity file (not valid JSON; truncated or edited?)"
        ) from None
    if not isinstance(doc, dict):
        raise KeyFileFormatError(
            f"{source}: not an l2session identity file (expected a JSON object)"
        )
    return doc


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse duplicate keys: with them, two parsers could read two files."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(_show(key))
        out[key] = value
    return out


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"JSON constant {name} is not allowed")


def _check_header(doc: dict[str, Any], source: str) -> tuple[str, Did]:
    """Check format, version, field set, protection and DID.

    Returns the DID as written (the associated data covers exactly those
    characters) and parsed.  The DID is checked before any scrypt work, so a
    malformed file is reported as such without a passphrase.
    """
    fmt = doc.get("format")
    if fmt != FORMAT:
        shown = "missing" if fmt is None else _show(fmt)
        raise KeyFileFormatError(
            f"{source}: not an l2session identity file (format is {shown}, expected {FORMAT!r})"
        )
    version = doc.get("version")
    if not _is_int(version) or version < 1:
        raise KeyFileFormatError(f"{source}: invalid identity file: bad version {_show(version)}")
    if version > VERSION:
        raise KeyFileFormatError(
            f"{source}: the identity file has format version {_show(version)}, written by a newer "
            f"l2session (this one reads version {VERSION}); upgrade l2session to use it"
        )
    protection = doc.get("protection")
    if protection == PROTECTION_NONE:
        expected: frozenset[str] = _COMMON_FIELDS
    elif protection == PROTECTION_PASSPHRASE:
        expected = _PASSPHRASE_FIELDS
    else:
        raise KeyFileFormatError(
            f"{source}: invalid identity file: protection must be "
            f"{PROTECTION_NONE!r} or {PROTECTION_PASSPHRASE!r}, got {_show(protection)}"
        )
    _check_fields(doc, expected, source, where="")
    did_text = doc["did"]
    if not isinstance(did_text, str) or not did_text or len(did_text) > MAX_DID_LENGTH:
        raise KeyFileFormatError(f"{source}: invalid identity file: bad did {_show(did_text)}")
    try:
        did = Did.parse(did_text)
    except L2SessionError as exc:
        raise KeyFileFormatError(f"{source}: invalid identity file: {exc}") from None
    return did_text, did


def _check_fields(
    obj: dict[str, Any], expected: frozenset[str], source: str, *, where: str
) -> None:
    unknown = sorted(set(obj) - expected)
    if unknown:
        raise KeyFileFormatError(
            f"{source}: invalid identity file: unknown field {_show(where + unknown[0])}"
        )
    missing = sorted(expected - set(obj))
    if missing:
        raise KeyFileFormatError(
            f"{source}: invalid identity file: missing field {(where + missing[0])!r}"
        )


def _check_kdf(kdf_obj: Any, source: str) -> ScryptParams:
    if not isinstance(kdf_obj, dict):
        raise KeyFileFormatError(f"{source}: invalid identity file: kdf must be an object")
    name = kdf_obj.get("name")
    if name != "scrypt":
        raise KeyFileFormatError(
            f"{source}: invalid identity file: unsupported kdf {_show(name)} (expected 'scrypt')"
        )
    _check_fields(kdf_obj, _KDF_FIELDS, source, where="kdf.")
    n, r, p = kdf_obj["n"], kdf_obj["r"], kdf_obj["p"]
    for label, value in (("n", n), ("r", r), ("p", p)):
        if not _is_int(value):
            raise KeyFileFormatError(
                f"{source}: invalid identity file: kdf.{label} must be an integer"
            )
    salt = _b64_field(kdf_obj, "salt", source, min_size=MIN_SALT_SIZE, max_size=MAX_SALT_SIZE)
    problem = _scrypt_problem(n, r, p, len(salt))
    if problem is not None:
        raise KeyFileFormatError(f"{source}: invalid identity file: {problem}")
    return ScryptParams(n, r, p, salt)


def _build_identity(secret: bytes, did: Did, source: str) -> Identity:
    """The identity; for ``did:key`` the constructor checks that the DID is
    the signing key's, which catches a swapped DID in an unencrypted file."""
    try:
        return Identity.from_secrets(secret[:ED25519_SEED_SIZE], secret[ED25519_SEED_SIZE:], did)
    except IdentityError as exc:
        raise KeyFileFormatError(f"{source}: invalid identity file: {exc}") from None
    except L2SessionError:
        # A key of the wrong size cannot happen after the size checks above;
        # converted anyway so that nothing but KeyFileError leaves this module.
        raise KeyFileFormatError(f"{source}: invalid identity file: bad key material") from None


# --------------------------------------------------------------------------
# Helpers


def _scrypt_problem(n: Any, r: Any, p: Any, salt_size: int) -> str | None:
    """Why these scrypt parameters are refused, or ``None`` if they are fine."""
    if not (_is_int(n) and _is_int(r) and _is_int(p)):
        return "n, r and p must be integers"
    if n < 2**MIN_SCRYPT_LOG_N or n > 2**MAX_SCRYPT_LOG_N or n & (n - 1):
        return (
            f"scrypt n must be a power of two between 2**{MIN_SCRYPT_LOG_N} "
            f"and 2**{MAX_SCRYPT_LOG_N}, got {_show(n)}"
        )
    if not 1 <= r <= MAX_SCRYPT_R:
        return f"scrypt r must be between 1 and {MAX_SCRYPT_R}, got {_show(r)}"
    if not 1 <= p <= MAX_SCRYPT_P:
        return f"scrypt p must be between 1 and {MAX_SCRYPT_P}, got {_show(p)}"
    if not MIN_SALT_SIZE <= salt_size <= MAX_SALT_SIZE:
        return f"scrypt salt must be {MIN_SALT_SIZE} to {MAX_SALT_SIZE} bytes, got {salt_size}"
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        return (
            f"scrypt n={n}, r={r} needs {128 * n * r // 2**20} MiB "
            f"(at most {MAX_SCRYPT_MEMORY // 2**20} MiB allowed)"
        )
    if n * r * p > MAX_SCRYPT_WORK:
        return f"scrypt cost n*r*p = {n * r * p} exceeds the limit {MAX_SCRYPT_WORK}"
    return None


def _derive_key(passphrase: bytes, params: ScryptParams, source: str = "<memory>") -> bytes:
    kdf = Scrypt(salt=params.salt, length=KEY_SIZE, n=params.n, r=params.r, p=params.p)
    try:
        return kdf.derive(passphrase)
    except (ValueError, MemoryError):
        raise KeyFileError(
            f"{source}: cannot run scrypt with n={params.n}, r={params.r}, p={params.p} "
            "(out of memory?)"
        ) from None


def _passphrase_bytes(passphrase: str) -> bytes:
    """NFC-normalised UTF-8, so that the same passphrase typed on systems
    that compose accents differently derives the same key."""
    if not isinstance(passphrase, str):
        raise ConfigError("passphrase must be a str or None")
    try:
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("passphrase is not valid Unicode text (lone surrogate)") from None


def _associated_data(did_text: str, params: ScryptParams) -> bytes:
    """Canonical binary encoding of every public field the ciphertext depends on."""
    return length_prefixed(
        _AAD_DOMAIN,
        FORMAT.encode("ascii"),
        VERSION.to_bytes(4, "big"),
        did_text.encode("utf-8", "surrogatepass"),
        PROTECTION_PASSPHRASE.encode("ascii"),
        b"scrypt",
        params.n.to_bytes(8, "big"),
        params.r.to_bytes(4, "big"),
        params.p.to_bytes(4, "big"),
        params.salt,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_field(
    obj: dict[str, Any],
    name: str,
    source: str,
    *,
    size: int | None = None,
    min_size: int = 0,
    max_size: int = MAX_KEYFILE_SIZE,
) -> bytes:
    """Strict standard base64 (padding required, canonical) of a bounded size."""
    value = obj[name]
    if not isinstance(value, str):
        raise KeyFileFormatError(f"{source}: invalid identity file: {name} must be a string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raw = None
    if raw is None or _b64(raw) != value:
        raise KeyFileFormatError(f"{source}: invalid identity file: {name} is not valid base64")
    if size is not None and len(raw) != size:
        raise KeyFileFormatError(
            f"{source}: invalid identity file: {name} must be {size} bytes, got {len(raw)}"
        )
    if not min_size <= len(raw) <= max_size:
        raise KeyFileFormatError(
            f"{source}: invalid identity file: {name} must be {min_size} to {max_size} bytes, "
            f"got {len(raw)}"
        )
    return raw


def _is_int(value: object) -> TypeGuard[int]:
    """A JSON integer (``bool`` is an ``int`` subclass in Python, but not here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """A short, safe rendering of a public field value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "DEFAULT_SCRYPT_N",
    "DEFAULT_SCRYPT_P",
    "DEFAULT_SCRYPT_R",
    "FORMAT",
    "MAX_KEYFILE_SIZE",
    "VERSION",
    "ScryptParams",
    "decode_identity",
    "encode_identity",
]
