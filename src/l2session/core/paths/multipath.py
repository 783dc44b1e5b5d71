"""Multipath: the validated routes of a session and how packets use them.

A *route* is ``(address, path)``: where the peer is and over which
transport ("quic", "tcp", ...).  A session's **primary** route is
``session.address``/``session.path`` (what establishment, persistence and
quarantine know); :class:`Routes` keeps the others that were validated
(:mod:`l2session.core.paths.migration`: a PATH_CHALLENGE answered in the
channel) or that were the primary before a failover, in order of
preference.  A route the runtime reported lost
(``SessionManager.connectivity(..., up=False)``) stays known but is skipped
until it is reported up again, so ``up=True`` re-adds a route that was
validated before without a new challenge.

The :class:`MultipathStrategy` (``SessionConfig.multipath``) decides where
each DATA packet goes once the session carries traffic:

* ``FAILOVER`` (default): everything on the primary; when the primary is
  lost, the next live validated route becomes primary (then, as before
  multipath, another transport to the same address), and what is
  unacknowledged is resent there;
* ``LOAD_BALANCE``: packets round-robin over the live routes;
* ``AGGREGATE``: each packet on every live route (the same sealed bytes:
  the receiver's replay window drops the copies, delivery stays exactly
  once; it costs bandwidth, not keys).

Handshake packets always use the primary.  Keys never depend on the route,
so none of this rekeys.  Sans-I/O like the rest of :mod:`l2session.core`.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol, Self, TypeVar

from l2session.core.config import MultipathStrategy, SessionConfig
from l2session.core.lifecycle.persistence import (
    ROUTE_FAILOVER,
    ROUTE_RESTORED,
    Journal,
    RouteRecord,
)
from l2session.core.link.delivery import Outbound
from l2session.core.states import CARRYING, State

__all__ = [
    "MAX_ROUTES",
    "MultipathOwner",
    "MultipathPort",
    "MultipathStrategy",
    "Route",
    "Routes",
    "is_known",
    "live",
    "on_connectivity",
    "others",
    "primary",
    "routes_of",
    "switch_primary",
    "targets",
]

S_contra = TypeVar("S_contra", contravariant=True)

_log = logging.getLogger("l2session.session")

#: ``(address, path)``.
Route = tuple[str, str]

#: Routes a session keeps besides its primary (the oldest is dropped past it).
MAX_ROUTES: Final = 8


class Routes:
    """The known routes of one session other than its primary."""

    __slots__ = ("extra", "turn")

    def __init__(self) -> None:
        #: Validated (or formerly primary) routes, most preferred first.
        self.extra: list[Route] = []
        #: Round-robin position for LOAD_BALANCE.
        self.turn = 0

    def add(self, route: Route) -> None:
        if route not in self.extra:
            self.extra.append(route)
            if len(self.extra) > MAX_ROUTES:
                del self.extra[0]

    def discard(self, route: Route) -> None:
        if route in self.extra:
            self.extra.remove(route)

    def drop_address(self, address: str) -> None:
        """Forget every route to ``address`` (the peer left it)."""
        self.extra = [r for r in self.extra if r[0] != address]


class MultipathOwner(Protocol[S_contra]):
    """What multipath needs of the session's owner (the manager)."""

    @property
    def paths(self) -> tuple[str, ...]: ...

    def route_down(self, address: str, path: str) -> bool: ...

    def is_outbound_only(self, address: str | None) -> bool: ...

    def fixed_path_of(self, address: str | None) -> str | None: ...

    def transmit(self, session: S_contra, data: bytes, /) -> None: ...

    def dirty(self, session: S_contra, /) -> None: ...

    def multiroute(self, session: S_contra, /) -> None: ...


class MultipathPort(Protocol):
    """The fields and calls of a session that multipath uses."""

    path: str
    routes: Routes | None

    @property
    def address(self) -> str | None: ...

    @address.setter
    def address(self, value: str | None) -> None: ...

    @property
    def peer_did(self) -> str: ...

    @property
    def config(self) -> SessionConfig: ...

    @property
    def state(self) -> State: ...

    @property
    def journal(self) -> Journal | None: ...

    @property
    def outbound(self) -> Outbound: ...

    @property
    def handshake_packet(self) -> bytes | None: ...

    @property
    def owner(self) -> MultipathOwner[Self]: ...

    def connectivity(self, up: bool, now: float) -> None: ...

    def flush(self, now: float) -> None: ...


def routes_of(session: MultipathPort) -> Routes:
    """``session.routes``, allocated on first use (most sessions never
    have a second route: they pay one empty slot)."""
    routes = session.routes
    if routes is None:
        routes = session.routes = Routes()
        session.owner.multiroute(session)
    return routes


def others(session: MultipathPort) -> list[Route]:
    """The session's other known routes (read-only use)."""
    routes = session.routes
    return routes.extra if routes is not None else []


