"""The Membrane's place in the session path: requests are screened before
the application can see them, and refused ones answered with a denial.

A message that asks for a capability (:mod:`l2session.core.link.envelope`) is
screened once, when the receiver first keeps it (in order or early), by the
manager's :class:`~l2session.core.link.envelope.AccessGate` with the session's
*authenticated* peer DID.  A refused message is consumed: its sequence
number is acknowledged and passed, it is never delivered, and the stream
goes on.  The decision is never taken twice for one message, so a quota is
charged once however often the sender retransmits.

The sender learns of the refusal by a *denial notice* queued on the
receiver's own stream, so it gets the stream's guarantees: delivered exactly
once, across loss, reordering and restarts of either side (it is written to
the store like any outbound message).  A notice goes out ahead of anything
waiting unsent, so it normally shares a packet with the acknowledgement of
the message it answers.  On arrival it is consumed in turn (it needs no
room in the inbox) and becomes a
:class:`~l2session.core.events.MessageDenied` event.

Notices may take the outbound queue past its limit by at most
:data:`MAX_PENDING_NOTICES`; beyond that a request is not screened at all
but held back like a message for a full inbox (not kept, not acknowledged:
the sender resends it later), so a peer that floods refused requests and
never acknowledges the notices cannot grow our queue without bound.

Without a gate a request is delivered with its request attached (the
application decides); an envelope that does not decode is refused either way.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Protocol, Self, TypeVar

from l2session.codec import clip_utf8
from l2session.core.config import SessionConfig, SessionKind
from l2session.core.events import MessageDenied, RequestRefused, SessionEvent
from l2session.core.lifecycle.persistence import Journal
from l2session.core.link.delivery import Inbound, Outbound
from l2session.core.link.envelope import (
    AccessGate,
    Delivery,
    Denial,
    Refused,
    Request,
    denial,
    refused,
    unwrap,
)
from l2session.errors import InvalidState, MalformedMessage

S_contra = TypeVar("S_contra", contravariant=True)

#: Longest reason a denial carries (UTF-8 bytes).
MAX_REASON_BYTES: Final = 200
#: How far denial notices may take the outbound queue past its limit.
MAX_PENDING_NOTICES: Final = 1024
#: Denials a sender remembers for :attr:`Session.denied`.
RECENT_DENIALS: Final = 1024


class ScreeningOwner(Protocol[S_contra]):
    """What screening needs of the session's owner (the manager)."""

    @property
    def gate(self) -> AccessGate | None: ...

    def emit(self, event: SessionEvent) -> None: ...

    def dirty(self, session: S_contra, /) -> None: ...

    def want_flush(self, session: S_contra, /) -> None: ...


class ScreeningPort(Protocol):
    """The fields and calls of a session the Membrane's screening uses."""

    denied: OrderedDict[int, str] | None

    @property
    def peer_did(self) -> str: ...

    @property
    def config(self) -> SessionConfig: ...

    @property
    def inbound(self) -> Inbound: ...

    @property
    def outbound(self) -> Outbound: ...

    @property
    def journal(self) -> Journal | None: ...

    @property
    def last_inbound(self) -> float: ...

    @property
    def owner(self) -> ScreeningOwner[Self]: ...

    def ephemeral_answered(self) -> None: ...

    def close(self, reason: str = ...) -> None: ...


def _clip(reason: str) -> str:
    return clip_utf8(reason, MAX_REASON_BYTES) or "denied"


