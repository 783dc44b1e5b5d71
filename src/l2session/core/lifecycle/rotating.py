"""The ``rotating`` state of a session: when to rotate, and the rotation
records in flight (DESIGN.md §2.3).

:mod:`l2session.core.lifecycle.rotation` holds the key agreement itself (pure
functions over a channel); this module drives it from a session: who starts
(the lower DID first, so both never start at once), crossing requests,
resending unanswered records, switching the sending epoch, and the state
transitions.  A rotation record that does not verify is counted and
ignored: it could be forged, so it must not end the session.

A completed rotation also re-issues the resumption ticket (PROTOCOL.md
§6.3, §8.3): both sides replace their ticket for the peer with one from the
rotation's keys, keyed now, so a restart after a rotation resumes instead of
running PQXDH, and the ticket from before the rotation is gone on both sides.
"""

from __future__ import annotations

import logging
from typing import Protocol

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.lifecycle import rotation as steps
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.channel import Channel
from l2session.core.management.context import Context
from l2session.core.states import State, Trigger
from l2session.errors import L2SessionError
from l2session.wire.records import Record, RotateDone, RotateInit, RotateResponse

_log = logging.getLogger("l2session.session")


class RotatingOwner(Protocol):
    """What a rotation needs of the session's owner (the manager)."""

    @property
    def ctx(self) -> Context: ...

    @property
    def local_did(self) -> str: ...

    def save_ticket(self, stored: StoredSession) -> None: ...


class RotatingPort(Protocol):
    """The fields and calls of a session that key rotation uses."""

    rotation: steps.Rotation | None
    pq_keyed_at: float
    rejected: int

    @property
    def peer_did(self) -> str: ...

    @property
    def config(self) -> SessionConfig: ...

    @property
    def state(self) -> State: ...

    @property
    def channel(self) -> Channel | None: ...

    @property
    def peer_signing_key(self) -> bytes | None: ...

    @property
    def owner(self) -> RotatingOwner: ...

    def fire(self, trigger: Trigger, now: float, reason: str = ...) -> None: ...

    def send_records(self, records: list[Record], now: float | None = ...) -> None: ...


def due_at(session: RotatingPort) -> float:
    config = session.config
    due = session.pq_keyed_at + (config.ttl - config.rotation_window)  # rotate_at_age
    if session.owner.local_did > session.peer_did:
        # The peer (lower DID) rotates first; this side steps in only
        # if it did not, so the two never start at once.
        due += config.rotation_timeout
    channel = session.channel
    if channel is not None and (
        channel.messages_sent >= config.rekey_after_messages
        or channel.bytes_sent >= config.rekey_after_bytes
    ):
        return 0.0
    return due


def start(session: RotatingPort, now: float, reason: str) -> None:
    assert session.channel is not None
    session.fire(Trigger.TIME_TO_ROTATE, now, reason)
    keys = session.owner.ctx.keys
    session.rotation = steps.start(
        channel=session.channel, signing=keys.identity.signing, rng=session.owner.ctx.rng, now=now
    )
    send_record(session, now)


def send_record(session: RotatingPort, now: float) -> None:
    rotation = session.rotation
    assert rotation is not None
    rotation.sends += 1
    rotation.resend_at = now + session.config.resend_delay(rotation.sends)
    if not rotation.switched:
        session.send_records([rotation.record], now)
    else:
        session.send_records([RotateDone(rotation.epoch)], now)


def on_init(session: RotatingPort, record: RotateInit, now: float) -> None:
    channel = session.channel
    assert channel is not None
    current = session.rotation
    if current is not None and current.epoch == record.epoch:
        if not current.initiator:
            session.send_records([current.record], now)  # our response was lost: resend it
            return
        if session.owner.local_did < session.peer_did:
            return  # crossing requests: the lower DID's rotation wins
        channel.discard(current.epoch)
        session.rotation = None
    if record.epoch != channel.newest_epoch + 1:
        session.rejected += 1
        return
    assert session.peer_signing_key is not None
    ctx = session.owner.ctx
    try:
        rotation = steps.respond(
            record,
            channel=channel,
            signing=ctx.keys.identity.signing,
            peer_signing_key=session.peer_signing_key,
            associated_data=channel.session_id,
            rng=ctx.rng,
            now=now,
            encapsulator=ctx.keys.encapsulator,
        )
    except L2SessionError as error:
        session.rejected += 1
        _log.warning("session %s: rotation request refused: %s", session.peer_did, error)
        return
    if session.state is State.ESTABLISHED:
        session.fire(Trigger.TIME_TO_ROTATE, now, "requested by peer")
    session.rotation = rotation
    send_record(session, now)


def on_response(session: RotatingPort, record: RotateResponse, now: float) -> None:
    rotation = session.rotation
    channel = session.channel
    assert channel is not None
    if rotation is None or not rotation.initiator or rotation.epoch != record.epoch:
        return
    if rotation.keys_ready:
        return  # duplicate response
    assert session.peer_signing_key is not None
    try:
        steps.complete_initiator(
            rotation,
            record,
            channel=channel,
            peer_signing_key=session.peer_signing_key,
            associated_data=channel.session_id,
            rng=session.owner.ctx.rng,
        )
    except L2SessionError as error:
        session.rejected += 1
        _log.warning("session %s: rotation response refused: %s", session.peer_did, error)
        return
    channel.switch_send(rotation.epoch, now)
    rotation.switched = True
    send_record(session, now)


def after_epoch(session: RotatingPort, epoch: int, now: float) -> None:
    rotation = session.rotation
    if rotation is None or epoch != rotation.epoch or session.channel is None:
        return
    if not rotation.switched:
        session.channel.switch_send(epoch, now)
        rotation.switched = True
        session.send_records([RotateDone(epoch)], now)
    session.rotation = None
    session.pq_keyed_at = now
    _issue_ticket(session, rotation, now)
    if session.state is State.ROTATING:
        session.fire(Trigger.ROTATION_COMPLETE, now, f"key epoch {epoch}")


def _issue_ticket(session: RotatingPort, rotation: steps.Rotation, now: float) -> None:
    """Replace the ticket for this peer with the completed rotation's: its
    resumption secret, the new lineage, keyed and issued now.  Both sides
    derive the same secret, so they agree on the ticket id; ``save_ticket``
    drops the old ticket (and journals the new one, durable at the next
    commit, before any packet leaves)."""
    if session.config.kind is not SessionKind.PERSISTENT:
        return
    secret, lineage = rotation.resumption_secret, rotation.lineage
    peer_signing_key = session.peer_signing_key
    if secret is None or lineage is None or peer_signing_key is None:
        return
    owner = session.owner
    owner.save_ticket(
        StoredSession(
            local_did=owner.local_did,
            peer_did=session.peer_did,
            peer_signing_key=peer_signing_key,
            resumption_secret=secret,
            lineage=lineage,
            pq_keyed_at=now,
            issued_at=now,
        )
    )