def primary(session: MultipathPort) -> Route | None:
    address = session.address
    return None if address is None else (address, session.path)


def is_known(session: MultipathPort, route: Route) -> bool:
    """Whether ``route`` is the primary or another validated route."""
    if route[0] == session.address and route[1] == session.path:
        return True
    routes = session.routes
    return routes is not None and route in routes.extra


def live(session: MultipathPort) -> list[Route]:
    """The routes packets may use now: the primary first, then the other
    validated routes the runtime has not reported lost."""
    first = primary(session)
    if first is None:
        return []
    down = session.owner.route_down
    routes = [r for r in (first, *others(session)) if not down(*r)]
    return routes or [first]


def targets(session: MultipathPort) -> list[Route]:
    """Where the next packet of ``session`` goes, by its strategy."""
    first = primary(session)
    assert first is not None
    strategy = session.config.multipath
    known = session.routes
    if (
        known is None
        or not known.extra
        or strategy is MultipathStrategy.FAILOVER
        or session.state not in CARRYING
    ):
        return [first]
    routes = live(session)
    if strategy is MultipathStrategy.AGGREGATE:
        return routes
    turn = known.turn
    known.turn = turn + 1
    return [routes[turn % len(routes)]]


def switch_primary(
    session: MultipathPort, route: Route, *, moved: bool, resend: bool, cause: str, now: float
) -> Route | None:
    """Make ``route`` the primary; returns the previous one.  ``moved``:
    the peer left the old address, so its routes are forgotten; otherwise
    the old primary stays known (a failover can come back to it).
    ``resend``: what is unacknowledged may have been lost on the old route.
    A change is recorded in the audit log with ``cause`` (a
    ``persistence.ROUTE_*`` name) when the session is persistent."""
    old = primary(session)
    routes = routes_of(session)
    routes.discard(route)
    if old is not None and old != route:
        if moved and old[0] != route[0]:
            routes.drop_address(old[0])
        else:
            routes.add(old)
    session.address, session.path = route
    if resend:
        session.outbound.resend_all()
    journal = session.journal
    if journal is not None:
        session.owner.dirty(session)  # the durable row names the primary
        if old is not None and old != route:
            journal.append_audit(
                RouteRecord(session.peer_did, route[0], route[1], old[0], old[1], cause, now)
            )
    return old


def _alternative(session: MultipathPort) -> Route | None:
    """Where a session goes when its primary is lost: the next live
    validated route, else another transport to the same address (unless
    the peer does not listen there: an outbound-only peer)."""
    down = session.owner.route_down
    for route in others(session):
        if not down(*route):
            return route
    address = session.address
    assert address is not None
    if session.owner.is_outbound_only(address) or session.owner.fixed_path_of(address):
        return None  # only its connection (or its relay) reaches it there
    for path in session.owner.paths:
        if not down(address, path):
            return (address, path)
    return None


def on_connectivity(session: MultipathPort, address: str, path: str, up: bool, now: float) -> bool:
    """The runtime reports ``(address, path)`` lost or restored (the
    manager has recorded it, see ``SessionManager.route_down``).  Returns
    whether ``session`` uses that route (and needs rescheduling)."""
    current = primary(session)
    if current is None:
        return False
    route = (address, path)
    owner = session.owner
    if not up:
        if route == current:
            alternative = _alternative(session)
            if alternative is None:
                # Every route is down: the session must learn it (degraded
                # after connectivity_timeout), not bounce between dead paths.
                session.connectivity(False, now)
                return True
            _log.info("session %s: route %s lost, now on %s", session.peer_did, route, alternative)
            switch_primary(
                session, alternative, moved=False, resend=True, cause=ROUTE_FAILOVER, now=now
            )
            if session.handshake_packet is not None:
                owner.transmit(session, session.handshake_packet)
            session.flush(now)
            return True
        if route in others(session):
            if session.config.multipath is not MultipathStrategy.FAILOVER:
                # Packets spread onto it may be lost: resend on the others.
                session.outbound.resend_all()
                session.flush(now)
            return True
        return False
    if address != current[0] and route not in others(session):
        return False
    relayed = owner.fixed_path_of(current[0]) is not None
    if route != current and (
        owner.route_down(*current)
        or (address == current[0] and path == owner.paths[0] and current[1] != path)
        or (relayed and route in others(session) and owner.fixed_path_of(address) is None)
    ):
        # A live route where the primary is dead, the preferred transport
        # to the same address works again, or a direct route is back while
        # the session is relayed (the relay is the backup, not the goal).
        preferred = (address == current[0] and path == owner.paths[0]) or relayed
        switch_primary(
            session,
            route,
            moved=False,
            resend=owner.route_down(*current),
            cause=ROUTE_RESTORED if preferred else ROUTE_FAILOVER,
            now=now,
        )
    session.connectivity(True, now)
    return True
