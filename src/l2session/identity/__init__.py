"""Who a peer is: DIDs, documents, resolvers, identities and prekeys (sans-I/O).

* :mod:`~l2session.identity.did` -- DID syntax and did:key (Ed25519)
* :mod:`~l2session.identity.document` -- DID documents (W3C DID Core JSON)
* :mod:`~l2session.identity.resolver` -- the resolver protocol and registry
* :mod:`~l2session.identity.identity` -- this node's keys
* :mod:`~l2session.identity.bundle` / :mod:`~l2session.identity.prekeys` -- published
  prekeys and their private side, with rotation
* :mod:`~l2session.identity.keyfile` -- the identity key-file format
"""

from l2session.identity.bundle import PrekeyBundle
from l2session.identity.did import Did, did_key_from_ed25519, ed25519_from_did_key
from l2session.identity.document import DidDocument, Service, VerificationMethod, did_key_document
from l2session.identity.identity import Identity
from l2session.identity.keyfile import decode_identity, encode_identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.identity.resolver import (
    DidResolver,
    KeyDidResolver,
    ResolverRegistry,
    default_resolver,
    resolve_signing_key,
)

__all__ = [
    "Did",
    "DidDocument",
    "DidResolver",
    "Identity",
    "KeyDidResolver",
    "PrekeyBundle",
    "PrekeyPolicy",
    "PrekeyStore",
    "ResolverRegistry",
    "Service",
    "VerificationMethod",
    "decode_identity",
    "default_resolver",
    "did_key_document",
    "did_key_from_ed25519",
    "ed25519_from_did_key",
    "encode_identity",
    "resolve_signing_key",
]
