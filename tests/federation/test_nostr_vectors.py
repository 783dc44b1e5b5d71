"""Known answers for the bytes docs/PROTOCOL.md §16 fixes: the node's Nostr
key derivation and the DID link statement (gift wraps themselves are
randomised by NIP-44/NIP-59 and have no fixed bytes)."""

from __future__ import annotations

import blake3

from l2session.crypto import primitives
from l2session.identity.identity import Identity

SEED = bytes(range(32))
AGREEMENT = bytes(range(32, 64))
DID = "did:key:z6MkehRgf7yJbgaGfYsdoAsKdBPE3dj2CYhowQdcjqSJgvVd"
SECRET = "75b540e09882ae0bfd127909cffb0a7a01e8c9d762a2d838b69b422fcec80daa"
PUBLIC = "43724fe304caf28089a761943a23247c934996c805b769e63cef831a12b19803"
LINK_SIGNATURE = (
    "5016411a1ab6d59bfad4646b76e567696611ffb47cd4574605bcccacf91b6781"
    "531ed4aed28ccb379359196e21ea1eddf279423aafa1c1c3424b8e77961f4a09"
)


def test_the_nostr_key_is_the_documented_derivation_of_the_identity_seed() -> None:
    from l2session.bridges import nostr_adapter

    # PROTOCOL.md §16, written out with blake3 alone:
    spec = blake3.blake3(SEED, derive_key_context="l2session 2026-12 nostr secret key v1")
    assert spec.hexdigest() == SECRET
    assert nostr_adapter.derive_secret(SEED).hex() == SECRET
    assert nostr_adapter.NostrKeys(bytes.fromhex(SECRET)).public_hex == PUBLIC


def test_the_did_link_statement_and_its_signature_are_byte_exact() -> None:
    from l2session.bridges.nostr import link_message

    identity = Identity.from_secrets(SEED, AGREEMENT)
    assert identity.did_text == DID
    message = link_message(DID, PUBLIC)
    assert message == b"l2session nostr link v1\n" + DID.encode() + b"\n" + PUBLIC.encode()
    assert primitives.ed25519_sign(identity.signing, message).hex() == LINK_SIGNATURE
