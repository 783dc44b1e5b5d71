"""Path migration and validation inside an established session.

The overview's "Session Migration" (change address without rekeying) and
QUIC's path validation (RFC 9000 §8.2, §9), as path-level processes inside
the carrying states: nothing here is a state transition, and keys never
change.

* **Announcing.**  When the node's own address changes
  (``SessionManager.local_address_changed``), every carrying session sends
  MIGRATE(sequence, endpoint) in an authenticated DATA packet on its live
  routes, with ``sequence`` one above the last; it is resent every
  ``SessionConfig.resend_interval`` (backing off; at most
  :data:`MIGRATE_TRIES` times) until the peer's PATH_CHALLENGE shows it
  arrived.
* **Candidates.**  A MIGRATE not older than the last one seen in this
  channel names a candidate route (the endpoint, on the path it arrived
  by); so does any authenticated DATA packet from a route the session does
  not know (passive migration, e.g. a NAT rebinding); so does
  ``SessionManager.add_route``.  The packet itself is processed normally
  (the ratchet authenticated it), but nothing is sent to the candidate
  except PATH_CHALLENGE until it is validated: an attacker who replays or
  re-sources a packet cannot redirect traffic.
* **Validation.**  PATH_CHALLENGE carries 8 random bytes from ``ctx.rng``
  and goes to the candidate; the peer echoes them in PATH_RESPONSE to where
  the challenge came from.  Only an authenticated PATH_RESPONSE with an
  outstanding token (compared with :func:`hmac.compare_digest`) validates;
  an unknown token is counted and ignored.  A challenge is sent at most
  :data:`CHALLENGE_TRIES` times, ``resend_interval`` apart (backing off),
  then abandoned (a passive candidate is then not challenged again for
  :data:`HOLD_OFF_INTERVALS` resend intervals);
  at most :data:`MAX_CHALLENGES` are outstanding per session.
* **Switching.**  A validated candidate of a migration (MIGRATE, or a
  passive one at another address, or any passive one under FAILOVER)
  becomes the primary route: the durable row is marked dirty,
  :class:`~l2session.core.events.PathMigrated` is emitted and everything
  unacknowledged is resent there.  Routes at the old address are forgotten;
  until then the old route carries everything and, if it is dead, the
  ordinary liveness rules apply.  Other validated candidates (``add_route``,
  passive ones under LOAD_BALANCE/AGGREGATE) join the session's routes
  (:mod:`l2session.core.paths.multipath`) and emit
  :class:`~l2session.core.events.PathValidated`.
* **Hole punching, timed as DCUtR.**  A relayed session's two sides
  exchange their NAT addresses in MIGRATE through the relay and validate
  each other's over a direct path.  The side with the lower DID leads: its
  MIGRATE is answered by the other's, which measures the relayed round
  trip; it then sends PUNCH_SYNC through the relay and fires its
  PATH_CHALLENGE half a round trip later, while the other fires on receipt
  of PUNCH_SYNC -- so both NATs see an outgoing packet before the peer's
  arrives.  A side that cannot take part (no NAT address, an older
  release) is covered by fallbacks of one resend interval.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, Self, TypeVar

from l2session.core.config import MultipathStrategy
from l2session.core.events import PathMigrated, PathValidated, SessionEvent
from l2session.core.lifecycle.persistence import ROUTE_MIGRATED
from l2session.core.link.channel import Channel
from l2session.core.management.context import Context
from l2session.core.paths import multipath
from l2session.core.paths.multipath import MultipathOwner, MultipathPort, Route
from l2session.core.states import CARRYING
from l2session.wire.records import (
    PATH_TOKEN_SIZE,
    Migrate,
    PathChallenge,
    PathResponse,
    PunchSync,
    Record,
)

S_contra = TypeVar("S_contra", contravariant=True)

_log = logging.getLogger("l2session.session")

#: Sends of one PATH_CHALLENGE before it is abandoned.
CHALLENGE_TRIES: Final = 3
#: Outstanding challenges per session.
MAX_CHALLENGES: Final = 4
#: Sends of one MIGRATE while no PATH_CHALLENGE answers it.
MIGRATE_TRIES: Final = 3
#: An abandoned passive candidate is not challenged again for this long.
#: How many resend intervals (``SessionConfig.resend_interval``) a passive
#: candidate that was not validated is left alone.
HOLD_OFF_INTERVALS: Final = 10
#: Abandoned routes remembered for the hold-off.
MAX_HELD: Final = 16
#: Candidates remembered by ``add_route`` before the session carries traffic.
MAX_PENDING: Final = 8
_MAX_SEQUENCE: Final = 0xFFFF_FFFF
#: The records this module handles (``Session`` passes them on).
PATH_RECORDS: Final = (Migrate, PathChallenge, PathResponse, PunchSync)


@dataclass(slots=True)
class Challenge:
    """One outstanding PATH_CHALLENGE."""

    token: bytes
    route: Route
    #: True: the peer moved (switch when validated); False: add a route.
    move: bool
    #: The MIGRATE sequence that named the route (None: passive or added).
    sequence: int | None
    sends: int = 0
    due: float = 0.0


class PathValidation:
    """Per-session migration state and its counters."""

    __slots__ = (
        "abandoned",
        "announce",
        "announce_due",
        "announce_sends",
        "announce_sent_at",
        "armed",
        "challenges",
        "fire_at",
        "held",
        "local_seq",
        "peer_channel",
        "peer_seq",
        "pending",
        "punch_failures",
        "punch_offered",
        "punch_rtt",
        "punch_wait_until",
        "refused",
        "stale_migrates",
        "stray_syncs",
        "unknown_responses",
        "validated",
    )

    def __init__(self) -> None:
        self.challenges: list[Challenge] = []
        #: Our last MIGRATE sequence, and the MIGRATE being announced.
        self.local_seq = 0
        self.announce: Migrate | None = None
        self.announce_sends = 0
        self.announce_due = 0.0
        #: When our MIGRATE last went out (the punch leader's round-trip
        #: measurement starts there).
        self.announce_sent_at = 0.0
        #: Hole punching (DCUtR timing): we lead and our MIGRATE awaits
        #: the peer's answer; the candidates armed to fire at ``fire_at``;
        #: as the follower, when we announce on our own if the leader's
        #: MIGRATE has not come (None: not waiting); the round trip the
        #: leader measured (None: none).
        self.punch_offered = False
        self.armed: list[tuple[Route, int]] = []
        self.fire_at: float | None = None
        self.punch_wait_until: float | None = None
        self.punch_rtt: float | None = None
        #: The highest MIGRATE sequence seen from the peer, per channel.
        self.peer_seq = 0
        self.peer_channel: bytes | None = None
        #: Abandoned passive candidates -> until when they are not retried.
        self.held: dict[Route, float] = {}
        #: Routes offered by add_route before the session carried traffic.
        self.pending: list[Route] = []
        self.validated = 0
        self.abandoned = 0
        #: Hole punches (direct candidates of a relayed session) that failed.
        self.punch_failures = 0
        #: Candidates refused because MAX_CHALLENGES were outstanding.
        self.refused = 0
        self.stale_migrates = 0
        self.unknown_responses = 0
        #: PUNCH_SYNC records with nothing armed (a leader's copy, late).
        self.stray_syncs = 0

    @property
    def outstanding(self) -> int:
        return len(self.challenges)


class MigrationOwner(MultipathOwner[S_contra], Protocol[S_contra]):
    """What migration needs of the session's owner (the manager), besides
    what multipath needs."""

    @property
    def ctx(self) -> Context: ...

    @property
    def local_did(self) -> str: ...

    def reflexive_of(self, address: str | None) -> str | None: ...

    def send_raw(self, address: str, path: str, data: bytes) -> None: ...

    def emit(self, event: SessionEvent) -> None: ...

    def want_flush(self, session: S_contra, /) -> None: ...


class MigrationPort(MultipathPort, Protocol):
    """The fields of a session migration reads and sets, besides
    multipath's (it moves the primary route through multipath)."""

    validation: PathValidation | None

    @property
    def channel(self) -> Channel | None: ...

    @property
    def closed(self) -> bool: ...

    @property
    def owner(self) -> MigrationOwner[Self]: ...


