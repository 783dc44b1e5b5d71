"""Signed prekey records: the public keys a DID publishes for PQXDH.

Two kinds of record, each signed by the owner's Ed25519 DID key:

* :class:`SignedPrekeySet` binds, under one signature, the owner's X25519
  identity key, a medium-term X25519 signed prekey and a medium-term
  ML-KEM-768 signed prekey, with a validity period.  They rotate together.
* :class:`OneTimePrekey` is one X25519 key, used by at most one handshake.
  Each carries its own signature so that a node can hand out one at a time.

Both embed the owner's DID, so a record cannot be replayed under another DID
that happens to share the key.  Records are defined in ``crypto`` (not in
``identity``) because the handshake itself verifies them: a key is never used
before its signature has been checked, whatever the caller did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from l2session.codec import Reader, Writer
from l2session.crypto import primitives
from l2session.crypto.primitives import (
    ED25519_SIGNATURE_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    X25519_KEY_SIZE,
    SigningKeyPair,
)
from l2session.errors import AuthenticationFailed, MalformedMessage, PrekeyExpired

RECORD_VERSION: Final = 1
MAX_DID_BYTES: Final = 512
_SIGNED_SET_CONTEXT: Final = b"l2session v1 signed prekeys\x00"
_ONE_TIME_CONTEXT: Final = b"l2session v1 one-time prekey\x00"


def to_millis(now: float) -> int:
    """Wall-clock seconds to the integer milliseconds used on the wire."""
    return int(now * 1000)


@dataclass(frozen=True, slots=True)
class SignedPrekeySet:
    """Identity X25519 key + signed X25519 prekey + signed ML-KEM-768 prekey."""

    owner_did: str
    identity_dh: bytes
    prekey_id: int
    signed_prekey: bytes
    pq_prekey: bytes
    created_ms: int
    expires_ms: int
    signature: bytes
    #: The signed body, computed once: the handshake hashes and verifies it.
    body: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", self._encode_body())

    @classmethod
    def create(
        cls,
        *,
        owner_did: str,
        signing: SigningKeyPair,
        identity_dh: bytes,
        prekey_id: int,
        signed_prekey: bytes,
        pq_prekey: bytes,
        created_ms: int,
        expires_ms: int,
    ) -> SignedPrekeySet:
        unsigned = cls(
            owner_did, identity_dh, prekey_id, signed_prekey, pq_prekey, created_ms, expires_ms, b""
        )
        signature = primitives.ed25519_sign(signing, _SIGNED_SET_CONTEXT + unsigned.body)
        return cls(
            owner_did,
            identity_dh,
            prekey_id,
            signed_prekey,
            pq_prekey,
            created_ms,
            expires_ms,
            signature,
        )

    def _encode_body(self) -> bytes:
        out = Writer().u8(RECORD_VERSION)
        out.text16(self.owner_did, "owner did", max_len=MAX_DID_BYTES)
        out.fixed(self.identity_dh, X25519_KEY_SIZE, "identity key")
        out.u32(self.prekey_id)
        out.fixed(self.signed_prekey, X25519_KEY_SIZE, "signed prekey")
        out.fixed(self.pq_prekey, MLKEM768_PUBLIC_KEY_SIZE, "pq prekey")
        out.u64(self.created_ms).u64(self.expires_ms)
        return out.getvalue()

    def encode(self) -> bytes:
        return self.body + self.signature

    @classmethod
    def read(cls, r: Reader) -> SignedPrekeySet:
        version = r.u8("signed prekeys version")
        if version != RECORD_VERSION:
            raise MalformedMessage(f"signed prekey record version {version} is not supported")
        owner = r.text16("owner did", max_len=MAX_DID_BYTES)
        identity_dh = r.fixed(X25519_KEY_SIZE, "identity key")
        prekey_id = r.u32("prekey id")
        signed_prekey = r.fixed(X25519_KEY_SIZE, "signed prekey")
        pq_prekey = r.fixed(MLKEM768_PUBLIC_KEY_SIZE, "pq prekey")
        created, expires = r.u64("created"), r.u64("expires")
        signature = r.fixed(ED25519_SIGNATURE_SIZE, "signature")
        if expires <= created:
            raise MalformedMessage("signed prekey record expires before it was created")
        return cls(
            owner, identity_dh, prekey_id, signed_prekey, pq_prekey, created, expires, signature
        )

    @classmethod
    def decode(cls, data: bytes) -> SignedPrekeySet:
        r = Reader(data, "signed prekey record")
        record = cls.read(r)
        r.finish()
        return record

    def verify(self, signing_public: bytes, *, owner_did: str, now: float) -> None:
        """Check owner, signature and validity period, or raise.

        :class:`AuthenticationFailed` for a wrong owner or signature,
        :class:`PrekeyExpired` once ``now`` is past ``expires_ms``.
        """
        if self.owner_did != owner_did:
            raise AuthenticationFailed(
                f"signed prekeys belong to {self.owner_did!r}, not {owner_did!r}",
                reason="invalid_signature",
            )
        primitives.ed25519_verify(
            signing_public,
            self.signature,
            _SIGNED_SET_CONTEXT + self.body,
            what="signed prekeys",
        )
        if to_millis(now) >= self.expires_ms:
            raise PrekeyExpired(
                f"signed prekeys {self.prekey_id} of {owner_did!r} expired; fetch a fresh bundle"
            )


@dataclass(frozen=True, slots=True)
class OneTimePrekey:
    """One signed, single-use X25519 prekey."""

    owner_did: str
    prekey_id: int
    public: bytes
    signature: bytes
    #: The signed body, computed once.
    body: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", self._encode_body())

    @classmethod
    def create(
        cls, *, owner_did: str, signing: SigningKeyPair, prekey_id: int, public: bytes
    ) -> OneTimePrekey:
        unsigned = cls(owner_did, prekey_id, public, b"")
        signature = primitives.ed25519_sign(signing, _ONE_TIME_CONTEXT + unsigned.body)
        return cls(owner_did, prekey_id, public, signature)

    def _encode_body(self) -> bytes:
        out = Writer().u8(RECORD_VERSION)
        out.text16(self.owner_did, "owner did", max_len=MAX_DID_BYTES)
        out.u32(self.prekey_id).fixed(self.public, X25519_KEY_SIZE, "one-time prekey")
        return out.getvalue()

    def encode(self) -> bytes:
        return self.body + self.signature

    @classmethod
    def read(cls, r: Reader) -> OneTimePrekey:
        version = r.u8("one-time prekey version")
        if version != RECORD_VERSION:
            raise MalformedMessage(f"one-time prekey record version {version} is not supported")
        owner = r.text16("owner did", max_len=MAX_DID_BYTES)
        prekey_id = r.u32("prekey id")
        public = r.fixed(X25519_KEY_SIZE, "one-time prekey")
        signature = r.fixed(ED25519_SIGNATURE_SIZE, "signature")
        return cls(owner, prekey_id, public, signature)

    @classmethod
    def decode(cls, data: bytes) -> OneTimePrekey:
        r = Reader(data, "one-time prekey record")
        record = cls.read(r)
        r.finish()
        return record

    def verify(self, signing_public: bytes, *, owner_did: str) -> None:
        if self.owner_did != owner_did:
            raise AuthenticationFailed(
                f"one-time prekey belongs to {self.owner_did!r}, not {owner_did!r}",
                reason="invalid_signature",
            )
        primitives.ed25519_verify(
            signing_public,
            self.signature,
            _ONE_TIME_CONTEXT + self.body,
            what="one-time prekey",
        )
