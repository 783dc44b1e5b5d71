"""A node's own identity: its DID and the two long-term keys behind it.

* The Ed25519 signing key *is* the DID's key: for ``did:key`` the DID is
  derived from it; for other methods the DID document lists it.  It signs the
  prekey bundle and every handshake this node takes part in.
* The X25519 identity key (``IK``) takes part in PQXDH.  It is a separate key
  (no Ed25519-to-X25519 conversion, no key reused across algorithms) bound to
  the DID by the signed prekey record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from l2session.crypto import primitives
from l2session.crypto.primitives import DhKeyPair, SigningKeyPair
from l2session.crypto.rng import RandomSource
from l2session.errors import IdentityError
from l2session.identity.did import Did, did_key_from_ed25519, ed25519_from_did_key


@dataclass(frozen=True, slots=True)
class Identity:
    """Private identity of a node.  ``repr`` shows the DID only."""

    did: Did
    signing: SigningKeyPair = field(repr=False)
    agreement: DhKeyPair = field(repr=False)
    #: The DID as text (what handshakes and records carry); computed once.
    did_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.did.method == "key" and ed25519_from_did_key(self.did) != self.signing.public:
            raise IdentityError(f"{self.did} is not the did:key of this identity's signing key")
        object.__setattr__(self, "did_text", str(self.did))

    @classmethod
    def generate(cls, rng: RandomSource, did: Did | str | None = None) -> Identity:
        """A new identity.  Without ``did`` it is the ``did:key`` of the new
        signing key; with one (say ``did:web:example.org``) the caller is
        responsible for publishing the signing key in that DID's document."""
        signing = primitives.ed25519_generate(rng)
        agreement = primitives.x25519_generate(rng)
        return cls.from_keys(signing, agreement, did)

    @classmethod
    def from_secrets(
        cls, signing_seed: bytes, agreement_private: bytes, did: Did | str | None = None
    ) -> Identity:
        """Rebuild an identity from its two 32-byte secrets (for key files)."""
        return cls.from_keys(
            primitives.ed25519_from_seed(signing_seed),
            primitives.x25519_from_private(agreement_private),
            did,
        )

    @classmethod
    def from_keys(
        cls, signing: SigningKeyPair, agreement: DhKeyPair, did: Did | str | None = None
    ) -> Identity:
        if did is None:
            resolved = did_key_from_ed25519(signing.public)
        elif isinstance(did, str):
            resolved = Did.parse(did)
        else:
            resolved = did
        return cls(resolved, signing, agreement)

    @property
    def signing_public(self) -> bytes:
        return self.signing.public

    @property
    def agreement_public(self) -> bytes:
        return self.agreement.public
