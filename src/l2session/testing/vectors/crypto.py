"""Known-answer vectors of ``crypto/``: a whole PQXDH handshake with a
scripted ratchet conversation (:func:`pqxdh_vector`, ``pqxdh_kat.json``)
and the KDF constructions on fixed inputs (:func:`kdf_vector`,
``kdf_kat.json``, docs/CRYPTO.md §2).
"""

from __future__ import annotations

from typing import Any, Final

from l2session.crypto import primitives
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.kdf import mac
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.testing.kem import deterministic_encapsulate
from l2session.testing.vectors._format import VECTOR_FORMAT, VECTOR_NOW, _hex

# The scripted conversation: (sender, plaintext).  Delivery order is below.
_SCRIPT: Final = (
    ("responder", b"hello initiator"),
    ("initiator", b"hello responder"),
    ("initiator", b"second in chain"),
    ("initiator", b"third in chain"),
    ("responder", b"reply after a DH step"),
    ("initiator", b"after re-seed 1"),
    ("responder", b"after re-seed 2"),
    ("initiator", b""),
    ("initiator", bytes(range(256))),
)
#: Messages 2 and 3 are delivered in swapped order; the re-seed is registered
#: on both sides after message 4 is delivered.
_DELIVERY_ORDER: Final = (0, 1, 3, 2, 4, 5, 6, 7, 8)
_RESEED_AFTER: Final = 4


def pqxdh_vector(seed: str = "l2session kat v1") -> dict[str, Any]:
    """Run the scripted handshake and conversation; return the vector."""
    rng = SeededRandom(seed)
    now = VECTOR_NOW
    resolver = default_resolver()
    policy = PrekeyPolicy(one_time_pool_size=3, one_time_refill_threshold=1)

    initiator = Identity.generate(rng)
    responder = Identity.generate(rng)
    responder_prekeys = PrekeyStore.create(responder, rng=rng, now=now, policy=policy)
    bundle = responder_prekeys.bundle()
    one_time = bundle.pick_one_time(rng)
    assert one_time is not None

    handshake, init = InitiatorHandshake.start(
        local=initiator,
        peer_did=responder.did_text,
        peer_signing_key=resolve_signing_key(resolver, responder.did),
        signed_prekeys=bundle.signed_prekeys,
        one_time_prekey=one_time,
        rng=rng,
        now=now,
        encapsulator=deterministic_encapsulate,
    )
    one_time_private = responder_prekeys.one_time_prekey(one_time.prekey_id).key.private_bytes()
    waiting, response = ResponderHandshake.receive_init(
        init,
        local=responder,
        prekeys=responder_prekeys,
        peer_signing_key=lambda did: resolve_signing_key(resolver, did),
        guard=HandshakeReplayGuard(),
        rng=rng,
        now=now,
        encapsulator=deterministic_encapsulate,
    )
    # Secrets for the vector, read before the handshake objects are done.
    signed_secrets = responder_prekeys.signed_prekeys(bundle.signed_prekeys.prekey_id, now)
    secrets = {
        "initiator_identity_dh_private": _hex(initiator.agreement.private_bytes()),
        "initiator_ephemeral_dh_private": _hex(handshake._ephemeral.private_bytes()),
        "initiator_ephemeral_kem_seed": _hex(handshake._ephemeral_kem.seed()),
        "responder_identity_dh_private": _hex(responder.agreement.private_bytes()),
        "responder_signed_prekey_private": _hex(signed_secrets.signed_prekey.private_bytes()),
        "responder_pq_prekey_seed": _hex(signed_secrets.pq_prekey.seed()),
        "responder_one_time_prekey_private": _hex(one_time_private),
        "responder_ephemeral_dh_private": _hex(waiting._own_ephemeral.private_bytes()),
    }
    initiator_result, finish = handshake.receive_response(response)
    responder_result = waiting.receive_finish(finish)

    ratchets: dict[str, DoubleRatchet] = {
        "initiator": initiator_result.ratchet,
        "responder": responder_result.ratchet,
    }
    peers = {"initiator": "responder", "responder": "initiator"}
    reseed: dict[str, str] = {}
    # Send in script order; after each send deliver, in the scripted order,
    # every message whose turn has come (so DH steps follow real receipt).
    delivered: set[int] = set()
    sent: list[bytes] = []
    for sender, plaintext in _SCRIPT:
        sent.append(ratchets[sender].encrypt(plaintext))
        for target in _DELIVERY_ORDER:
            if target in delivered:
                continue
            if target >= len(sent):
                break
            recipient = peers[_SCRIPT[target][0]]
            received = ratchets[recipient].decrypt(sent[target])
            if received != _SCRIPT[target][1]:
                raise AssertionError(f"vector conversation: message {target} garbled")
            delivered.add(target)
            if target == _RESEED_AFTER and not reseed:
                # The initiator's KEM key; the responder encapsulates and
                # expects; the initiator decapsulates and starts.
                kem = primitives.mlkem_generate(rng)
                secret, ciphertext = deterministic_encapsulate(kem.public, rng)
                ratchets["responder"].expect_pq_reseed(secret)
                ratchets["initiator"].start_pq_reseed(primitives.mlkem_decapsulate(kem, ciphertext))
                reseed = {
                    "kem_public": _hex(kem.public),
                    "kem_ciphertext": _hex(ciphertext),
                    "shared_secret": _hex(secret),
                }
    conversation = [
        {"index": index, "sender": sender, "plaintext": _hex(plaintext), "message": _hex(message)}
        for index, ((sender, plaintext), message) in enumerate(zip(_SCRIPT, sent, strict=True))
    ]

    return {
        "format": VECTOR_FORMAT,
        "description": (
            "PQXDH handshake (with a one-time prekey) and a Double Ratchet "
            "conversation; every random byte from SeededRandom(seed), ML-KEM "
            "encapsulation via FIPS 203 Encaps_internal with m from the same stream"
        ),
        "seed": seed,
        "now": now,
        "initiator": {
            "did": initiator.did_text,
            "signing_public": _hex(initiator.signing_public),
            "identity_dh_public": _hex(initiator.agreement_public),
        },
        "responder": {
            "did": responder.did_text,
            "signing_public": _hex(responder.signing_public),
            "identity_dh_public": _hex(responder.agreement_public),
            "bundle": _hex(bundle.encode()),
        },
        "one_time_prekey_id": one_time.prekey_id,
        "secrets": secrets,
        "handshake": {
            "init": _hex(init),
            "response": _hex(response),
            "finish": _hex(finish),
        },
        "session_id": _hex(initiator_result.session_id),
        "handshake_hash": _hex(initiator_result.handshake_hash),
        "root_key": _hex(initiator_result.root_key),
        "resumption_secret": _hex(initiator_result.resumption_secret),
        "delivery_order": list(_DELIVERY_ORDER),
        "pq_reseed_after_delivery_of": _RESEED_AFTER,
        "pq_reseed": reseed,
        "final_epochs": {side: ratchet.epoch for side, ratchet in ratchets.items()},
        "conversation": conversation,
    }