def state_of(session: MigrationPort) -> PathValidation:
    """``session.validation``, allocated on first use."""
    state = session.validation
    if state is None:
        state = session.validation = PathValidation()
    return state


def _carrying(session: MigrationPort) -> bool:
    return session.channel is not None and not session.closed and session.state in CARRYING


def _send(session: MigrationPort, routes: Sequence[Route], records: list[Record]) -> None:
    """Seal ``records`` once and send the packet on each of ``routes``."""
    assert session.channel is not None
    data = session.channel.seal(records)
    for address, path in routes:
        session.owner.send_raw(address, path, data)


# ----------------------------------------------------------------------
# announcing our own move


def announce(session: MigrationPort, endpoint: str, now: float) -> bool:
    """Tell the peer our address is now ``endpoint`` (MIGRATE); returns
    whether the session could (it carries traffic)."""
    if not _carrying(session):
        return False
    state = state_of(session)
    state.local_seq = min(state.local_seq + 1, _MAX_SEQUENCE)
    state.announce = Migrate(state.local_seq, endpoint)
    state.announce_sends = 0
    _send_announce(session, now)
    return True


def offer_punch(session: MigrationPort, now: float) -> bool:
    """Hole punching, DCUtR-style: a session that came up over a relay
    announces (MIGRATE) the address the relay saw us at; the peer, doing
    the same, validates that address over its first direct path while we
    validate its address, so both NATs see outgoing packets to the other
    and open (core/paths/migration.py ``_on_migrate``).  Returns whether it did."""
    owner = session.owner
    address = session.address
    if not session.config.hole_punching:
        return False
    if address is None or owner.fixed_path_of(address) is None:
        return False
    reflexive = owner.reflexive_of(address)
    if reflexive is None or not _carrying(session):
        return False
    state = state_of(session)
    if not _leads(session):
        # The follower answers the leader's MIGRATE (``_arm``); on its own
        # only if none came within a resend interval (a leader of an
        # older release that validated at once, or one without a NAT
        # address of its own).
        state.punch_wait_until = now + session.config.resend_delay(1)
        return True
    _log.info("session %s: relayed; offering a direct path at %s", session.peer_did, reflexive)
    state.punch_offered = announce(session, reflexive, now)
    return state.punch_offered


