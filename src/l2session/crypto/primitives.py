"""The asymmetric primitives, each in one place.

Every X25519, Ed25519 and ML-KEM-768 operation that l2session performs goes
through a function of this module, called as ``primitives.name(...)``.  That
has three uses: hostile input is converted into typed errors here and only
here; key generation takes injected randomness; and the crypto benchmark can
count exactly which operations a handshake performs (its "floor").

The implementations are those of ``cryptography`` (OpenSSL): constant-time,
and for ML-KEM the FIPS 203 implementation of OpenSSL 3.5+.

Randomness: keys are derived from bytes drawn from the injected
:class:`~l2session.crypto.rng.RandomSource` (X25519 and Ed25519 from a 32-byte
secret, ML-KEM-768 from its 64-byte FIPS 203 seed ``d || z``).  The one
exception is ML-KEM *encapsulation*: OpenSSL draws its 32-byte message ``m``
from its own CSPRNG and offers no way to inject it.  Encapsulation is
therefore a pluggable :class:`Encapsulator`; the default uses OpenSSL, and the
known-answer vectors use a FIPS 203 ``Encaps_internal`` that takes ``m`` from
the injected source (see :mod:`l2session.testing`).
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass, field
from typing import Final, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.mlkem import (
    MLKEM768PrivateKey,
    MLKEM768PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from l2session.crypto.rng import RandomSource
from l2session.errors import AuthenticationFailed, MalformedMessage

X25519_KEY_SIZE: Final = 32
ED25519_PUBLIC_KEY_SIZE: Final = 32
ED25519_SEED_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64
MLKEM768_SEED_SIZE: Final = 64
MLKEM768_PUBLIC_KEY_SIZE: Final = 1184
MLKEM768_CIPHERTEXT_SIZE: Final = 1088
MLKEM_SHARED_SECRET_SIZE: Final = 32


def ct_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison for secrets (MACs, confirmations, keys)."""
    return hmac.compare_digest(a, b)


# --------------------------------------------------------------------------
# X25519


@dataclass(frozen=True, slots=True)
class DhKeyPair:
    """An X25519 key pair.  ``repr`` never shows the private key."""

    private: X25519PrivateKey = field(repr=False)
    public: bytes

    def private_bytes(self) -> bytes:
        return self.private.private_bytes_raw()


def x25519_generate(rng: RandomSource) -> DhKeyPair:
    """A fresh X25519 key pair from 32 injected random bytes."""
    return x25519_from_private(rng.random_bytes(X25519_KEY_SIZE))


def x25519_from_private(secret: bytes) -> DhKeyPair:
    if len(secret) != X25519_KEY_SIZE:
        raise MalformedMessage(f"X25519 private key must be 32 bytes, got {len(secret)}")
    private = X25519PrivateKey.from_private_bytes(secret)
    return DhKeyPair(private, private.public_key().public_bytes_raw())


def x25519(own: DhKeyPair, peer_public: bytes) -> bytes:
    """The X25519 shared secret of ``own`` with ``peer_public``.

    A public key of the wrong size, or one of small order (all-zero shared
    secret, RFC 7748 section 6.1), is refused as :class:`MalformedMessage`.
    """
    if len(peer_public) != X25519_KEY_SIZE:
        raise MalformedMessage(f"X25519 public key must be 32 bytes, got {len(peer_public)}")
    try:
        return own.private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        raise MalformedMessage("X25519 public key of small order refused") from None


# --------------------------------------------------------------------------
# Ed25519


@dataclass(frozen=True, slots=True)
class SigningKeyPair:
    """An Ed25519 key pair.  ``repr`` never shows the private key."""

    private: Ed25519PrivateKey = field(repr=False)
    public: bytes

    def seed(self) -> bytes:
        return self.private.private_bytes_raw()


def ed25519_generate(rng: RandomSource) -> SigningKeyPair:
    return ed25519_from_seed(rng.random_bytes(ED25519_SEED_SIZE))


