"""Session key schedule above the handshake: lineage, rotation, resumption.

A session's keys come in *key epochs*.  Epoch 0 comes from a full PQXDH
handshake; each rotation and each resumption derives the next epoch from
the session *lineage key* and fresh secrets, so the root key of every epoch
depends on everything before it (DESIGN.md §2.3: "mixes the new secrets into
the root key") while the fresh secrets give post-compromise security.

    lineage_0            = KDF("session lineage", root_key, handshake_hash)
    rotation:  L' || root || chain = KDF("session rotation", L, DH(eA,eB), SS, TH; 96)
               R (its ticket)      = KDF("session rotation resumption", L, DH(eA,eB), SS, TH)
    resumption: L' || root || chain || next || kc_B || kc_A
                         = KDF("session resumption", R, L, DH(eA,eB), TH; 192)

``TH`` is the BLAKE3 hash of the signed rotation records (or of the RESUME
exchange), so both sides derive only if they saw the same bytes.  Every
derivation uses the one KDF of docs/CRYPTO.md (BLAKE3 derive-key over
length-prefixed parts) with its own label; docs/PROTOCOL.md §5-§8 specifies
them and tests/vectors/session_kat.json pins them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from l2session.crypto.kdf import fingerprint, kdf

LABEL_LINEAGE: Final = "session lineage"
LABEL_ROTATION: Final = "session rotation"
LABEL_ROTATION_RESUMPTION: Final = "session rotation resumption"
LABEL_RESUMPTION: Final = "session resumption"
LABEL_TICKET_ID: Final = "resumption ticket id"
LABEL_TICKET_KEY: Final = "resumption ticket key"
LABEL_RESUMED_ID: Final = "resumed session id"
LABEL_EARLY_DATA: Final = "session early data"
#: Domain separators for the rotation signatures.
ROTATE_INIT_CONTEXT: Final = b"l2session v1 rotate init\x00"
ROTATE_RESPONSE_CONTEXT: Final = b"l2session v1 rotate response\x00"


@dataclass(frozen=True, slots=True)
class EpochKeys:
    """What one key epoch starts from."""

    lineage: bytes = field(repr=False)
    root_key: bytes = field(repr=False)
    chain_key: bytes = field(repr=False)


def initial_lineage(root_key: bytes, handshake_hash: bytes) -> bytes:
    return kdf(LABEL_LINEAGE, root_key, handshake_hash)


def rotation_keys(
    lineage: bytes, dh: bytes, kem_secret: bytes, transcript_hash: bytes
) -> EpochKeys:
    out = kdf(LABEL_ROTATION, lineage, dh, kem_secret, transcript_hash, length=96)
    return EpochKeys(out[:32], out[32:64], out[64:])


def rotation_resumption_secret(
    lineage: bytes, dh: bytes, kem_secret: bytes, transcript_hash: bytes
) -> bytes:
    """The resumption secret a completed rotation issues its ticket from:
    the same inputs as :func:`rotation_keys` under its own label, so the
    ticket carries the rotation's post-quantum freshness and stays
    independent of the epoch's keys."""
    return kdf(LABEL_ROTATION_RESUMPTION, lineage, dh, kem_secret, transcript_hash)


def rotation_transcript(session_id: bytes, epoch: int, *parts: bytes) -> bytes:
    """The hash a rotation's signatures and keys are bound to."""
    return fingerprint(session_id, epoch.to_bytes(4, "big"), *parts)


@dataclass(frozen=True, slots=True)
class ResumptionKeys:
    epoch: EpochKeys
    next_secret: bytes = field(repr=False)
    responder_confirm: bytes = field(repr=False)
    initiator_confirm: bytes = field(repr=False)
    session_id: bytes


def ticket_id(resumption_secret: bytes) -> bytes:
    """Public name of a resumption ticket (reveals nothing about the secret)."""
    return kdf(LABEL_TICKET_ID, resumption_secret, length=16)


def ticket_key(resumption_secret: bytes) -> bytes:
    return kdf(LABEL_TICKET_KEY, resumption_secret)


def resumption_keys(
    resumption_secret: bytes, lineage: bytes, dh: bytes, transcript_hash: bytes
) -> ResumptionKeys:
    out = kdf(LABEL_RESUMPTION, resumption_secret, lineage, dh, transcript_hash, length=192)
    return ResumptionKeys(
        epoch=EpochKeys(out[:32], out[32:64], out[64:96]),
        next_secret=out[96:128],
        responder_confirm=out[128:160],
        initiator_confirm=out[160:192],
        session_id=kdf(LABEL_RESUMED_ID, transcript_hash, length=16),
    )


def early_data_key(
    resumption_secret: bytes, lineage: bytes, early_transcript: bytes
) -> tuple[bytes, bytes]:
    """``(key, nonce)`` sealing 0-RTT records in a RESUME_EARLY packet:
    ``KDF("session early data", R, L, TH_E; 44)``.  ``TH_E`` hashes the
    RESUME's fresh ephemeral key and timestamp, so every first flight has
    its own key and one nonce is never used twice under it."""
    out = kdf(LABEL_EARLY_DATA, resumption_secret, lineage, early_transcript, length=44)
    return out[:32], out[32:]