def _leads(session: MigrationPort) -> bool:
    """The side that times a hole punch: the lower DID (both agree)."""
    return session.owner.local_did < session.peer_did


def _arm(session: MigrationPort, route: Route, sequence: int, source: Route, now: float) -> bool:
    """The peer's NAT address ``route`` came through the relay: arm the
    punch to it instead of firing at once (DCUtR timing), answering with
    our own address or PUNCH_SYNC.  False: fire now (we cannot time it)."""
    state = state_of(session)
    if _leads(session):
        if not state.punch_offered:
            return False  # we announced nothing to time against
        state.punch_offered = False
        rtt = max(0.0, now - state.announce_sent_at)
        state.punch_rtt = rtt
        _send(session, [source], [PunchSync()])  # back through the relay
        state.armed = [(route, sequence)]
        state.fire_at = now + rtt / 2
        what = "session %s: relayed round trip %.1f ms; punching to %s in %.1f ms"
        _log.info(what, session.peer_did, rtt * 1000, route[0], rtt * 500)
        return True
    reflexive = session.owner.reflexive_of(session.address)
    if reflexive is None:
        return False  # no address of ours to answer with: the leader cannot time it
    if state.punch_wait_until is not None:
        state.punch_wait_until = None
        if not announce(session, reflexive, now):
            return False
    state.armed = [*(a for a in state.armed if a[0] != route), (route, sequence)]
    # Fire on PUNCH_SYNC; after a resend interval without one anyway.
    state.fire_at = now + session.config.resend_delay(1)
    return True


def _fire(session: MigrationPort, now: float) -> None:
    """Send the armed punches (PATH_CHALLENGE to each candidate)."""
    state = state_of(session)
    armed, state.armed, state.fire_at = state.armed, [], None
    for route, sequence in armed:
        begin(session, route, now, move=True, sequence=sequence)


def _send_announce(session: MigrationPort, now: float) -> None:
    state = state_of(session)
    assert state.announce is not None
    state.announce_sends += 1
    state.announce_sent_at = now
    state.announce_due = now + session.config.resend_delay(state.announce_sends)
    _send(session, multipath.live(session), [state.announce])


# ----------------------------------------------------------------------
# validating candidates


