"""Known-answer vectors for the additive protocol extensions.

Kept apart from :mod:`l2session.testing.vectors` so that the original
vector files stay byte-identical: every extension of the wire gets its
vector here, in ``tests/vectors/extensions_kat.json``.

* ``ephemeral_handshake``: a PQXDH handshake whose INIT carries the session
  kind byte (docs/PROTOCOL.md §6.2), with every secret needed to check it.
* ``resume_early``: a 0-RTT first flight (RESUME_EARLY, docs/PROTOCOL.md
  §6.5) for a fixed ticket: ``TH_E``, the early key and nonce, the sealed
  records, and the responder's RESUME_ACK and resumed keys.

Every random byte comes from one :class:`SeededRandom` stream, drawn in the
order the code below draws it (docs/CRYPTO.md §8 specifies the stream and
the order); every private value is also stored in the vector.
"""

from __future__ import annotations

from typing import Any, Final

from l2session.core.lifecycle import early, resumption
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.keyschedule import early_data_key, ticket_key
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.handshake_messages import KIND_EPHEMERAL, HandshakeInit
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.testing.kem import deterministic_encapsulate
from l2session.testing.vectors import json_fields
from l2session.wire.packets import encode_packet
from l2session.wire.records import Message, Record, Sync, encode_records

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


def _pattern(start: int, n: int) -> bytes:
    return bytes((start + i) % 256 for i in range(n))


def _resume_early(seed: str) -> dict[str, Any]:
    """A ticket (``R`` pattern from 0xE1, ``L`` from 0xE2), a RESUME_EARLY
    carrying a SYNC and two messages, and the responder's answer.  Draws:
    the initiator's ephemeral (32), then the responder's (32)."""
    rng = SeededRandom(seed)
    now = EXTENSIONS_NOW
    secret, lineage = _pattern(0xE1, 32), _pattern(0xE2, 32)
    issued = now - 600.0
    ours = StoredSession(
        local_did="did:example:initiator",
        peer_did="did:example:responder",
        peer_signing_key=_pattern(0xE3, 32),
        resumption_secret=secret,
        lineage=lineage,
        pq_keyed_at=issued,
        issued_at=issued,
    )
    records: list[Record] = [
        Sync(0x5152535455565758, 3, 0x6162636465666768, 9),
        Message(3, b"first early message"),
        Message(4, b"second"),
    ]
    pending = resumption.start_resume(ours, rng=rng, now=now)
    flight = early.seal(ours, pending.packet, records)
    raw = encode_packet(flight)
    th_e = early.early_transcript(pending.packet)
    key, nonce = early_data_key(secret, lineage, th_e)
    if early.open_records(ours, flight) != records:
        raise AssertionError("extensions vector: the early data does not open")
    answer = resumption.answer_resume(flight.resume, ours, rng=rng, now=now)
    return {
        "description": (
            "RESUME_EARLY: the RESUME's 90 bytes, then ChaCha20-Poly1305 under "
            "KDF('session early data', R, L, TH_E; 44) with those 90 bytes as AD"
        ),
        "seed": seed,
        "now": now,
        "resumption_secret": secret.hex(),
        "lineage": lineage.hex(),
        "ticket_id": ours.ticket_id.hex(),
        "ticket_key": ticket_key(secret).hex(),
        "initiator_ephemeral_private": pending.ephemeral.private_bytes().hex(),
        "responder_ephemeral_private": answer.ephemeral.private_bytes().hex(),
        "records": [{"kind": type(r).__name__.upper(), "fields": json_fields(r)} for r in records],
        "plaintext": encode_records(records).hex(),
        "early_transcript": th_e.hex(),
        "early_key": key.hex(),
        "early_nonce": nonce.hex(),
        "associated_data": raw[:90].hex(),
        "packet": raw.hex(),
        "resume_ack": encode_packet(answer.reply).hex(),
        "resumed_session_id": answer.keys.session_id.hex(),
    }


def extensions_vector(seed: str = "l2session extensions kat v1") -> dict[str, Any]:
    """Every extension vector (tests/vectors/extensions_kat.json)."""
    return {
        "format": EXTENSIONS_FORMAT,
        "description": ("Additive protocol extensions: the session kind in INIT, 0-RTT resumption"),
        "seed": seed,
        "ephemeral_handshake": _ephemeral_handshake(f"{seed}/ephemeral"),
        "resume_early": _resume_early(f"{seed}/resume early"),
    }
