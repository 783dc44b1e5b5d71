"""The node's session handles: one per peer, the accept queue, wake-ups.

The core owns sessions; the application holds :class:`SessionHandle`
objects.  A :class:`HandleTable` keeps the one handle per peer DID (so
every ``node.session(did)`` returns the same object, and a wake-up reaches
every coroutine waiting on that session), the handles of sessions peers
opened until ``accept()`` takes them, and the handles waiting for their
queue to shrink.  It turns the core's events into those wake-ups
(:meth:`dispatch`); the pump calls it once per drain.

State is per run: the node makes a new table each time it starts.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from l2session.core.events import (
    MessagesAvailable,
    PathMigrated,
    SessionAccepted,
    SessionClosedEvent,
    SessionEvent,
    StateChanged,
)
from l2session.core.link.session import Session
from l2session.core.management.manager import SessionManager
from l2session.errors import SessionClosed, SessionTimeout
from l2session.runtime.directory import AddressBook
from l2session.runtime.events import NodeEvent
from l2session.runtime.handle import HandleHost, SessionHandle
from l2session.runtime.waiting import Wakeup


class HandleTable:
    """Handles by peer DID, the accept queue, and the queue waiters."""

    def __init__(
        self, host: HandleHost, max_pending_accepts: int, tell: Callable[[NodeEvent], None]
    ) -> None:
        self._host = host
        self._tell = tell
        self._handles: dict[str, SessionHandle] = {}
        #: Sessions peers opened, for accept() (bounded: the oldest
        #: unaccepted is dropped from this list, not closed).
        self._incoming: deque[SessionHandle] = deque(maxlen=max_pending_accepts)
        self._arrivals = Wakeup()
        #: Handles waiting for their queue to shrink (flush, send at the
        #: limit): acknowledgements raise no event, so each pump wakes them.
        self.queue_waiters: set[SessionHandle] = set()
        #: Handles with a coroutine waiting on them (SessionHandle._wait):
        #: what :meth:`wake` visits, instead of every session's handle.
        self.waiting: set[SessionHandle] = set()

    def handle(self, session: Session) -> SessionHandle:
        """The handle of ``session`` (made on first use; a new session
        with the same peer gets a new handle)."""
        handle = self._handles.get(session.peer_did)
        if handle is None or handle.session is not session:
            handle = self._handles[session.peer_did] = SessionHandle(self._host, session)
        return handle

    def forget(self, session: Session) -> None:
        self._handles.pop(session.peer_did, None)

    def wake(self, address: str) -> None:
        """Wake the waiters of every session at ``address``.  Only handles
        with a waiter are visited: a hub's paths come and go with its
        peers' connections, and visiting every session's handle each time
        made establishing N peers O(N²) (a fifth of a hub's CPU at 2,000)."""
        for handle in list(self.waiting):
            if handle.session.address == address:
                handle.notify()

    def wake_queue_waiters(self) -> None:
        if self.queue_waiters:
            for handle in list(self.queue_waiters):
                handle.notify()

    def stopped(self) -> None:
        """The node stopped: every waiter wakes (and raises SessionClosed)."""
        for handle in self._handles.values():
            handle.notify("the node stopped")
        self._arrivals.notify()

    def dispatch(
        self, events: list[SessionEvent], manager: SessionManager, directory: AddressBook
    ) -> None:
        """Wake the handles the core's ``events`` concern, queue sessions
        peers opened for accept(), learn addresses peers moved to, and tell
        the node's listeners (in event order)."""
        for event in events:
            if isinstance(event, StateChanged | MessagesAvailable):
                handle = self._handles.get(event.peer_did)
                if handle is not None:
                    handle.notify()
            elif isinstance(event, SessionAccepted):
                session = manager.session(event.peer_did)
                if session is not None:
                    self._incoming.append(self.handle(session))
                    self._arrivals.notify()
            elif isinstance(event, PathMigrated):
                directory.learn(event.peer_did, event.address)
                handle = self._handles.get(event.peer_did)
                if handle is not None:
                    handle.notify()
            elif isinstance(event, SessionClosedEvent):
                handle = self._handles.pop(event.peer_did, None)
                if handle is not None:
                    handle.notify(event.reason)
            self._tell(event)

    async def accept(self, timeout: float | None = None) -> SessionHandle:
        """The next session a peer opened (see :meth:`Node.accept`)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        incoming, host = self._incoming, self._host
        while True:
            while incoming:
                handle = incoming.popleft()
                if not handle.closed:
                    return handle
            if not host.running:
                raise SessionClosed("the node stopped")
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise SessionTimeout(f"no peer opened a session within {timeout} s")
            await self._arrivals.wait(lambda: bool(incoming), remaining, lambda: host.running)
