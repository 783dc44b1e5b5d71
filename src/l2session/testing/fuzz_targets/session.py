"""Fuzz targets of the session layer in ``core/``: the payload
envelope and capability requests, stored sessions, and the resumption
(RESUME, 0-RTT RESUME_EARLY, RESUME_ACK) handlers.

The resumption handlers accept only the genuine packet built from one fixed
stored session: its MAC (and, for 0-RTT, the AEAD) covers every field.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from l2session.core.lifecycle import early
from l2session.core.lifecycle.resumption import (
    PendingResume,
    StoredSession,
    answer_resume,
    finish_resume,
    start_resume,
)
from l2session.core.link.envelope import (
    Denial,
    Refused,
    Request,
    denial,
    is_placeholder,
    refused,
    unwrap,
    wrap,
)
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError, MalformedMessage
from l2session.testing.fuzz_targets._base import (
    _M,
    NOW,
    FuzzTarget,
    _constant,
    _decoder,
    _require,
    _text_decoder,
)
from l2session.testing.fuzz_targets._fixtures import _HANDSHAKE_REFUSES, _keys
from l2session.wire.packets import (
    ResumeAckPacket,
    ResumeEarlyPacket,
    ResumePacket,
    decode_packet,
    encode_packet,
)
from l2session.wire.records import Message, Record, Sync


def _check_envelope(data: bytes, value: object) -> None:
    body = bytes(data)
    if isinstance(value, Refused):
        _require(is_placeholder(body), "a placeholder is not recognised as one")
    elif isinstance(value, Denial):
        _require(denial(value.stream, value.seq, value.reason) == body, "denial re-encodes")
    else:
        assert isinstance(value, tuple)
        payload, request = value
        # An escape is tolerated on any payload (PROTOCOL.md §4.2 uses it
        # only for one starting with 0xFF); everything else is canonical.
        escaped = body[:2] == b"\xff\x00" and body[2:] == payload and request is None
        _require(escaped or wrap(payload, request) == body, "an envelope re-encodes")


def _envelope_seeds() -> tuple[bytes, ...]:
    return (
        b"plain payload",
        wrap(b"\xffstarts with the mark"),
        wrap(b"payload", Request("call", "service://payment", 5)),
        wrap(b"", Request("read", "feed://my-channel/2027")),
        refused("denied by policy"),
        denial(0x0102030405060708, 42, "no grant for write feed://x"),
    )


def _check_request(data: bytes, request: object) -> None:
    assert isinstance(request, Request)
    text = f"{request.action} {request.resource} {request.units}"
    _require(Request.parse(text) == request, "a capability request does not survive parsing")


def _stored_session() -> StoredSession:
    alice, bob = _keys("alice").identity, _keys("bob").identity
    return StoredSession(
        local_did=alice.did_text,
        peer_did=bob.did_text,
        peer_signing_key=bob.signing_public,
        resumption_secret=bytes(range(32)),
        lineage=bytes(range(32, 64)),
        pq_keyed_at=NOW - 3600.0,
        issued_at=NOW - 60.0,
        out_stream=7,
        in_stream=0xFFFF_FFFF_FFFF,
    )


def _check_stored(data: bytes, stored: object) -> None:
    assert isinstance(stored, StoredSession)
    _require(stored.to_bytes() == bytes(data), "a stored session re-encodes to other bytes")


@dataclass(frozen=True, slots=True)
class _Resumption:
    pending: PendingResume
    resume: bytes
    ack: bytes


@functools.cache
def _resumption() -> _Resumption:
    stored = _stored_session()
    pending = start_resume(stored, rng=SeededRandom("fuzz resume"), now=NOW)
    answer = answer_resume(pending.packet, stored, rng=SeededRandom("fuzz resume ack"), now=NOW)
    return _Resumption(pending, encode_packet(pending.packet), encode_packet(answer.reply))


_RESUME_REFUSES: Final = _HANDSHAKE_REFUSES


def _resume_answer(data: bytes) -> None:
    """The responder answers only the genuine RESUME: its MAC covers every
    field."""
    resumption = _resumption()
    packet = decode_packet(data)
    if not isinstance(packet, ResumePacket):
        raise MalformedMessage("not a RESUME")
    answer_resume(packet, _stored_session(), rng=SeededRandom("fuzz resume ack"), now=NOW)
    _require(bytes(data) == resumption.resume, "the responder accepted a forged RESUME")


@functools.cache
def _early_flight() -> bytes:
    """A genuine 0-RTT first flight (RESUME_EARLY) for the fuzz ticket."""
    stored = _stored_session()
    pending = start_resume(stored, rng=SeededRandom("fuzz resume early"), now=NOW)
    records: list[Record] = [Sync(7, 0, 9, 3), Message(0, b"early"), Message(1, b"data")]
    return encode_packet(early.seal(stored, pending.packet, records))


def _early_open(data: bytes) -> None:
    """The responder opens only the genuine RESUME_EARLY: the MAC covers the
    RESUME part, the AEAD (with those 90 bytes as associated data) the
    rest; and only a SYNC followed by messages is accepted."""
    packet = decode_packet(data)
    if not isinstance(packet, ResumeEarlyPacket):
        raise MalformedMessage("not a RESUME_EARLY")
    stored = _stored_session()
    answer_resume(packet.resume, stored, rng=SeededRandom("fuzz resume ack"), now=NOW)
    early.open_records(stored, packet)
    _require(bytes(data) == _early_flight(), "the responder opened a forged 0-RTT flight")


def _resume_finish(data: bytes) -> None:
    """The initiator accepts only the genuine RESUME_ACK."""
    resumption = _resumption()
    packet = decode_packet(data)
    if not isinstance(packet, ResumeAckPacket):
        raise MalformedMessage("not a RESUME_ACK")
    finish_resume(resumption.pending, packet)
    _require(bytes(data) == resumption.ack, "the initiator accepted a forged RESUME_ACK")


#: The targets of the session layer (core/).
TARGETS: Final[tuple[FuzzTarget, ...]] = (
    _decoder(
        "envelope",
        ("l2session.core.link.envelope:unwrap",),
        unwrap,
        _envelope_seeds,
        _M,
        verify=_check_envelope,
        max_len=2048,
    ),
    _text_decoder(
        "capability_request",
        ("l2session.core.link.envelope:Request.parse",),
        Request.parse,
        _constant(b"call service://payment 5", b"read feed://my-channel"),
        (ConfigError,),
        verify=_check_request,
        max_len=1200,
        tokens=(b"call ", b"read ", b"://", b"%2e", b"..", b"/", b" 1000000"),
    ),
    _decoder(
        "stored_session",
        ("l2session.core.lifecycle.resumption:StoredSession.from_bytes",),
        StoredSession.from_bytes,
        lambda: (_stored_session().to_bytes(),),
        _M,
        verify=_check_stored,
        max_len=2048,
    ),
    _decoder(
        "resume_answer",
        ("l2session.core.lifecycle.resumption:answer_resume",),
        _resume_answer,
        lambda: (_resumption().resume,),
        _RESUME_REFUSES,
        max_len=256,
    ),
    _decoder(
        "resume_early",
        ("l2session.core.lifecycle.early:open_records",),
        _early_open,
        lambda: (_early_flight(),),
        _RESUME_REFUSES,
        max_len=512,
    ),
    _decoder(
        "resume_finish",
        ("l2session.core.lifecycle.resumption:finish_resume",),
        _resume_finish,
        lambda: (_resumption().ack,),
        _RESUME_REFUSES,
        max_len=256,
    ),
)
