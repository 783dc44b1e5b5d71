"""0-RTT resumption: application messages in the resuming side's first flight.

A side that resumes with a ticket may put its queued messages into the
RESUME itself (RESUME_EARLY, docs/PROTOCOL.md §6.5), so a restarted node's
queue starts moving with no round trip.  The records -- one SYNC, then
MESSAGE records with their ordinary stream sequence numbers -- are sealed
with ChaCha20-Poly1305 under

    key (32) || nonce (12) = KDF("session early data", R, L, TH_E; 44)
    TH_E = FP(ticket_id, e_I.public, u64 timestamp_ms, mac)

with the RESUME's 90 bytes as associated data.  ``TH_E`` contains the fresh
ephemeral key, so each first flight has its own key and its one nonce is
never reused; a resend of the flight is the same bytes.

Why delivery stays at most once (the replay argument, in full in
PROTOCOL.md §6.5): the responder opens early data only after the RESUME's
MAC and freshness verified, and only for a ticket it still holds; it
consumes the ticket (durably, with a store) before anything leaves, and the
messages carry stream sequence numbers its inbound stream deduplicates.  A
replayed flight therefore finds either the cached answer (same bytes: only
RESUME_ACK is sent again, nothing is delivered) or no ticket (RESUME_REJ).

Why forward secrecy is weaker (CRYPTO.md §9): these keys come from the
ticket alone, with no fresh Diffie-Hellman; anyone who later obtains the
ticket before both sides deleted it can read the flight.

Sans-I/O: pure functions over bytes, keys and records.
"""

from __future__ import annotations

from typing import Final

from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.keyschedule import early_data_key
from l2session.crypto import primitives
from l2session.crypto.kdf import fingerprint
from l2session.errors import MalformedMessage
from l2session.wire.packets import ResumeEarlyPacket, ResumePacket, encode_packet
from l2session.wire.records import Message, Record, Sync, decode_records, encode_records

#: The RESUME part of a RESUME_EARLY packet (the associated data).
RESUME_PART_SIZE: Final = 90


def early_transcript(resume: ResumePacket) -> bytes:
    """``TH_E``: the RESUME's public fields, MAC included."""
    return fingerprint(
        resume.ticket_id, resume.ephemeral, resume.timestamp_ms.to_bytes(8, "big"), resume.mac
    )


def _header(resume: ResumePacket) -> bytes:
    """The first 90 bytes of the RESUME_EARLY packet: its associated data."""
    probe = ResumeEarlyPacket(
        resume.ticket_id, resume.ephemeral, resume.timestamp_ms, resume.mac, bytes(17)
    )
    return encode_packet(probe)[:RESUME_PART_SIZE]


def seal(stored: StoredSession, resume: ResumePacket, records: list[Record]) -> ResumeEarlyPacket:
    """RESUME_EARLY carrying ``records`` (a SYNC, then MESSAGE records)."""
    check_records(records)
    key, nonce = early_data_key(stored.resumption_secret, stored.lineage, early_transcript(resume))
    sealed = primitives.aead_seal(key, nonce, encode_records(records), _header(resume))
    return ResumeEarlyPacket(
        resume.ticket_id, resume.ephemeral, resume.timestamp_ms, resume.mac, sealed
    )


def open_records(stored: StoredSession, packet: ResumeEarlyPacket) -> list[Record]:
    """The records of a RESUME_EARLY whose RESUME already verified against
    ``stored``.  Raises AuthenticationFailed (reason ``aead``) for sealed
    bytes that do not authenticate and MalformedMessage for records that
    are not a SYNC followed by MESSAGE records; changes nothing."""
    resume = packet.resume
    key, nonce = early_data_key(stored.resumption_secret, stored.lineage, early_transcript(resume))
    plaintext = primitives.aead_open(
        key, nonce, packet.early, _header(resume), what="0-RTT early data"
    )
    records = decode_records(plaintext)
    check_records(records)
    return records


def check_records(records: list[Record]) -> None:
    """Early data is one SYNC, then messages: nothing that changes keys,
    routes or liveness travels before the peer's fresh key is known."""
    if not records or not isinstance(records[0], Sync):
        raise MalformedMessage("0-RTT early data must start with a SYNC record")
    for record in records[1:]:
        if not isinstance(record, Message):
            raise MalformedMessage(
                f"0-RTT early data may carry only MESSAGE records after its SYNC, "
                f"not {type(record).__name__}"
            )