def add_route(session: MigrationPort, route: Route, now: float) -> None:
    """Validate ``route`` and add it to the session's routes (at once if
    the session carries traffic, else when it does)."""
    if _carrying(session):
        begin(session, route, now, move=False)
        return
    state = state_of(session)
    if route not in state.pending:
        state.pending = [*state.pending, route][-MAX_PENDING:]


def begin(
    session: MigrationPort,
    route: Route,
    now: float,
    *,
    move: bool,
    sequence: int | None = None,
    passive: bool = False,
) -> None:
    """Start validating ``route`` (nothing if it is known or in progress)."""
    if multipath.is_known(session, route):
        return
    state = state_of(session)
    for challenge in state.challenges:
        if challenge.route == route:
            if move and not challenge.move:
                challenge.move = True
            if sequence is not None:
                challenge.sequence = sequence
            return
    if passive:
        until = state.held.get(route)
        if until is not None:
            if until > now:
                return
            del state.held[route]
    if len(state.challenges) >= MAX_CHALLENGES:
        state.refused += 1
        return
    token = session.owner.ctx.rng.random_bytes(PATH_TOKEN_SIZE)
    challenge = Challenge(token, route, move, sequence)
    state.challenges.append(challenge)
    _log.debug("session %s: validating route %s", session.peer_did, route)
    _send_challenge(session, challenge, now)


def _send_challenge(session: MigrationPort, challenge: Challenge, now: float) -> None:
    challenge.sends += 1
    challenge.due = now + session.config.resend_delay(challenge.sends)
    _send(session, [challenge.route], [PathChallenge(challenge.token)])


def check_source(session: MigrationPort, records: list[Record], source: Route, now: float) -> None:
    """An authenticated DATA packet came from ``source``: from an unknown
    route it is a passive migration (validate the route), unless the packet
    only probes (PATH_CHALLENGE/PATH_RESPONSE, as QUIC's probing packets:
    a peer validating a route has not moved to it)."""
    if multipath.is_known(session, source) or session.address is None:
        return
    if not _carrying(session):
        return
    if all(isinstance(r, PathChallenge | PathResponse) for r in records):
        return
    begin(session, source, now, move=True, passive=True)


def on_record(session: MigrationPort, record: Record, source: Route, now: float) -> None:
    """MIGRATE, PATH_CHALLENGE or PATH_RESPONSE from ``source``."""
    if not _carrying(session):
        return
    if isinstance(record, PathChallenge):
        # Answered where it came from; it also shows that our MIGRATE (if
        # any) arrived.
        if session.validation is not None:
            session.validation.announce = None
        _send(session, [source], [PathResponse(record.token)])
    elif isinstance(record, PathResponse):
        _on_response(session, record.token, now)
    elif isinstance(record, Migrate):
        _on_migrate(session, record, source, now)
    elif isinstance(record, PunchSync):
        state = state_of(session)
        if state.armed and not _leads(session):
            _fire(session, now)
        else:
            state.stray_syncs += 1


def _on_migrate(session: MigrationPort, record: Migrate, source: Route, now: float) -> None:
    state = state_of(session)
    assert session.channel is not None
    channel = session.channel.session_id
    if state.peer_channel != channel:
        # Sequences count per channel: a new channel (the peer may have
        # restarted) starts again; an old channel's packets cannot open.
        state.peer_channel = channel
        state.peer_seq = 0
    if record.sequence < state.peer_seq:
        state.stale_migrates += 1
        _log.debug(
            "session %s: MIGRATE %d is older than %d",
            session.peer_did,
            record.sequence,
            state.peer_seq,
        )
        return
    state.peer_seq = record.sequence
    # A newer MIGRATE supersedes the candidates of older ones.
    state.challenges = [
        c for c in state.challenges if c.sequence is None or c.sequence >= record.sequence
    ]
    state.armed = [a for a in state.armed if a[1] >= record.sequence]
    path = source[1]
    if session.owner.fixed_path_of(source[0]) is not None:
        if not session.config.hole_punching:
            state.refused += 1
            return
        # Announced through a relay: the endpoint is the peer's address as
        # a relay saw it, to punch through on our first direct path.
        path = session.owner.paths[0]
        route = (record.endpoint, path)
        if not multipath.is_known(session, route) and _arm(
            session, route, record.sequence, source, now
        ):
            return
    route = (record.endpoint, path)
    if route in multipath.others(session):
        _switch(session, route, now)  # validated before: no new challenge
    else:
        begin(session, route, now, move=True, sequence=record.sequence)


