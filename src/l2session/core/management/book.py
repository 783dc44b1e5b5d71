"""What the session manager knows: its sessions and how to reach them.

:class:`SessionBook` is the manager's base class, holding its tables: the
sessions by peer DID, by session id (DATA and handshake replies are routed
by it), by ticket id or bundle nonce (resumption and bundle answers), by
address (path edges reach the sessions they concern without walking every
session), the resumption tickets both ways, the quarantine list, and what
the runtime reported about paths.  Lookups and bookkeeping only: no timer,
no packet, no state transition happens here.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from l2session.core.config import SessionConfig
from l2session.core.lifecycle.persistence import Journal
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.session import Session
from l2session.errors import MalformedMessage

_log = logging.getLogger("l2session.session")

#: Answered resumption requests remembered for retransmissions.
ANSWERED_MEMORY: Final = 4096
#: Quarantine entries kept (oldest evicted first).
QUARANTINE_MEMORY: Final = 10_000


class SessionBook:
    """The manager's tables (see the module docstring)."""

    def __init__(
        self, config: SessionConfig, journal: Journal | None, paths: tuple[str, ...]
    ) -> None:
        self.journal = journal
        self.paths = paths
        self._quarantine_for = config.quarantine
        self.sessions: dict[str, Session] = {}
        #: Sessions by their primary address, and those with other routes
        #: too: path edges reach the sessions they concern without walking
        #: every session (O(sessions there), not O(N), per edge).
        self._by_address: dict[str, dict[Session, None]] = {}
        self._multiroute: dict[Session, None] = {}
        self._by_id: dict[bytes, Session] = {}
        self._by_ticket: dict[bytes, Session] = {}
        #: Tickets peers may resume with, by ticket id (responder side).
        self.tickets: dict[bytes, StoredSession] = {}
        #: Our own ticket per peer (initiator side).
        self.stored: dict[str, StoredSession] = {}
        self.answered: OrderedDict[bytes, tuple[bytes, bytes]] = OrderedDict()
        self._quarantine: OrderedDict[tuple[str, str | None], float] = OrderedDict()
        #: Paths the runtime reported lost, per address (until restored).
        self._paths_down: dict[str, set[str]] = {}
        #: Routes the runtime reported connected (a path race stops
        #: widening once one of its paths is up, core/paths/race.py).
        self._paths_up: dict[str, set[str]] = {}
        #: Set by the runtime: whether a path to an address has heard from
        #: the peer although it is not up yet (a QUIC handshake under way).
        self.path_progress: Callable[[str, str], bool] | None = None
        #: Set by the runtime: whether the peer at an address said it does
        #: not listen there (μTCP HELLO port 0).  Such an address is routed
        #: only by its live connection and never dialled: no fallback to
        #: another transport there, no retries; the session waits for the
        #: peer to come back.
        self.outbound_only: Callable[[str], bool] | None = None
        #: Set by the runtime: the one path an address can be reached on
        #: (a relay route: ``"relay"``), else None (any of ``paths``).
        self.fixed_path: Callable[[str], str | None] | None = None
        #: Set by the runtime: our reflexive address (as the relay of a
        #: relay route saw us, on the first direct path), for hole punching.
        self.reflexive: Callable[[str], str | None] | None = None

    def route(self, session: Session, session_id: bytes) -> None:
        self._by_id[session_id] = session

    def unroute(self, session: Session, session_id: bytes) -> None:
        if self._by_id.get(session_id) is session:
            del self._by_id[session_id]

    def route_ticket(self, session: Session, ticket_id: bytes) -> None:
        self._by_ticket[ticket_id] = session

    def unroute_ticket(self, ticket_id: bytes) -> None:
        self._by_ticket.pop(ticket_id, None)

    def save_ticket(self, stored: StoredSession) -> None:
        old = self.stored.get(stored.peer_did)
        if old is not None:
            self.tickets.pop(old.ticket_id, None)
        self.stored[stored.peer_did] = stored
        self.tickets[stored.ticket_id] = stored
        if self.journal is not None:
            self.journal.put_ticket(stored)

    def drop_ticket(self, stored: StoredSession) -> None:
        self.tickets.pop(stored.ticket_id, None)
        if self.stored.get(stored.peer_did) is stored:
            del self.stored[stored.peer_did]
            if self.journal is not None:
                self.journal.delete_ticket(stored.peer_did)

    def consume_ticket(self, stored: StoredSession, request: bytes, reply: bytes) -> None:
        """Single use: the ticket is gone before the answer leaves."""
        self.drop_ticket(stored)
        self.answered[stored.ticket_id] = (request, reply)
        while len(self.answered) > ANSWERED_MEMORY:
            self.answered.popitem(last=False)

    def quarantine(self, did: str, address: str | None, now: float) -> None:
        """Refuse ``did`` at ``address`` for ``quarantine`` seconds.  Keyed by
        address too, so that an impostor claiming someone's DID from
        elsewhere quarantines only itself."""
        key = (did, address)
        self._quarantine.pop(key, None)
        self._quarantine[key] = now + self._quarantine_for
        while len(self._quarantine) > QUARANTINE_MEMORY:
            self._quarantine.popitem(last=False)
        _log.warning("peer %s at %s quarantined for %.0f s", did, address, self._quarantine_for)

    def quarantined_until(self, did: str, address: str | None, now: float) -> float:
        until = self._quarantine.get((did, address), 0.0)
        if until and until <= now:
            del self._quarantine[(did, address)]
            return 0.0
        return until

    def _index(self, session: Session) -> None:
        session._indexed = True
        if session.address is not None:
            self._by_address.setdefault(session.address, {})[session] = None

    def _unindex(self, session: Session) -> None:
        if session._indexed:
            session._indexed = False
            self.address_moved(session, session.address, None)
            self._multiroute.pop(session, None)

    def address_moved(self, session: Session, old: str | None, new: str | None) -> None:
        """Keep the address index true (called by ``Session.address``)."""
        index = self._by_address
        if old is not None:
            here = index.get(old)
            if here is not None:
                here.pop(session, None)
                if not here:
                    del index[old]
        if new is not None:
            index.setdefault(new, {})[session] = None

    def multiroute(self, session: Session) -> None:
        """``session`` has routes besides its primary (core/paths/multipath.py)."""
        if session._indexed:
            self._multiroute[session] = None

    def sessions_at(self, address: str) -> list[Session]:
        """The sessions that use ``address``: as primary route or another
        validated one."""
        found = list(self._by_address.get(address, ()))
        for session in self._multiroute:
            routes = session.routes
            if (
                session.address != address
                and routes is not None
                and any(r[0] == address for r in routes.extra)
            ):
                found.append(session)
        return found

    def session(self, peer_did: str) -> Session | None:
        return self.sessions.get(peer_did)

    def pending_bundle(self, nonce: bytes) -> Session:
        session = self._by_ticket.get(nonce)
        if session is None or session.bundle_nonce != nonce:
            raise MalformedMessage("prekey bundle answers no request of ours")
        return session

    def ticket_session(self, ticket_id: bytes) -> Session:
        session = self._by_ticket.get(ticket_id)
        if session is None:
            raise MalformedMessage("resumption answer for no resumption of ours")
        return session

    def route_down(self, address: str, path: str) -> bool:
        """Whether the runtime reported ``path`` to ``address`` lost (and
        not yet restored)."""
        down = self._paths_down.get(address)
        return down is not None and path in down

    def route_up(self, address: str, path: str) -> bool:
        """Whether the runtime reported ``path`` to ``address`` connected
        (and not lost since)."""
        up = self._paths_up.get(address)
        return up is not None and path in up

    def reflexive_of(self, address: str | None) -> str | None:
        """Our address as the relay behind route ``address`` saw it, or None."""
        check = self.reflexive
        return None if address is None or check is None else check(address)

    def fixed_path_of(self, address: str | None) -> str | None:
        """The only path ``address`` is reached on, or None (see ``fixed_path``)."""
        check = self.fixed_path
        return None if address is None or check is None else check(address)

    def is_outbound_only(self, address: str | None) -> bool:
        """Whether ``address`` must never be dialled (see ``outbound_only``)."""
        check = self.outbound_only
        return address is not None and check is not None and check(address)

    def route_progressed(self, address: str, path: str) -> bool:
        """Whether ``path`` to ``address`` is up, or (asking the runtime's
        :attr:`path_progress`) has at least heard from the peer."""
        if self.route_up(address, path):
            return True
        progress = self.path_progress
        return progress is not None and progress(address, path)

    def by_id(self, session_id: bytes) -> Session | None:
        """The session a DATA packet or handshake reply with ``session_id``
        is for (None: unknown)."""
        return self._by_id.get(session_id)

    def remove(self, session: Session) -> bool:
        """Drop ``session`` from every table: by DID, by address, and every
        id it can be routed by (without scanning the tables).  Returns
        whether it was the session registered for its peer."""
        self._unindex(session)
        registered = self.sessions.get(session.peer_did) is session
        if registered:
            del self.sessions[session.peer_did]
        if session.channel is not None:
            self.unroute(session, session.channel.session_id)
        if session.handshake is not None:
            self.unroute(session, session.handshake.session_id)
        resume = session.resume
        for token in (session.bundle_nonce, resume.packet.ticket_id if resume else None):
            if token is not None and self._by_ticket.get(token) is session:
                del self._by_ticket[token]
        return registered
