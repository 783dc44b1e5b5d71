"""Known-answer vectors of the session layer (docs/PROTOCOL.md §6-§8):
the session key schedule on fixed inputs, DATA packets sealed by
Channels on fixed keys, a rotation and a resumption
(:func:`session_vector`, ``session_kat.json``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from l2session.core.lifecycle import resumption, rotation
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.channel import Channel
from l2session.core.link.keyschedule import (
    initial_lineage,
    resumption_keys,
    rotation_keys,
    rotation_resumption_secret,
    rotation_transcript,
    ticket_id,
    ticket_key,
)
from l2session.crypto import primitives
from l2session.crypto.kdf import mac
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.rng import SeededRandom
from l2session.testing.kem import deterministic_encapsulate
from l2session.testing.vectors._format import PER_TURN, VECTOR_FORMAT, VECTOR_NOW, _hex
from l2session.testing.vectors.wire import _KIND_OF, _pattern, json_fields
from l2session.wire.packets import (
    DataPacket,
    ResumePacket,
    decode_packet,
    encode_packet,
)
from l2session.wire.records import (
    Ack,
    Heartbeat,
    HeartbeatAck,
    Message,
    Record,
    RotateDone,
    RotateInit,
    RotateResponse,
    Sync,
    encode_records,
)


def _record_list(records: list[Record]) -> list[dict[str, Any]]:
    return [{"kind": _KIND_OF[type(r)], "fields": json_fields(r)} for r in records]


def _opened(channel: Channel, packet: bytes, expected: list[Record]) -> None:
    decoded = decode_packet(packet)
    assert isinstance(decoded, DataPacket)
    if channel.open(decoded) != expected:
        raise AssertionError("session vector: a sealed DATA packet did not open to its records")


def _key_schedule_part() -> dict[str, Any]:
    """Every session-level derivation on fixed inputs."""
    root, handshake_hash = _pattern(0x00, 32), _pattern(0x20, 32)
    dh, kem_secret, th = _pattern(0x40, 32), _pattern(0x60, 32), _pattern(0x80, 32)
    session_id, secret = _pattern(0xA0, 16), _pattern(0xB0, 32)
    lineage = initial_lineage(root, handshake_hash)
    rotated = rotation_keys(lineage, dh, kem_secret, th)
    rotated_secret = rotation_resumption_secret(lineage, dh, kem_secret, th)
    resumed = resumption_keys(secret, lineage, dh, th)
    resume = ResumePacket(ticket_id(secret), _pattern(0xD0, 32), 1_800_000_000_000, b"")
    tag = mac(ticket_key(secret), resumption._resume_mac_input(resume))
    signed = ResumePacket(resume.ticket_id, resume.ephemeral, resume.timestamp_ms, tag)
    return {
        "inputs": {
            "root_key": _hex(root),
            "handshake_hash": _hex(handshake_hash),
            "dh": _hex(dh),
            "kem_secret": _hex(kem_secret),
            "transcript_hash": _hex(th),
            "session_id": _hex(session_id),
            "rotation_epoch": 1,
            "rotation_parts": [_hex(dh), _hex(kem_secret)],
            "resumption_secret": _hex(secret),
            "resume_ephemeral": _hex(resume.ephemeral),
            "resume_timestamp_ms": resume.timestamp_ms,
            "resume_responder_ephemeral": _hex(_pattern(0xF0, 32)),
        },
        "initial_lineage": _hex(lineage),
        "rotation_transcript": _hex(rotation_transcript(session_id, 1, dh, kem_secret)),
        "rotation_keys": {
            "lineage": _hex(rotated.lineage),
            "root_key": _hex(rotated.root_key),
            "chain_key": _hex(rotated.chain_key),
        },
        "rotation_resumption_secret": _hex(rotated_secret),
        "ticket_id": _hex(ticket_id(secret)),
        "ticket_key": _hex(ticket_key(secret)),
        "resume_mac_input": _hex(resumption._resume_mac_input(resume)),
        "resume_mac": _hex(tag),
        "resume_transcript": _hex(resumption._transcript(signed, _pattern(0xF0, 32))),
        "resumption_keys": {
            "lineage": _hex(resumed.epoch.lineage),
            "root_key": _hex(resumed.epoch.root_key),
            "chain_key": _hex(resumed.epoch.chain_key),
            "next_secret": _hex(resumed.next_secret),
            "responder_confirm": _hex(resumed.responder_confirm),
            "initiator_confirm": _hex(resumed.initiator_confirm),
            "session_id": _hex(resumed.session_id),
        },
    }


def _data_part(rng: SeededRandom) -> dict[str, Any]:
    """Two DATA packets between Channels built on fixed keys: the responder's
    first (no DH step), then the initiator's reply (a DH step)."""
    root, chain = _pattern(0x11, 32), _pattern(0x33, 32)
    associated_data, session_id = _pattern(0x55, 32), _pattern(0x77, 16)
    responder_key = primitives.x25519_from_private(rng.random_bytes(32))
    initiator_key = primitives.x25519_from_private(rng.random_bytes(32))
    responder = DoubleRatchet.for_responder(
        root_key=root,
        chain_key=chain,
        own_ephemeral=responder_key,
        peer_ephemeral=initiator_key.public,
        associated_data=associated_data,
        rng=rng,
    )
    initiator = DoubleRatchet.for_initiator(
        root_key=root,
        chain_key=chain,
        own_ephemeral=initiator_key,
        peer_ephemeral=responder_key.public,
        associated_data=associated_data,
        rng=rng,
    )
    channels = {
        name: Channel(
            session_id=session_id,
            epoch=0,
            ratchet=ratchet,
            lineage=bytes(32),
            keyed_at=VECTOR_NOW,
            step_interval=PER_TURN,
        )
        for name, ratchet in (("responder", responder), ("initiator", initiator))
    }
    script: list[tuple[str, list[Record]]] = [
        (
            "responder",
            [
                Sync(0x0A0B0C0D0E0F1011, 0, 0, 0),
                Message(0, b"hello over l2session"),
                Heartbeat(1),
            ],
        ),
        (
            "initiator",
            [
                Sync(0x2122232425262728, 0, 0x0A0B0C0D0E0F1011, 1),
                HeartbeatAck(1),
                Ack(1),
                Message(0, b"hello back"),
            ],
        ),
    ]
    packets = []
    for sender, records in script:
        ratchet = responder if sender == "responder" else initiator
        packet = channels[sender].seal(records)
        receiver = "initiator" if sender == "responder" else "responder"
        _opened(channels[receiver], packet, records)
        packets.append(
            {
                "sender": sender,
                "records": _record_list(records),
                "plaintext": _hex(encode_records(records)),
                "sender_ratchet_private": _hex(ratchet.snapshot().own_private),
                "packet": _hex(packet),
            }
        )
    return {
        "session_id": _hex(session_id),
        "key_epoch": 0,
        "root_key": _hex(root),
        "chain_key": _hex(chain),
        "associated_data": _hex(associated_data),
        "responder_ratchet_private": _hex(responder_key.private_bytes()),
        "initiator_ratchet_private": _hex(initiator_key.private_bytes()),
        "packets": packets,
    }


