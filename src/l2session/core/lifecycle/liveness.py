"""Liveness and timers of a session: heartbeats, degradation, and
everything :meth:`Session.on_timer` does when a deadline passes.

Heartbeats (SPEC-018 §2.2, DESIGN.md §2.2) carry strictly increasing
counters; an answer within ``heartbeat_timeout`` extends the lease.  One
miss is logged; ``heartbeat_tolerance`` misses in a row degrade the
session; ``degraded_timeout`` without recovery suspends it.  Connectivity
reported lost by the transport for ``connectivity_timeout`` degrades at
once (SPEC-018 §2.3).  These are functions over a session seen through
:class:`LivenessPort` (like :mod:`rotating`), so that the session module
stays about what flows once a channel exists.  The timer drives the other
behaviours (path validation, the path race, the handshake's resends and
timeout, rotation), so its port is the union of theirs.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol, Self, TypeVar

from l2session.core.config import SessionKind
from l2session.core.lifecycle import establishment, rotating
from l2session.core.lifecycle.establishment import EstablishmentOwner, EstablishmentPort
from l2session.core.lifecycle.rotating import RotatingOwner, RotatingPort
from l2session.core.link.delivery import Outbound
from l2session.core.paths import migration, race
from l2session.core.states import CARRYING, SENDING, State, Trigger
from l2session.wire.records import Heartbeat

S_contra = TypeVar("S_contra", contravariant=True)


class LivenessOwner(EstablishmentOwner[S_contra], RotatingOwner, Protocol[S_contra]):
    """What liveness needs of the session's owner: what the behaviours it
    drives need (its own calls, ``reschedule`` and ``is_outbound_only``,
    are among them), and when a quarantine ends."""

    def quarantined_until(self, did: str, address: str | None, now: float) -> float: ...


class LivenessPort(EstablishmentPort, RotatingPort, Protocol):
    """The fields a session's heartbeats and timers read and set, besides
    those of the behaviours the timer drives."""

    hb_counter: int
    hb_sent_at: float
    hb_replies: list[int] | None
    rtt: float | None
    down_since: float | None
    ack_at: float | None
    opened_by_peer: bool

    @property
    def outbound(self) -> Outbound: ...

    @property
    def owner(self) -> LivenessOwner[Self]: ...

    def rotation_due_at(self) -> float: ...

    def flush(self, now: float) -> None: ...


_log = logging.getLogger("l2session.session")

#: No deadline (next_deadline's running minimum starts here).
_NEVER: Final = float("inf")


def on_heartbeat(session: LivenessPort, counter: int) -> None:
    if counter <= session.hb_peer:
        session.rejected += 1  # replayed or old counter (SPEC-018 §7.1)
        return
    session.hb_peer = counter
    if session.hb_replies is None:
        session.hb_replies = []
    session.hb_replies.append(counter)


def on_heartbeat_ack(session: LivenessPort, counter: int, now: float) -> None:
    if counter == 0 or counter > session.hb_counter:
        session.rejected += 1  # answers a heartbeat never sent
        return
    if counter == session.hb_outstanding:
        session.hb_outstanding = 0
        session.rtt = max(0.0, now - session.hb_sent_at)
    session.lease_until = now + session.config.ttl


def heartbeat_due(session: LivenessPort) -> float:
    interval = session.config.heartbeat_interval
    if session.state is State.DEGRADED:
        interval = interval / session.config.heartbeat_tolerance
        return max(session.last_inbound, session.hb_sent_at) + interval
    config = session.config
    if (
        session.opened_by_peer
        and not session.hb_misses
        and 4 * config.heartbeat_timeout <= config.heartbeat_interval
    ):
        # The side that accepted the session waits heartbeat_timeout
        # longer, so that the two sides' heartbeats do not cross: the
        # opener's arrives first and answering it resets this side's idle
        # time.  An idle session then costs one exchange per interval, not
        # two (a hub answers its peers' heartbeats instead of doubling
        # them).  Not after a miss (the peer is silent: both probe as
        # before), nor where the timeout is long against the interval
        # (light-minute delays: SessionConfig.deep_space), whose schedule
        # is tuned to round trips and stays as it was.
        interval += config.heartbeat_timeout
    return max(session.last_inbound, session.hb_sent_at if session.hb_misses else 0.0) + interval


def send_heartbeat(session: LivenessPort, now: float) -> None:
    session.hb_counter += 1
    session.hb_outstanding = session.hb_counter
    session.hb_sent_at = now
    session.send_records([Heartbeat(session.hb_counter)], now)


def heartbeat_missed(session: LivenessPort, now: float) -> None:
    session.hb_outstanding = 0
    session.hb_misses += 1
    tolerance = session.config.heartbeat_tolerance
    if session.state is State.DEGRADED:
        return
    if session.hb_misses >= tolerance and session.state is State.ESTABLISHED:
        degrade(session, now, f"{session.hb_misses} heartbeats missed")
    else:
        _log.warning(
            "session %s: heartbeat %d missed (%d of %d tolerated)",
            session.peer_did,
            session.hb_counter,
            session.hb_misses,
            tolerance,
            extra={"l2session": {"peer": session.peer_did, "misses": session.hb_misses}},
        )


def degrade(session: LivenessPort, now: float, reason: str) -> None:
    session.fire(Trigger.MISSED_HEARTBEATS, now, reason)
    session.degraded_at = now


def connectivity(session: LivenessPort, up: bool, now: float) -> None:
    """The transport reports the path to the peer lost or restored
    (SPEC-018 §2.3).  Lost for longer than ``connectivity_timeout``
    degrades without waiting for missed heartbeats."""
    if up:
        session.down_since = None
        if session.state is State.DEGRADED:
            send_heartbeat(session, now)
    elif session.down_since is None:
        session.down_since = now
    session.owner.reschedule(session)


def next_deadline(session: LivenessPort) -> float | None:
    """The earliest time :meth:`on_timer` has something to do.

    Called after every packet in or out and by every timer (several times
    per session per heartbeat), so it keeps a running minimum instead of
    building a list, and reads the state and config once."""
    if session.closed:
        return None
    state = session.state
    config = session.config
    best = _NEVER
    if session.handshake_deadline is not None:
        best = session.handshake_deadline
        resend = session.handshake_resend_at
        if resend is not None and resend < best:
            best = resend
        widen = race.next_deadline(session)
        if widen is not None and widen < best:
            best = widen
    if state is State.FAILED or state is State.SUSPENDED:
        retry = session.retry_at
        if retry is not None and retry < best:
            best = retry
        if session.lease_until < best:
            best = session.lease_until
    if state in CARRYING:
        if not session.hb_outstanding:
            due = heartbeat_due(session)
        else:
            due = session.hb_sent_at + config.heartbeat_timeout
        if due < best:
            best = due
        ack_at = session.ack_at
        if ack_at is not None and ack_at < best:
            best = ack_at
        retx = session.outbound.retransmit_at
        if retx is not None and retx < best and state in SENDING:
            best = retx
        down = session.down_since
        if down is not None and state is State.ESTABLISHED:
            down += config.connectivity_timeout
            if down < best:
                best = down
    if state is State.ESTABLISHED and config.kind is SessionKind.PERSISTENT:
        rotate = rotating.due_at(session)
        if rotate < best:
            best = rotate
    rotation = session.rotation
    if rotation is not None:
        best = min(best, rotation.started_at + config.rotation_timeout, rotation.resend_at)
    degraded_at = session.degraded_at
    if state is State.DEGRADED and degraded_at is not None:
        best = min(best, degraded_at + config.degraded_timeout)
    if session.validation is not None:
        paths = migration.next_deadline(session)
        if paths is not None and paths < best:
            best = paths
    return None if best == _NEVER else best


def on_timer(session: LivenessPort, now: float) -> None:
    """Do everything that is due at ``now`` (the manager calls this)."""
    if session.closed:
        return
    migration.on_timer(session, now)  # path validation: challenges, MIGRATE resends
    state = session.state
    if session.handshake_deadline is not None:
        race.on_timer(session, now)
        establishment.on_handshake_timer(session, now)
        state = session.state
    if state in (State.FAILED, State.SUSPENDED):
        if now >= session.lease_until:
            session.fire(Trigger.CLEANUP, now, "lease expired without recovery")
            return
        if session.retry_at is not None and now >= session.retry_at:
            establishment.retry(session, now)
        return
    if session.rotation is not None:
        if now >= session.rotation.started_at + session.config.rotation_timeout:
            if session.channel is not None and not session.rotation.switched:
                session.channel.discard(session.rotation.epoch)
            if session.state is State.ROTATING:
                session.fail(Trigger.ROTATION_TIMEOUT, now, "rotation_timeout")
            else:
                session.rotation = None
            return
        if now >= session.rotation.resend_at:
            rotating.send_record(session, now)
    state = session.state
    if state not in CARRYING:
        return
    degraded_at = session.degraded_at
    if (
        state is State.DEGRADED
        and degraded_at is not None
        and now >= degraded_at + session.config.degraded_timeout
    ):
        session.fire(Trigger.TIMEOUT, now, "degraded without recovery")
        # An outbound-only peer is not dialled: it comes back by itself.
        outbound_only = session.owner.is_outbound_only(session.address)
        session.retry_at = None if outbound_only else now + session.config.recovery_interval
        session.degraded_at = None
        return
    if session.hb_outstanding and now >= session.hb_sent_at + session.config.heartbeat_timeout:
        heartbeat_missed(session, now)
    if (
        session.down_since is not None
        and session.state is State.ESTABLISHED
        and now >= session.down_since + session.config.connectivity_timeout
    ):
        degrade(session, now, "connectivity lost")
    if not session.hb_outstanding and now >= heartbeat_due(session):
        send_heartbeat(session, now)
    if (
        session.state is State.ESTABLISHED
        and session.config.kind is SessionKind.PERSISTENT
        and session.rotation is None
        and now >= session.rotation_due_at()
    ):
        reason = "volume limit" if session.rotation_due_at() == 0.0 else "key age"
        rotating.start(session, now, reason)
    session.outbound.check_timeouts(now)
    session.flush(now)


# ----------------------------------------------------------------------
# what a packet proves, and recovery


def on_authenticated(session: LivenessPort, now: float) -> None:
    """Any authenticated packet proves the peer is alive and reachable."""
    # ...and that it completed the handshake, so it will not resend its
    # RESPONSE: drop the cached FINISH (and the ~1.2 KB RESPONSE key).
    session.answers = None
    session.last_inbound = now
    session.lease_until = max(session.lease_until, now + session.config.ttl)
    session.hb_misses = 0
    session.down_since = None
    state = session.state
    if state is State.HANDSHAKE_RECEIVED:
        # The initiator's first packet in the new channel is the
        # "ack" of a resumption answer.
        session.fire(Trigger.SEND_RESPONSE_ACK, now, "peer used the resumed keys")
        establishment.on_established(session, now)
    elif state is State.DEGRADED:
        session.degraded_at = None
        session.fire(Trigger.CONNECTIVITY_RESTORED, now, "authenticated traffic from peer")
        session.outbound.resend_all()


def fail(session: LivenessPort, trigger: Trigger, now: float, reason: str) -> None:
    """Enter ``failed`` and schedule a retry (DESIGN.md §2.4)."""
    session.fire(trigger, now, reason)
    session.failure_reason = reason
    session.handshake = None
    session.handshake_packet = None
    session.handshake_deadline = None
    session.resume = None
    session.rotation = None
    session.hb_outstanding = 0
    schedule_retry(session, now)


def schedule_retry(session: LivenessPort, now: float) -> None:
    """When the next attempt runs (the reconnection policy's backoff, never
    inside a quarantine), or end the session if none ever will."""
    config = session.config
    policy = config.reconnect
    session.retry_attempt += 1
    can_retry = (
        may_dial(session)
        and (config.kind is SessionKind.PERSISTENT or not session.established_once)
        and (session.established_once or not session.opened_by_peer)
    )
    if not can_retry or policy.exhausted(session.retry_attempt):
        # Nothing will bring this session back: end it now.
        session.retry_at = None
        session.fire(Trigger.CLEANUP, now, "no retry possible")
        return
    owner = session.owner
    if owner.is_outbound_only(session.address):
        # Kept (queue and all) until its lease ends; the peer comes back.
        session.retry_at = None
        return
    delay = policy.delay(session.retry_attempt, owner.ctx.rng)
    until = owner.quarantined_until(session.peer_did, session.address, now)
    session.retry_at = max(now + delay, until)


def may_dial(session: LivenessPort) -> bool:
    """Whether this node reaches out to the peer (it knows an address and
    may connect)."""
    return session.address is not None and session.owner.ctx.net_connect is not None