def _on_response(session: MigrationPort, token: bytes, now: float) -> None:
    state = state_of(session)
    found: Challenge | None = None
    for challenge in state.challenges:  # every one compared, in constant time
        if hmac.compare_digest(challenge.token, token):
            found = challenge
    if found is None:
        state.unknown_responses += 1
        return
    state.challenges.remove(found)
    state.validated += 1
    route = found.route
    if multipath.is_known(session, route):
        return
    current = multipath.primary(session)
    assert current is not None
    if found.move and (
        route[0] != current[0] or session.config.multipath is MultipathStrategy.FAILOVER
    ):
        _switch(session, route, now)
        return
    multipath.routes_of(session).add(route)
    _log.info("session %s: route %s validated", session.peer_did, route)
    session.owner.emit(PathValidated(session.peer_did, route[0], route[1]))


def _switch(session: MigrationPort, route: Route, now: float) -> None:
    """The peer is at ``route`` now: make it the primary and resend there.
    A relayed session that found a direct route keeps the relay as backup."""
    current = multipath.primary(session)
    relayed = current is not None and session.owner.fixed_path_of(current[0]) is not None
    old = multipath.switch_primary(
        session, route, moved=not relayed, resend=True, cause=ROUTE_MIGRATED, now=now
    )
    if old is None or old == route:
        return
    _log.info("session %s: migrated from %s to %s", session.peer_did, old, route)
    session.owner.emit(PathMigrated(session.peer_did, route[0], route[1], old[0], old[1]))
    session.owner.want_flush(session)


# ----------------------------------------------------------------------
# timers


def next_deadline(session: MigrationPort) -> float | None:
    state = session.validation
    if state is None:
        return None
    if not _busy(state) or not _carrying(session):
        return None
    if state.pending:
        return 0.0  # routes offered before the session carried traffic: now
    times = [c.due for c in state.challenges]
    if state.announce is not None:
        times.append(state.announce_due)
    for at in (state.fire_at, state.punch_wait_until):
        if at is not None:
            times.append(at)
    return min(times)


def _busy(state: PathValidation) -> bool:
    waits = (state.announce, state.fire_at, state.punch_wait_until)
    return bool(state.challenges or state.pending or any(w is not None for w in waits))


def on_timer(session: MigrationPort, now: float) -> None:
    """Resend or abandon challenges, resend an unanswered MIGRATE."""
    state = session.validation
    if state is None or not _busy(state):
        return
    if not _carrying(session):
        state.challenges = []
        state.announce = None
        state.armed, state.fire_at, state.punch_wait_until = [], None, None
        return
    if state.fire_at is not None and state.fire_at <= now:
        _fire(session, now)
    wait = state.punch_wait_until
    if wait is not None and wait <= now:
        # No MIGRATE from the leader: offer our address ourselves.
        state.punch_wait_until = None
        reflexive = session.owner.reflexive_of(session.address)
        if reflexive is not None:
            announce(session, reflexive, now)
    if state.pending:
        pending, state.pending = state.pending, []
        for route in pending:
            begin(session, route, now, move=False)
    for challenge in list(state.challenges):
        if challenge.due > now:
            continue
        if challenge.sends < CHALLENGE_TRIES:
            _send_challenge(session, challenge, now)
            continue
        state.challenges.remove(challenge)
        state.abandoned += 1
        if session.address is not None and session.owner.fixed_path_of(session.address):
            state.punch_failures += 1
            _log.warning(
                "session %s: hole punching to %s failed: no answer to %d challenges "
                "(a symmetric NAT on either side, or a firewall); staying on the relay",
                session.peer_did,
                challenge.route,
                CHALLENGE_TRIES,
            )
        else:
            _log.info(
                "session %s: route %s not validated, abandoned", session.peer_did, challenge.route
            )
        if challenge.sequence is None and challenge.move:
            state.held[challenge.route] = now + HOLD_OFF_INTERVALS * session.config.resend_interval
            while len(state.held) > MAX_HELD:
                del state.held[next(iter(state.held))]
    if state.announce is not None and state.announce_due <= now:
        if state.announce_sends < MIGRATE_TRIES:
            _send_announce(session, now)
        else:
            state.announce = None