def _rotation_part(rng: SeededRandom) -> dict[str, Any]:
    """A complete rotation to key epoch 1 between two Channels, and the
    initiator's first packet under the new epoch."""
    session_id, lineage = _pattern(0x99, 16), _pattern(0x9A, 32)
    signing = {name: primitives.ed25519_generate(rng) for name in ("initiator", "responder")}
    channels = {}
    for name in ("initiator", "responder"):
        ratchet = DoubleRatchet.for_responder(
            root_key=bytes(32),
            chain_key=bytes(32),
            own_ephemeral=primitives.x25519_generate(rng),
            peer_ephemeral=primitives.x25519_generate(rng).public,
            associated_data=session_id,
            rng=rng,
        )
        channels[name] = Channel(
            session_id=session_id,
            epoch=0,
            ratchet=ratchet,
            lineage=lineage,
            keyed_at=VECTOR_NOW,
            step_interval=PER_TURN,
        )
    started = rotation.start(
        channel=channels["initiator"], signing=signing["initiator"], rng=rng, now=VECTOR_NOW
    )
    init = started.record
    assert isinstance(init, RotateInit)
    assert started.ephemeral is not None
    assert started.ephemeral_kem is not None
    ephemeral, ephemeral_kem = started.ephemeral, started.ephemeral_kem
    answered = rotation.respond(
        init,
        channel=channels["responder"],
        signing=signing["responder"],
        peer_signing_key=signing["initiator"].public,
        associated_data=session_id,
        rng=rng,
        now=VECTOR_NOW,
        encapsulator=deterministic_encapsulate,
    )
    response = answered.record
    assert isinstance(response, RotateResponse)
    rotation.complete_initiator(
        started,
        response,
        channel=channels["initiator"],
        peer_signing_key=signing["responder"].public,
        associated_data=session_id,
        rng=rng,
    )
    th_init = rotation_transcript(session_id, init.epoch, init.ephemeral_dh, init.ephemeral_kem)
    th = rotation_transcript(
        session_id,
        init.epoch,
        th_init,
        init.signature,
        response.ephemeral_dh,
        response.kem_ciphertext,
    )
    dh = primitives.x25519(ephemeral, response.ephemeral_dh)
    kem_secret = primitives.mlkem_decapsulate(ephemeral_kem, response.kem_ciphertext)
    keys = rotation_keys(lineage, dh, kem_secret, th)
    if not channels["initiator"].lineage == channels["responder"].lineage == keys.lineage:
        raise AssertionError("session vector: the two sides of the rotation disagree")
    # The ticket the completed rotation issues on both sides (PROTOCOL.md §8.3).
    ticket_secret = rotation_resumption_secret(lineage, dh, kem_secret, th)
    if not started.resumption_secret == answered.resumption_secret == ticket_secret:
        raise AssertionError("session vector: the two sides' rotation tickets disagree")
    if not started.lineage == answered.lineage == keys.lineage:
        raise AssertionError("session vector: the two sides' rotation tickets disagree")
    # The responder's rotation ephemeral is its new ratchet's own key.
    responder_private = channels["responder"]._ratchets[init.epoch].snapshot().own_private
    channels["initiator"].switch_send(init.epoch, VECTOR_NOW)
    done: list[Record] = [RotateDone(init.epoch)]
    packet = channels["initiator"].seal(done)
    _opened(channels["responder"], packet, done)
    return {
        "session_id": _hex(session_id),
        "lineage": _hex(lineage),
        "initiator_signing_public": _hex(signing["initiator"].public),
        "responder_signing_public": _hex(signing["responder"].public),
        "initiator_ephemeral_private": _hex(ephemeral.private_bytes()),
        "initiator_ephemeral_kem_seed": _hex(ephemeral_kem.seed()),
        "responder_ephemeral_private": _hex(responder_private),
        "rotate_init": _hex(encode_records([init])),
        "rotate_response": _hex(encode_records([response])),
        "transcript_init": _hex(th_init),
        "transcript": _hex(th),
        "dh": _hex(dh),
        "kem_secret": _hex(kem_secret),
        "keys": {
            "lineage": _hex(keys.lineage),
            "root_key": _hex(keys.root_key),
            "chain_key": _hex(keys.chain_key),
        },
        "ticket": {
            "resumption_secret": _hex(ticket_secret),
            "lineage": _hex(keys.lineage),
            "ticket_id": _hex(ticket_id(ticket_secret)),
            "ticket_key": _hex(ticket_key(ticket_secret)),
        },
        "rotate_done_packet": _hex(packet),
    }