def ed25519_from_seed(seed: bytes) -> SigningKeyPair:
    if len(seed) != ED25519_SEED_SIZE:
        raise MalformedMessage(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
    private = Ed25519PrivateKey.from_private_bytes(seed)
    return SigningKeyPair(private, private.public_key().public_bytes_raw())


# RFC 8032 section 5.1.3 decoding, done here because OpenSSL accepts any 32
# bytes as an Ed25519 public key, including non-points and the small-order
# points for which *any* signature verifies (with A the identity point,
# [S]B = R + [k]A holds for R = [S]B).  A DID naming such a key would be
# forgeable by everyone, so no such key is ever used.
_P: Final = 2**255 - 19
_D: Final = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1: Final = pow(2, (_P - 1) // 4, _P)
_Y_MASK: Final = (1 << 255) - 1
#: y-coordinates of the eight points of order dividing 8 (canonical encodings):
#: 1 (identity), p-1 (order 2), 0 (order 4, two points) and the two y of the
#: four points of order 8.  tests/crypto/test_primitives.py re-derives them.
SMALL_ORDER_Y: Final = frozenset(
    {
        0,
        1,
        _P - 1,
        int.from_bytes(
            bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
            "little",
        ),
        int.from_bytes(
            bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
            "little",
        ),
    }
)


def ed25519_point_problem(public: bytes) -> str | None:
    """Why 32 bytes are not a usable Ed25519 public key, or ``None``.

    Canonical ``y`` (below p), ``x`` exists (one square root, the RFC 8032
    way: a single exponentiation), consistent sign bit, not of small order.
    """
    encoded = int.from_bytes(public, "little")
    y = encoded & _Y_MASK
    if y >= _P:
        return "not a point of the curve (non-canonical y >= p)"
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vx2 = v * x * x % _P
    if vx2 != u and vx2 != (-u) % _P:
        return "not a point of the curve"
    if u == 0 and encoded >> 255:
        return "not a point of the curve (x = 0 with the sign bit set)"
    if y in SMALL_ORDER_Y:
        return "a small-order point, for which anyone can forge signatures"
    return None


@functools.lru_cache(maxsize=16_384)
def ed25519_public_key(public: bytes) -> Ed25519PublicKey:
    """Parse and fully validate an Ed25519 public key (cached: keys of known
    peers are validated once; the size covers a full QVL trust graph's
    10,000 issuers)."""
    if not isinstance(public, bytes) or len(public) != ED25519_PUBLIC_KEY_SIZE:
        size = len(public) if isinstance(public, (bytes, bytearray)) else type(public).__name__
        raise MalformedMessage(f"Ed25519 public key must be 32 bytes, got {size}")
    problem = ed25519_point_problem(public)
    if problem is not None:
        raise MalformedMessage(f"not a valid Ed25519 public key: {problem}")
    try:
        return Ed25519PublicKey.from_public_bytes(public)
    except ValueError:
        raise MalformedMessage("not a valid Ed25519 public key") from None


def ed25519_sign(own: SigningKeyPair, message: bytes) -> bytes:
    return own.private.sign(message)


def ed25519_verify(public: bytes, signature: bytes, message: bytes, *, what: str) -> None:
    """Verify or raise :class:`AuthenticationFailed` (reason ``invalid_signature``).

    ``what`` names the signed object in the error message.
    """
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise AuthenticationFailed(f"{what}: signature has wrong size", reason="invalid_signature")
    try:
        key = ed25519_public_key(bytes(public))
    except MalformedMessage as exc:
        raise AuthenticationFailed(f"{what}: {exc}", reason="invalid_signature") from None
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise AuthenticationFailed(
            f"{what}: signature does not verify", reason="invalid_signature"
        ) from None


# --------------------------------------------------------------------------
# ML-KEM-768 (FIPS 203)


@dataclass(frozen=True, slots=True)
class KemKeyPair:
    """An ML-KEM-768 decapsulation key (from its 64-byte seed) and its
    1,184-byte encapsulation key."""

    private: MLKEM768PrivateKey = field(repr=False)
    public: bytes

    def seed(self) -> bytes:
        return self.private.private_bytes_raw()


def mlkem_generate(rng: RandomSource) -> KemKeyPair:
    return mlkem_from_seed(rng.random_bytes(MLKEM768_SEED_SIZE))


def mlkem_from_seed(seed: bytes) -> KemKeyPair:
    if len(seed) != MLKEM768_SEED_SIZE:
        raise MalformedMessage(f"ML-KEM-768 seed must be 64 bytes, got {len(seed)}")
    private = MLKEM768PrivateKey.from_seed_bytes(seed)
    return KemKeyPair(private, private.public_key().public_bytes_raw())


def mlkem_public_key(public: bytes) -> MLKEM768PublicKey:
    """Parse an encapsulation key; refuse one of the wrong size or that fails
    the FIPS 203 modulus check."""
    if len(public) != MLKEM768_PUBLIC_KEY_SIZE:
        raise MalformedMessage(
            f"ML-KEM-768 public key must be {MLKEM768_PUBLIC_KEY_SIZE} bytes, got {len(public)}"
        )
    try:
        return MLKEM768PublicKey.from_public_bytes(public)
    except ValueError:
        raise MalformedMessage("ML-KEM-768 public key fails the FIPS 203 check") from None


class Encapsulator(Protocol):
    """ML-KEM-768 encapsulation: ``(shared_secret, ciphertext)``."""

    def __call__(self, public: bytes, rng: RandomSource) -> tuple[bytes, bytes]: ...


def openssl_encapsulate(public: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
    """ML-KEM-768 encapsulation by OpenSSL.

    OpenSSL draws the encapsulation randomness from its own CSPRNG; ``rng``
    is not consulted (see the module docstring).
    """
    del rng
    shared, ciphertext = mlkem_public_key(public).encapsulate()
    return shared, ciphertext


def mlkem_encapsulate(
    public: bytes, rng: RandomSource, encapsulator: Encapsulator | None = None
) -> tuple[bytes, bytes]:
    """Encapsulate to ``public`` with ``encapsulator`` (OpenSSL by default)."""
    return (encapsulator or openssl_encapsulate)(public, rng)


def mlkem_decapsulate(own: KemKeyPair, ciphertext: bytes) -> bytes:
    """Decapsulate.  A ciphertext of the right size always yields 32 bytes
    (FIPS 203 implicit rejection); a wrong ciphertext yields a secret the
    encapsulator does not share, which key confirmation then catches."""
    if len(ciphertext) != MLKEM768_CIPHERTEXT_SIZE:
        raise MalformedMessage(
            f"ML-KEM-768 ciphertext must be {MLKEM768_CIPHERTEXT_SIZE} bytes, got {len(ciphertext)}"
        )
    return own.private.decapsulate(ciphertext)


#: ChaCha20-Poly1305 (RFC 8439) sizes.
AEAD_KEY_SIZE: Final = 32
AEAD_NONCE_SIZE: Final = 12
AEAD_TAG_SIZE: Final = 16


def aead_seal(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """ChaCha20-Poly1305 encryption: ciphertext followed by the 16-byte tag."""
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated_data)


def aead_open(
    key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes, *, what: str
) -> bytes:
    """ChaCha20-Poly1305 decryption; a wrong tag raises AuthenticationFailed
    (reason ``aead``), never returns unauthenticated bytes."""
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag:
        raise AuthenticationFailed(f"{what} does not authenticate", reason="aead") from None
