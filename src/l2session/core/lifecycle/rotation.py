"""In-session key rotation: a fresh hybrid key agreement, signed by both DIDs.

At key age ``ttl - rotation_window`` (or when the volume limit is reached)
one side sends ROTATE_INIT with fresh X25519 and ML-KEM-768 keys; the peer
answers ROTATE_RESPONSE with its fresh X25519 key and an ML-KEM ciphertext.
Both records travel inside the current encrypted channel *and* carry an
Ed25519 signature by the sender's DID key over the rotation transcript, so
an attacker who stole the current session keys still cannot substitute
their own rotation keys: rotation heals a key compromise (SPEC-018 §7.1).

The new epoch's keys are ``rotation_keys(lineage, DH(eA, eB), SS, TH)``;
the same inputs under their own label give the resumption secret of the
ticket both sides store once the rotation is complete
(``rotation_resumption_secret``), so a session resumes with the rotation's
keying, not the handshake's.
The initiator switches sending to the new epoch as soon as it has the
response (the peer already holds the new keys); the peer switches when the
first new-epoch packet arrives.  Each side's rotation is complete once it
has *received* a packet under the new epoch, and until then the old epoch
stays installed, so messages in flight in either direction still decrypt:
nothing is lost, and delivery's sequence numbers mean nothing is doubled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from l2session.core.link.channel import Channel
from l2session.core.link.keyschedule import (
    ROTATE_INIT_CONTEXT,
    ROTATE_RESPONSE_CONTEXT,
    rotation_keys,
    rotation_resumption_secret,
    rotation_transcript,
)
from l2session.crypto import primitives
from l2session.crypto.primitives import DhKeyPair, Encapsulator, KemKeyPair, SigningKeyPair
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.rng import RandomSource
from l2session.errors import HandshakeError
from l2session.wire.records import RotateInit, RotateResponse


@dataclass(slots=True)
class Rotation:
    """One rotation in progress, on either side."""

    epoch: int
    initiator: bool
    started_at: float
    #: The record to resend until the peer answers (INIT, or the cached
    #: RESPONSE for a repeated INIT).
    record: RotateInit | RotateResponse
    ephemeral: DhKeyPair | None = field(default=None, repr=False)
    ephemeral_kem: KemKeyPair | None = field(default=None, repr=False)
    #: The peer holds the new keys (initiator: response processed).
    keys_ready: bool = False
    #: This side now sends under the new epoch.
    switched: bool = False
    resend_at: float = 0.0
    #: Transmissions of this side's current rotation record (backoff).
    sends: int = 0
    #: Set with the new epoch's keys: the lineage ``L'`` and the resumption
    #: secret of the ticket this rotation issues when it completes.
    lineage: bytes | None = field(default=None, repr=False)
    resumption_secret: bytes | None = field(default=None, repr=False)


def _transcript_init(session_id: bytes, record: RotateInit) -> bytes:
    return rotation_transcript(session_id, record.epoch, record.ephemeral_dh, record.ephemeral_kem)


def start(
    *,
    channel: Channel,
    signing: SigningKeyPair,
    rng: RandomSource,
    now: float,
) -> Rotation:
    """Build ROTATE_INIT for the next epoch."""
    epoch = channel.newest_epoch + 1
    ephemeral = primitives.x25519_generate(rng)
    ephemeral_kem = primitives.mlkem_generate(rng)
    unsigned = RotateInit(epoch, ephemeral.public, ephemeral_kem.public, b"")
    signature = primitives.ed25519_sign(
        signing, ROTATE_INIT_CONTEXT + _transcript_init(channel.session_id, unsigned)
    )
    record = RotateInit(epoch, ephemeral.public, ephemeral_kem.public, signature)
    return Rotation(
        epoch=epoch,
        initiator=True,
        started_at=now,
        record=record,
        ephemeral=ephemeral,
        ephemeral_kem=ephemeral_kem,
    )


def respond(
    record: RotateInit,
    *,
    channel: Channel,
    signing: SigningKeyPair,
    peer_signing_key: bytes,
    associated_data: bytes,
    rng: RandomSource,
    now: float,
    encapsulator: Encapsulator | None = None,
) -> Rotation:
    """Verify ROTATE_INIT, install the new epoch (receive side ready), and
    build the signed ROTATE_RESPONSE.  Nothing changes if verification fails."""
    if record.epoch != channel.newest_epoch + 1:
        raise HandshakeError(
            f"rotation to epoch {record.epoch} does not follow epoch {channel.newest_epoch}"
        )
    th_init = _transcript_init(channel.session_id, record)
    primitives.ed25519_verify(
        peer_signing_key,
        record.signature,
        ROTATE_INIT_CONTEXT + th_init,
        what="rotation request",
    )
    ephemeral = primitives.x25519_generate(rng)
    secret, ciphertext = primitives.mlkem_encapsulate(record.ephemeral_kem, rng, encapsulator)
    th = rotation_transcript(
        channel.session_id, record.epoch, th_init, record.signature, ephemeral.public, ciphertext
    )
    signature = primitives.ed25519_sign(signing, ROTATE_RESPONSE_CONTEXT + th)
    dh = primitives.x25519(ephemeral, record.ephemeral_dh)
    keys = rotation_keys(channel.lineage, dh, secret, th)
    ticket_secret = rotation_resumption_secret(channel.lineage, dh, secret, th)
    ratchet = DoubleRatchet.for_responder(
        root_key=keys.root_key,
        chain_key=keys.chain_key,
        own_ephemeral=ephemeral,
        peer_ephemeral=record.ephemeral_dh,
        associated_data=associated_data,
        rng=rng,
    )
    channel.install(record.epoch, ratchet, keys.lineage)
    response = RotateResponse(record.epoch, ephemeral.public, ciphertext, signature)
    return Rotation(
        epoch=record.epoch,
        initiator=False,
        started_at=now,
        record=response,
        keys_ready=True,
        lineage=keys.lineage,
        resumption_secret=ticket_secret,
    )


def complete_initiator(
    rotation: Rotation,
    response: RotateResponse,
    *,
    channel: Channel,
    peer_signing_key: bytes,
    associated_data: bytes,
    rng: RandomSource,
) -> None:
    """Verify ROTATE_RESPONSE and install the new epoch."""
    init = rotation.record
    if not isinstance(init, RotateInit) or rotation.keys_ready:
        raise HandshakeError("no rotation request is waiting for a response")
    if response.epoch != rotation.epoch:
        raise HandshakeError(f"rotation response for epoch {response.epoch}, not {rotation.epoch}")
    assert rotation.ephemeral is not None
    assert rotation.ephemeral_kem is not None
    th_init = _transcript_init(channel.session_id, init)
    th = rotation_transcript(
        channel.session_id,
        rotation.epoch,
        th_init,
        init.signature,
        response.ephemeral_dh,
        response.kem_ciphertext,
    )
    primitives.ed25519_verify(
        peer_signing_key,
        response.signature,
        ROTATE_RESPONSE_CONTEXT + th,
        what="rotation response",
    )
    secret = primitives.mlkem_decapsulate(rotation.ephemeral_kem, response.kem_ciphertext)
    dh = primitives.x25519(rotation.ephemeral, response.ephemeral_dh)
    keys = rotation_keys(channel.lineage, dh, secret, th)
    ticket_secret = rotation_resumption_secret(channel.lineage, dh, secret, th)
    ratchet = DoubleRatchet.for_initiator(
        root_key=keys.root_key,
        chain_key=keys.chain_key,
        own_ephemeral=rotation.ephemeral,
        peer_ephemeral=response.ephemeral_dh,
        associated_data=associated_data,
        rng=rng,
    )
    channel.install(rotation.epoch, ratchet, keys.lineage)
    rotation.keys_ready = True
    rotation.lineage = keys.lineage
    rotation.resumption_secret = ticket_secret
    rotation.ephemeral = None
    rotation.ephemeral_kem = None
