"""Known-answer vectors for the additive protocol extensions.

Kept apart from :mod:`l2session.testing.vectors` so that the original
vector files stay byte-identical: every extension of the wire gets its
vector here, in ``tests/vectors/extensions_kat.json``.

* ``ephemeral_handshake``: a PQXDH handshake whose INIT carries the session
  kind byte (docs/PROTOCOL.md §2.1), with every secret needed to check it.

Every random byte comes from one :class:`SeededRandom` stream, drawn in the
order the code below draws it (docs/CRYPTO.md §8 specifies the stream and
the order); every private value is also stored in the vector.
"""

from __future__ import annotations

from typing import Any, Final

from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.handshake_messages import KIND_EPHEMERAL, HandshakeInit
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.testing.kem import deterministic_encapsulate

EXTENSIONS_FORMAT: Final = "l2session-extensions-kat-1"
#: 2027-01-15T08:00:00Z, like the other vectors.
EXTENSIONS_NOW: Final = 1_800_000_000.0


def _ephemeral_handshake(seed: str) -> dict[str, Any]:
    """A handshake without a one-time prekey whose INIT asks for an
    ephemeral session: identities, prekeys, INIT, RESPONSE and FINISH from
    one seeded stream, in that order."""
    rng = SeededRandom(seed)
    now = EXTENSIONS_NOW
    resolver = default_resolver()
    initiator = Identity.generate(rng)
    responder = Identity.generate(rng)
    policy = PrekeyPolicy(one_time_pool_size=1, one_time_refill_threshold=0)
    prekeys = PrekeyStore.create(responder, rng=rng, now=now, policy=policy)
    bundle = prekeys.bundle()
    handshake, init = InitiatorHandshake.start(
        local=initiator,
        peer_did=responder.did_text,
        peer_signing_key=resolve_signing_key(resolver, responder.did),
        signed_prekeys=bundle.signed_prekeys,
        one_time_prekey=None,
        rng=rng,
        now=now,
        encapsulator=deterministic_encapsulate,
        session_kind=KIND_EPHEMERAL,
    )
    waiting, response = ResponderHandshake.receive_init(
        init,
        local=responder,
        prekeys=prekeys,
        peer_signing_key=lambda did: resolve_signing_key(resolver, did),
        guard=HandshakeReplayGuard(),
        rng=rng,
        now=now,
        encapsulator=deterministic_encapsulate,
    )
    signed = prekeys.signed_prekeys(bundle.signed_prekeys.prekey_id, now)
    secrets = {
        "initiator_signing_seed": initiator.signing.seed().hex(),
        "responder_signing_seed": responder.signing.seed().hex(),
        "responder_identity_dh_private": responder.agreement.private_bytes().hex(),
        "initiator_identity_dh_private": initiator.agreement.private_bytes().hex(),
        "initiator_ephemeral_dh_private": handshake._ephemeral.private_bytes().hex(),
        "initiator_ephemeral_kem_seed": handshake._ephemeral_kem.seed().hex(),
        "responder_signed_prekey_private": signed.signed_prekey.private_bytes().hex(),
        "responder_pq_prekey_seed": signed.pq_prekey.seed().hex(),
        "responder_ephemeral_dh_private": waiting._own_ephemeral.private_bytes().hex(),
    }
    result, finish = handshake.receive_response(response)
    waiting.receive_finish(finish)
    decoded = HandshakeInit.decode(init)
    # The kind byte sits right before the 64-byte signature.
    kind_offset = len(init) - 64 - 1
    return {
        "description": (
            "PQXDH INIT with the session kind byte 0x01 (ephemeral) between the "
            "timestamp and the signature; no one-time prekey"
        ),
        "seed": seed,
        "now": now,
        "initiator_did": initiator.did_text,
        "responder_did": responder.did_text,
        "responder_bundle": bundle.encode().hex(),
        "secrets": secrets,
        "session_kind": decoded.session_kind,
        "kind_byte_offset": kind_offset,
        "init": init.hex(),
        "response": response.hex(),
        "finish": finish.hex(),
        "session_id": result.session_id.hex(),
        "handshake_hash": result.handshake_hash.hex(),
        "root_key": result.root_key.hex(),
        "resumption_secret": result.resumption_secret.hex(),
    }


def extensions_vector(seed: str = "l2session extensions kat v1") -> dict[str, Any]:
    """Every extension vector (tests/vectors/extensions_kat.json)."""
    return {
        "format": EXTENSIONS_FORMAT,
        "description": "Additive protocol extensions: the session kind in INIT",
        "seed": seed,
        "ephemeral_handshake": _ephemeral_handshake(f"{seed}/ephemeral"),
    }
