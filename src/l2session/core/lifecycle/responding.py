"""Getting a session to ``established``, the responder's side once the
manager admitted an opening packet (:mod:`l2session.core.management.accepting`):
where its answers go, leaving an attempt of our own, FINISH, and arriving
at ``established`` from whatever state the session was in.

An inbound attempt never re-addresses an established session: its source
is answered and, once the attempt completes, validated as a migration
candidate (:func:`follow`).  Uses the session through
:class:`~l2session.core.lifecycle.establishment.EstablishmentPort`.
"""

from __future__ import annotations

import logging

from l2session.core.lifecycle.establishment import EstablishmentPort, adopt, on_established
from l2session.core.paths import migration, multipath, race
from l2session.core.paths.multipath import Route
from l2session.core.states import State, Trigger
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.errors import MalformedMessage

_log = logging.getLogger("l2session.session")


def answer_at(session: EstablishmentPort, address: str, path: str) -> None:
    """An inbound attempt came from ``(address, path)``.  A session that
    was never established moves there; an established one keeps its route
    (the packet's source is a claim anyone who captured it can make) and
    only answers there (:func:`follow` validates it afterwards)."""
    if not session.established_once or session.address is None:
        session.address, session.path = address, path
        session.handshake_route = None
    elif (address, path) == (session.address, session.path):
        session.handshake_route = None
    else:
        session.handshake_route = (address, path)


def follow(session: EstablishmentPort, now: float) -> None:
    """A completed inbound attempt came from elsewhere: that route becomes
    a migration candidate, used only once PATH_CHALLENGE validates it."""
    route, session.handshake_route = session.handshake_route, None
    if route is not None and not multipath.is_known(session, route):
        migration.begin(session, route, now, move=True)


def enter_as_responder(session: EstablishmentPort, now: float, reason: str) -> bool:
    """Move an existing or new session to where an inbound attempt is
    answered; returns False if the session is new (emit SessionAccepted)."""
    state = session.state
    if state is State.IDLE:
        session.fire(Trigger.RECEIVE_HANDSHAKE, now, reason)
        return False
    if state is State.SUSPENDED:
        session.fire(Trigger.RETRY, now, f"{reason} by peer")
    elif state is State.FAILED:
        session.fire(Trigger.RETRY_WITH_BACKOFF, now, f"{reason} by peer")
    if session.state is State.HANDSHAKE_INITIATED:
        if isinstance(session.handshake, InitiatorHandshake):
            session.owner.unroute(session, session.handshake.session_id)
        if session.resume is not None:
            session.owner.unroute_ticket(session.resume.packet.ticket_id)
        session.handshake = None
        session.resume = None
        session.bundle_nonce = None
    return True


def on_finish(
    session: EstablishmentPort, message: bytes, now: float, source: Route | None = None
) -> None:
    handshake = session.handshake
    if not isinstance(handshake, ResponderHandshake):
        raise MalformedMessage("handshake FINISH without a handshake waiting for it")
    result = handshake.receive_finish(message)
    race.follow(session, source)  # the path the initiator's race settled on
    adopt(session, result, now)
    # FINISH proves the initiator has our RESPONSE: nothing is left to
    # answer again (a late copy of INIT is refused by the replay guard), and
    # the cached INIT and RESPONSE are ~4 KB per session.
    session.answers = None
    arrive(session, now, "PQXDH complete")
    follow(session, now)


def arrive(session: EstablishmentPort, now: float, reason: str) -> None:
    """The responder's side of a completed attempt, from whatever state."""
    state = session.state
    if state is State.HANDSHAKE_RECEIVED:
        session.fire(Trigger.SEND_RESPONSE_ACK, now, reason)
    elif state is State.HANDSHAKE_INITIATED:
        session.fire(Trigger.RECEIVE_VALID_RESPONSE, now, f"{reason} (answered the peer's)")
    elif state is State.DEGRADED:
        session.fire(Trigger.CONNECTIVITY_RESTORED, now, f"{reason} (peer re-keyed)")
    elif state is State.ROTATING:
        session.fire(Trigger.ROTATION_COMPLETE, now, f"{reason} (peer re-keyed)")
    else:
        _log.info("session %s: re-keyed by the peer (%s)", session.peer_did, reason)
    on_established(session, now)