def kdf_vector() -> dict[str, Any]:
    """Fixed-input vectors for the KDF, chain step, MAC, transcript hash and
    the seeded RNG: they pin the constructions docs/CRYPTO.md defines."""
    from l2session.crypto.kdf import ALL_LABELS, Transcript, chain_step, kdf

    ikm_a = bytes(range(32))
    ikm_b = bytes(range(32, 80))
    transcript = Transcript()
    transcript.absorb(b"first")
    transcript.absorb(b"")
    transcript.absorb(bytes(300))
    next_chain, message_key, nonce = chain_step(ikm_a)
    return {
        "format": VECTOR_FORMAT,
        "description": "KDF(label, parts; L) per label, chain step, MAC, transcript, SeededRandom",
        "inputs": {"a": _hex(ikm_a), "b": _hex(ikm_b)},
        "kdf": {
            label: {
                "a_b_32": _hex(kdf(label, ikm_a, ikm_b)),
                "a_100": _hex(kdf(label, ikm_a, length=100)),
                "empty_32": _hex(kdf(label)),
            }
            for label in ALL_LABELS
        },
        "chain_step_a": {
            "next_chain_key": _hex(next_chain),
            "message_key": _hex(message_key),
            "nonce": _hex(nonce),
        },
        "mac_a_b": _hex(mac(ikm_a, ikm_b)),
        "transcript_first_empty_300zero": _hex(transcript.digest()),
        "seeded_random": {
            "seed": "abc",
            "first_64": _hex(SeededRandom("abc").random_bytes(64)),
        },
    }
