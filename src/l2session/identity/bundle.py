"""The prekey bundle a DID publishes so that others can open sessions to it.

A bundle holds the DID, its Ed25519 identity key, one :class:`SignedPrekeySet`
(X25519 identity key, signed X25519 prekey, signed ML-KEM-768 prekey) and a
pool of signed :class:`OneTimePrekey` records.  It is self-authenticating:
whoever relays it (a directory, a discovery response, the peer itself) cannot
alter it without breaking a signature, and its Ed25519 key is trusted only
once it matches the key the DID itself is proven by (did:key decoding or the
resolver).

The handshake verifies the two records it uses no matter what; use
:meth:`PrekeyBundle.verify` to check a whole bundle when it is fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from l2session.codec import Reader, Writer
from l2session.crypto.prekey_records import (
    MAX_DID_BYTES,
    RECORD_VERSION,
    OneTimePrekey,
    SignedPrekeySet,
)
from l2session.crypto.primitives import ED25519_PUBLIC_KEY_SIZE, ct_equal
from l2session.crypto.rng import RandomSource
from l2session.errors import AuthenticationFailed, MalformedMessage
from l2session.identity.did import Did
from l2session.identity.resolver import DidResolver, resolve_signing_key

#: Most one-time prekeys one bundle may carry (about 190 KB at 1,000).
MAX_BUNDLE_ONE_TIME_PREKEYS: Final = 1000
#: Largest encoded bundle accepted, bounded by the fields above.
MAX_BUNDLE_SIZE: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class PrekeyBundle:
    """The public half of a node's prekeys, as published."""

    did: Did
    signing_key: bytes
    signed_prekeys: SignedPrekeySet
    one_time_prekeys: tuple[OneTimePrekey, ...] = ()

    def __post_init__(self) -> None:
        owner = str(self.did)
        if self.signed_prekeys.owner_did != owner:
            raise MalformedMessage("prekey bundle: signed prekeys belong to another DID")
        if any(record.owner_did != owner for record in self.one_time_prekeys):
            raise MalformedMessage("prekey bundle: a one-time prekey belongs to another DID")
        if len(self.one_time_prekeys) > MAX_BUNDLE_ONE_TIME_PREKEYS:
            raise MalformedMessage(
                f"prekey bundle carries {len(self.one_time_prekeys)} one-time prekeys; "
                f"at most {MAX_BUNDLE_ONE_TIME_PREKEYS} are allowed"
            )
        ids = [record.prekey_id for record in self.one_time_prekeys]
        if len(set(ids)) != len(ids):
            raise MalformedMessage("prekey bundle: duplicate one-time prekey id")

    # ----------------------------------------------------------------------

    def encode(self) -> bytes:
        out = Writer().u8(RECORD_VERSION)
        out.text16(str(self.did), "did", max_len=MAX_DID_BYTES)
        out.fixed(self.signing_key, ED25519_PUBLIC_KEY_SIZE, "signing key")
        out.raw(self.signed_prekeys.encode())
        out.u16(len(self.one_time_prekeys))
        for record in self.one_time_prekeys:
            out.raw(record.encode())
        return out.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> PrekeyBundle:
        if len(data) > MAX_BUNDLE_SIZE:
            raise MalformedMessage(f"prekey bundle of {len(data)} bytes exceeds {MAX_BUNDLE_SIZE}")
        r = Reader(data, "prekey bundle")
        version = r.u8("version")
        if version != RECORD_VERSION:
            raise MalformedMessage(f"prekey bundle version {version} is not supported")
        did_text = r.text16("did", max_len=MAX_DID_BYTES)
        try:
            did = Did.parse(did_text)
        except ValueError as exc:
            raise MalformedMessage(f"prekey bundle: {exc}") from None
        signing_key = r.fixed(ED25519_PUBLIC_KEY_SIZE, "signing key")
        signed = SignedPrekeySet.read(r)
        count = r.u16("one-time prekey count")
        if count > MAX_BUNDLE_ONE_TIME_PREKEYS:
            raise MalformedMessage(f"prekey bundle announces {count} one-time prekeys")
        one_time = tuple(OneTimePrekey.read(r) for _ in range(count))
        r.finish()
        return cls(did, signing_key, signed, one_time)

    # ----------------------------------------------------------------------

    def check_signing_key(self, proven_key: bytes) -> None:
        """Refuse the bundle unless its Ed25519 key is the one the DID is
        proven by (from :func:`~l2session.identity.resolver.resolve_signing_key`)."""
        if not ct_equal(self.signing_key, proven_key):
            raise AuthenticationFailed(
                f"prekey bundle of {self.did} carries a key that is not the DID's key",
                reason="invalid_signature",
            )

    def verify(self, resolver: DidResolver, *, now: float) -> None:
        """Check the whole bundle: the DID's key via ``resolver``, then every
        signature and the validity period.  Raises typed errors."""
        self.check_signing_key(resolve_signing_key(resolver, self.did))
        owner = str(self.did)
        self.signed_prekeys.verify(self.signing_key, owner_did=owner, now=now)
        for record in self.one_time_prekeys:
            record.verify(self.signing_key, owner_did=owner)

    def pick_one_time(self, rng: RandomSource) -> OneTimePrekey | None:
        """A uniformly random one-time prekey, or ``None`` if the pool is empty.

        Random choice makes two initiators holding the same bundle unlikely to
        pick the same key (the second would be refused as already used).
        """
        count = len(self.one_time_prekeys)
        if count == 0:
            return None
        index = int.from_bytes(rng.random_bytes(8), "big") % count
        return self.one_time_prekeys[index]

    def without_one_time(self, prekey_id: int) -> PrekeyBundle:
        """This bundle with one one-time prekey removed (after using it)."""
        remaining = tuple(r for r in self.one_time_prekeys if r.prekey_id != prekey_id)
        return PrekeyBundle(self.did, self.signing_key, self.signed_prekeys, remaining)