def screen(session: ScreeningPort, seq: int, body: bytes) -> bytes | None:
    """The body to keep for message ``seq`` (the inbound screen hook), or
    None to hold it back.  Runs after the packet authenticated;
    ``session.last_inbound`` is its ``now``."""
    if body[:1] != b"\xff" or body[1:2] == b"\x00":
        return body
    if body[1:2] != b"\x03":
        room = session.config.max_queued + MAX_PENDING_NOTICES - len(session.outbound)
        if room <= 0:
            return None  # no room for a notice: decide when there is
    request: Request | None = None
    try:
        outcome = unwrap(body)
        if isinstance(outcome, Refused):
            raise MalformedMessage("a placeholder is not a message")
        if isinstance(outcome, Denial):
            on_denied(session, outcome)
            return _consumed(session, "denial notice")
        request = outcome[1]
    except MalformedMessage as exc:
        reason = f"malformed capability request: {exc}"
    else:
        gate = session.owner.gate
        if request is None or gate is None:
            return body
        denied = gate.screen(session.peer_did, request, session.last_inbound)
        if denied is None:
            return body
        reason = denied
    reason = _clip(reason)
    notify(session, seq, reason)
    session.owner.emit(RequestRefused(session.peer_did, seq, request, reason))
    return _consumed(session, reason)


def _consumed(session: ScreeningPort, reason: str) -> bytes:
    if session.journal is not None:
        session.owner.dirty(session)  # the stream's high-water mark moves
    return refused(reason)


def notify(session: ScreeningPort, seq: int, reason: str) -> None:
    """Queue (durably, with a store) a denial notice for the peer's message
    ``seq``; :func:`screen` made sure there is room."""
    body = denial(session.inbound.stream, seq, reason)
    out_seq = session.outbound.enqueue(body, control=True)
    if session.config.kind is SessionKind.EPHEMERAL:
        session.ephemeral_answered()
    if session.journal is not None:
        session.journal.put_outbound(session.peer_did, out_seq, body)
        session.owner.dirty(session)
    session.owner.want_flush(session)


def on_denied(session: ScreeningPort, notice: Denial) -> None:
    """The peer refused our message ``notice.seq``."""
    if notice.stream != session.outbound.stream or notice.seq >= session.outbound.next_seq:
        return  # not a message of ours: ignore rather than believe it
    denied = session.denied
    if denied is None:
        denied = session.denied = OrderedDict()
    reason = _clip(notice.reason)
    denied[notice.seq] = reason
    while len(denied) > RECENT_DENIALS:
        denied.popitem(last=False)
    session.owner.emit(MessageDenied(session.peer_did, notice.seq, reason))
    if session.config.kind is SessionKind.EPHEMERAL:
        session.close(f"ephemeral request refused: {reason}")


def take(session: ScreeningPort, max_count: int) -> list[Delivery]:
    """Up to ``max_count`` delivered messages, each handed off in the
    journal (the caller commits)."""
    inbound, journal = session.inbound, session.journal
    out: list[Delivery] = []
    while len(out) < max_count:
        entry = inbound.pop_entry()
        if entry is None:
            break
        stream, seq, body = entry
        if journal is not None:
            journal.take_inbound(session.peer_did, stream, seq)
        out.append(_delivery(seq, body))
    return out


def peek(session: ScreeningPort, max_count: int) -> list[bytes]:
    """The next ``max_count`` payloads without taking them."""
    return [_delivery(0, body).payload for body in session.inbound.peek(max_count)]


def peek_deliveries(session: ScreeningPort, max_count: int) -> list[tuple[int, Delivery]]:
    """The next ``max_count`` messages as (stream, delivery), not taken:
    each with the sender's sequence number, which a consumer keeps as its
    cursor (the CLI's ``listen --cursor``)."""
    return [
        (stream, _delivery(seq, body))
        for stream, seq, body in session.inbound.peek_entries(max_count)
    ]


def _delivery(seq: int, body: bytes) -> Delivery:
    """The inbox holds only deliverable bodies: placeholders and notices
    are consumed before it (core/link/delivery.py), and what is kept decodes."""
    if body[:1] != b"\xff":
        return Delivery(seq, body)
    outcome = unwrap(body)
    if isinstance(outcome, Refused | Denial):
        raise InvalidState(f"a consumed message #{seq} reached the inbox")
    return Delivery(seq, outcome[0], outcome[1])