def _resumption_part(rng: SeededRandom) -> dict[str, Any]:
    """RESUME -> RESUME_ACK for a stored ticket, the keys both sides derive,
    and the responder's first packet in the resumed channel."""
    secret, lineage = _pattern(0xC1, 32), _pattern(0xC2, 32)
    initiator_did = "did:example:initiator"
    responder_did = "did:example:responder"
    issued = VECTOR_NOW - 3600.0
    ours = StoredSession(
        local_did=initiator_did,
        peer_did=responder_did,
        peer_signing_key=_pattern(0xC3, 32),
        resumption_secret=secret,
        lineage=lineage,
        pq_keyed_at=issued,
        issued_at=issued,
    )
    theirs = dataclasses.replace(
        ours, local_did=responder_did, peer_did=initiator_did, peer_signing_key=_pattern(0xC4, 32)
    )
    pending = resumption.start_resume(ours, rng=rng, now=VECTOR_NOW)
    answer = resumption.answer_resume(pending.packet, theirs, rng=rng, now=VECTOR_NOW)
    keys, transcript = resumption.finish_resume(pending, answer.reply)
    if keys != answer.keys or transcript != answer.transcript:
        raise AssertionError("session vector: the two sides of the resumption disagree")
    ratchet = DoubleRatchet.for_responder(
        root_key=keys.epoch.root_key,
        chain_key=keys.epoch.chain_key,
        own_ephemeral=answer.ephemeral,
        peer_ephemeral=pending.packet.ephemeral,
        associated_data=transcript,
        rng=rng,
    )
    channel = Channel(
        session_id=keys.session_id,
        epoch=0,
        ratchet=ratchet,
        lineage=keys.epoch.lineage,
        keyed_at=VECTOR_NOW,
        step_interval=PER_TURN,
    )
    first: list[Record] = [
        Sync(0x3132333435363738, 5, 0x4142434445464748, 7),
        Message(5, b"resumed"),
    ]
    return {
        "resumption_secret": _hex(secret),
        "lineage": _hex(lineage),
        "now": VECTOR_NOW,
        "ticket_id": _hex(ours.ticket_id),
        "ticket_key": _hex(ticket_key(secret)),
        "initiator_ephemeral_private": _hex(pending.ephemeral.private_bytes()),
        "responder_ephemeral_private": _hex(answer.ephemeral.private_bytes()),
        "resume": _hex(encode_packet(pending.packet)),
        "resume_ack": _hex(encode_packet(answer.reply)),
        "transcript": _hex(transcript),
        "keys": {
            "lineage": _hex(keys.epoch.lineage),
            "root_key": _hex(keys.epoch.root_key),
            "chain_key": _hex(keys.epoch.chain_key),
            "next_secret": _hex(keys.next_secret),
            "responder_confirm": _hex(keys.responder_confirm),
            "initiator_confirm": _hex(keys.initiator_confirm),
            "session_id": _hex(keys.session_id),
        },
        "next_ticket_id": _hex(ticket_id(keys.next_secret)),
        "first_packet": {"records": _record_list(first), "packet": _hex(channel.seal(first))},
    }


def session_vector(seed: str = "l2session session kat v1") -> dict[str, Any]:
    """The session key schedule on fixed inputs, sealed DATA packets, a
    rotation and a resumption (docs/PROTOCOL.md §6-§8); every random byte
    from ``SeededRandom(seed)``, ML-KEM encapsulation deterministic."""
    rng = SeededRandom(seed)
    return {
        "format": VECTOR_FORMAT,
        "description": (
            "session key schedule (lineage, rotation, resumption, tickets, RESUME MAC "
            "and transcript) on fixed inputs; DATA packets sealed by Channels on fixed "
            "keys; a rotation and a resumption with every random byte from "
            "SeededRandom(seed) and ML-KEM encapsulation via Encaps_internal"
        ),
        "seed": seed,
        "key_schedule": _key_schedule_part(),
        "data": _data_part(rng),
        "rotation": _rotation_part(rng),
        "resumption": _resumption_part(rng),
    }
