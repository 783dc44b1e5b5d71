"""Happy eyeballs: an establishment races the node's paths to the peer.

Why: a peer whose UDP is dropped (a firewall, a μTCP-only peer) never
answers QUIC, and a QUIC connect is declared failed only after the
transport's ``connect_timeout`` (seconds).  Waiting for that before trying
μTCP makes every establishment to such a peer slow, and when
``handshake_timeout`` is not longer than that wait, impossible.  So, as
RFC 8305 does for IPv6/IPv4, an attempt starts on the preferred path
(``paths[0]``: QUIC) and, if that path has not *progressed* -- no
connection up on it, and not one datagram heard from the peer -- within
``SessionConfig.path_race_delay`` (250 ms, RFC 8305's "Connection Attempt
Delay"), the same handshake packet
is sent on the next path too, and so on down the node's paths.  From then
on every handshake packet and every resend goes on all raced paths.

The first path that carries an *authenticated* answer (a verified prekey
bundle, an authenticated RESPONSE, RESUME_ACK or FINISH) from the peer's
address wins: it becomes the session's primary path and the race ends.  An
unauthenticated packet never picks the path, and only the path changes,
never the address (a packet from another address is at most a migration
candidate, core/paths/migration.py).  The losing path is not kept as a route;
the runtime keeps probing QUIC after it failed, and when QUIC comes up the
session moves back to it (core/paths/multipath.py, as after any fallback).

The responder answers a repeated INIT or RESUME on the path it arrived by
(same address), so whichever path works in both directions completes.

Sans-I/O: :func:`start` arms the race, :func:`next_deadline` and
:func:`on_timer` widen it, :func:`send` transmits on every raced path,
:func:`settle` ends it; :func:`follow` is the responder's side.
"""

from __future__ import annotations

import logging
from typing import Protocol, Self, TypeVar

from l2session.core.config import SessionConfig
from l2session.core.lifecycle.persistence import Journal
from l2session.core.paths.multipath import Route

S_contra = TypeVar("S_contra", contravariant=True)

_log = logging.getLogger("l2session.session")


class PathRace:
    """The paths one establishment attempt is using, and when to add the
    next one."""

    __slots__ = ("address", "paths", "widen_at")

    def __init__(self, address: str, first: str, widen_at: float | None) -> None:
        #: The peer's address the race is for (paths change, it does not).
        self.address = address
        #: Paths the handshake packets go on, in the order they joined.
        self.paths: list[str] = [first]
        #: When the next path joins (None: every path is in).
        self.widen_at = widen_at


class RaceOwner(Protocol[S_contra]):
    """What a path race needs of the session's owner (the manager)."""

    @property
    def paths(self) -> tuple[str, ...]: ...

    def is_outbound_only(self, address: str | None) -> bool: ...

    def fixed_path_of(self, address: str | None) -> str | None: ...

    def route_progressed(self, address: str, path: str) -> bool: ...

    def send_raw(self, address: str, path: str, data: bytes) -> None: ...

    def transmit(self, session: S_contra, data: bytes, /) -> None: ...

    def dirty(self, session: S_contra, /) -> None: ...


class RacePort(Protocol):
    """The fields of a session a path race reads and sets."""

    path: str
    race: PathRace | None

    @property
    def address(self) -> str | None: ...

    @property
    def peer_did(self) -> str: ...

    @property
    def config(self) -> SessionConfig: ...

    @property
    def handshake_packet(self) -> bytes | None: ...

    @property
    def journal(self) -> Journal | None: ...

    @property
    def owner(self) -> RaceOwner[Self]: ...


def start(session: RacePort, now: float) -> None:
    """A new initiator attempt: race from its primary path, if the node has
    another path to add."""
    address = session.address
    session.race = None
    delay = session.config.path_race_delay
    if address is None or delay is None or len(session.owner.paths) < 2:
        return
    if session.owner.is_outbound_only(address) or session.owner.fixed_path_of(address):
        return  # reached only over its live connection or its relay: nothing to race
    session.race = PathRace(address, session.path, now + delay)


def _next_path(session: RacePort, race: PathRace) -> str | None:
    for path in session.owner.paths:
        if path not in race.paths:
            return path
    return None


def next_deadline(session: RacePort) -> float | None:
    race = session.race
    return None if race is None else race.widen_at


def on_timer(session: RacePort, now: float) -> None:
    """Widen the race when its delay passed and no raced path progressed."""
    race = session.race
    if race is None or race.widen_at is None or now < race.widen_at:
        return
    owner = session.owner
    packet = session.handshake_packet
    if packet is None or race.address != session.address:
        session.race = None  # the attempt ended or the peer moved: nothing to race
        return
    if any(owner.route_progressed(race.address, path) for path in race.paths):
        race.widen_at = None  # a path connected: it carries the attempt (RFC 8305)
        return
    path = _next_path(session, race)
    if path is None:
        race.widen_at = None
        return
    delay = session.config.path_race_delay or 0.0
    _log.info(
        "session %s: %s has not connected to %s after %.0f ms, racing %s",
        session.peer_did,
        "/".join(race.paths),
        race.address,
        delay * 1000,
        path,
    )
    race.paths.append(path)
    race.widen_at = now + delay if _next_path(session, race) else None
    owner.send_raw(race.address, path, packet)


def send(session: RacePort, packet: bytes) -> None:
    """Transmit a handshake packet on the primary and every raced path."""
    owner = session.owner
    owner.transmit(session, packet)
    race = session.race
    if race is None or race.address != session.address:
        return
    for path in race.paths:
        if path != session.path:
            owner.send_raw(race.address, path, packet)


def settle(session: RacePort, source: Route | None, now: float) -> None:
    """An authenticated handshake answer arrived from ``source``: if it is
    a raced path to the peer's address, it wins and becomes the primary."""
    race = session.race
    if race is None or source is None:
        return
    address, path = source
    if address != race.address or path not in race.paths or address != session.address:
        return
    session.race = None
    if path != session.path:
        _log.info("session %s: %s won the path race to %s", session.peer_did, path, address)
        session.path = path
        if session.journal is not None:
            session.owner.dirty(session)  # the durable row names the primary


def follow(session: RacePort, source: Route | None) -> None:
    """The responder's side: the initiator's authenticated FINISH came by
    ``source``; when that is another path to the same address, the
    initiator's race settled there, so the responder's primary follows."""
    if source is None or source[0] != session.address or source[1] == session.path:
        return
    if source[1] in session.owner.paths:
        session.path = source[1]
        if session.journal is not None:
            session.owner.dirty(session)


def answer_route(session: RacePort, source: Route | None) -> Route | None:
    """Where a repeated opening packet from ``source`` is answered: the
    route it came by when that is the session's address (a racing
    initiator's copy on another path), else None (the primary)."""
    if source is None or source[0] != session.address:
        return None
    return source
