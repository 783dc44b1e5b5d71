"""The application's view of one session: async send, receive and waits.

A :class:`SessionHandle` wraps a core :class:`~l2session.core.link.session.Session`
owned by a :class:`~l2session.runtime.node.Node`.  Everything it does is a
core call followed by a nudge of the node's pump (which seals, commits and
puts packets on the transports at the end of the current loop iteration);
waiting is done on a signal the node raises whenever the session's state
changes or messages arrive.  No protocol logic lives here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from l2session.core.link.envelope import Delivery, Request
from l2session.core.link.session import Session
from l2session.core.management.manager import SessionManager
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.errors import (
    AuthenticationFailed,
    SessionClosed,
    SessionTimeout,
    TransportFailed,
)
from l2session.runtime.waiting import Wakeup

#: States in which messages flow (sends go out at once).
_UP = frozenset({State.ESTABLISHED, State.ROTATING})


class HandleHost(Protocol):
    """The port a :class:`SessionHandle` uses (the Node satisfies it): the
    pump to nudge after each core call, the manager for new routes, and
    the set of handles the pump wakes whenever acknowledgements arrive."""

    @property
    def running(self) -> bool: ...

    @property
    def manager(self) -> SessionManager: ...

    @property
    def queue_waiters(self) -> set[SessionHandle]: ...

    @property
    def waiting(self) -> set[SessionHandle]: ...

    def kick(self) -> None: ...


class SessionHandle:
    """One session with one peer, as seen from asyncio (see module doc)."""

    __slots__ = ("_closed_reason", "_node", "_waits", "_wakeup", "session")

    def __init__(self, node: HandleHost, session: Session) -> None:
        self._node = node
        self.session = session
        self._wakeup = Wakeup()
        self._waits = 0  # coroutines in _wait (while > 0: in the node's waiting set)
        self._closed_reason: str | None = None

    def __repr__(self) -> str:
        return f"SessionHandle({self.peer_did!r}, state={self.state.value}, path={self.path})"

    # ------------------------------------------------------------------
    # introspection

    @property
    def peer_did(self) -> str:
        return self.session.peer_did

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def path(self) -> str:
        return self.session.path

    @property
    def address(self) -> str | None:
        return self.session.address

    @property
    def key_epoch(self) -> int | None:
        return self.session.key_epoch

    @property
    def queued(self) -> int:
        """Messages sent but not yet acknowledged by the peer."""
        return self.session.queued

    @property
    def available(self) -> int:
        """Messages delivered and waiting for :meth:`receive`."""
        return self.session.available

    @property
    def closed(self) -> bool:
        return self.session.closed

    @property
    def history(self) -> tuple[TransitionRecord, ...]:
        return self.session.history

    # ------------------------------------------------------------------
    # sending and receiving

    def send_nowait(self, data: bytes, *, request: Request | None = None) -> int:
        """Queue ``data`` (exactly-once, in order) and return its sequence
        number.  Raises QueueFull at the queue limit (backpressure).  With
        ``request`` the message asks the peer's Membrane for a capability;
        a refusal arrives as a MessageDenied event (and :meth:`denial`)."""
        seq = self.session.send(data, request)
        self._node.kick()
        return seq

    def denial(self, seq: int) -> str | None:
        """Why the peer refused our message ``seq``, if it did (the last
        1,024 refusals are remembered)."""
        denied = self.session.denied
        return None if denied is None else denied.get(seq)

    async def send(
        self, data: bytes, timeout: float | None = None, *, request: Request | None = None
    ) -> int:
        """:meth:`send_nowait`, but at the queue limit wait (up to
        ``timeout``) for the peer's acknowledgements to make room: the
        backpressure an asyncio producer wants."""
        session = self.session
        limit = session.config.max_queued
        if len(session.outbound) >= limit:
            await self._wait_queue(
                lambda: len(session.outbound) < limit or session.closed, timeout, "queue space"
            )
        return self.send_nowait(data, request=request)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the peer has acknowledged everything sent so far."""
        session = self.session
        await self._wait_queue(
            lambda: len(session.outbound) == 0 or session.closed,
            timeout,
            "acknowledgement of queued messages",
        )
        if session.closed and len(session.outbound):
            raise SessionClosed(f"the session with {self.peer_did} closed with messages unsent")

    async def acknowledged(self, seq: int, timeout: float | None = None) -> None:
        """Wait until the peer has acknowledged message ``seq``."""
        session = self.session
        outbound = session.outbound
        await self._wait_queue(
            lambda: outbound.acknowledged(seq) or session.closed, timeout, f"the ack of #{seq}"
        )
        if not outbound.acknowledged(seq):
            raise SessionClosed(f"the session with {self.peer_did} closed before #{seq} was acked")

    async def _wait_queue(
        self, ready: Callable[[], bool], timeout: float | None, what: str
    ) -> None:
        waiters = self._node.queue_waiters
        waiters.add(self)
        try:
            await self._wait(ready, timeout, what)
        finally:
            waiters.discard(self)

    async def receive(self, timeout: float | None = None) -> bytes:
        """The next message; waits up to ``timeout`` seconds (None: forever).
        Raises SessionTimeout, or SessionClosed once the session is closed
        and nothing is left to read."""
        messages = await self.receive_many(1, timeout)
        return messages[0]

    async def receive_many(
        self, max_count: int = 1024, timeout: float | None = None
    ) -> list[bytes]:
        """Between 1 and ``max_count`` messages, one commit for all of them."""
        return [d.payload for d in await self.receive_deliveries(max_count, timeout)]

    async def receive_deliveries(
        self, max_count: int = 1024, timeout: float | None = None
    ) -> list[Delivery]:
        """Like :meth:`receive_many`, with each message's sequence number
        and the capability it asked for (which this node's Membrane allowed)."""
        session = self.session
        await self._wait(lambda: session.available > 0 or session.closed, timeout, "a message")
        messages = session.receive_deliveries(max_count)
        if not messages:
            raise SessionClosed(
                f"the session with {self.peer_did} is closed ({self._closed_reason or 'closed'})"
            )
        self._node.kick()
        return messages

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            try:
                batch = await self.receive_many()
            except SessionClosed:
                return
            for message in batch:
                yield message

    def add_path(self, path: str, address: str | None = None) -> None:
        """Offer another route to the peer: another transport (``"tcp"``
        beside ``"quic"``) and/or another of its addresses.  It is validated
        by challenge/response, then used as ``SessionConfig.multipath``
        says (Failover: standby; LoadBalance: round robin; Aggregate: every
        packet on every route)."""
        target = address or self.address
        if target is None:
            raise TransportFailed(f"no address is known for {self.peer_did}")
        self._node.manager.add_route(self.peer_did, target, path)
        self._node.kick()

    # ------------------------------------------------------------------
    # states

    async def wait_state(self, *states: State, timeout: float | None = None) -> State:
        """Wait until the session is in one of ``states``."""
        wanted = frozenset(states)
        await self._wait(lambda: self.state in wanted, timeout, f"state {'/'.join(wanted)}")
        return self.state

    async def established(
        self, timeout: float | None = None, *, give_up: Callable[[], str | None] | None = None
    ) -> None:
        """Wait until messages flow.  Raises AuthenticationFailed if the peer
        failed to prove its DID, TransportFailed if the session failed for
        another reason, SessionTimeout after ``timeout``."""
        session = self.session

        def settled() -> bool:
            return (
                session.state in _UP
                or session.state is State.FAILED
                or session.closed
                or (give_up is not None and give_up() is not None)
            )

        await self._wait(settled, timeout, "establishment")
        if session.state in _UP:
            return
        why = None if give_up is None else give_up()
        if why is not None:
            raise TransportFailed(why)
        if session.closed:
            raise SessionClosed(f"the session with {self.peer_did} closed: {self._closed_reason}")
        last = session.history[-1] if session.history else None
        reason = last.reason if last else "failed"
        if last is not None and last.trigger is Trigger.INVALID_SIG:
            raise AuthenticationFailed(f"{self.peer_did} could not prove its DID: {reason}")
        raise TransportFailed(f"session with {self.peer_did} failed: {reason}")

    async def close(self, reason: str = "closed by application") -> None:
        """Tell the peer and forget the session (its queue is discarded)."""
        if not self.session.closed:
            self.session.close(reason)
            self._node.kick()
            await asyncio.sleep(0)

    # ------------------------------------------------------------------
    # called by the node

    def notify(self, closed_reason: str | None = None) -> None:
        if closed_reason is not None:
            self._closed_reason = closed_reason
        self._wakeup.notify()

    async def _wait(self, ready: Callable[[], bool], timeout: float | None, what: str) -> None:
        if ready():
            return
        # Registered while waiting: Node.wake visits only these handles.
        self._waits += 1
        self._node.waiting.add(self)
        try:
            outcome = await self._wakeup.wait(ready, timeout, lambda: self._node.running)
        finally:
            self._waits -= 1
            if not self._waits:
                self._node.waiting.discard(self)
        if outcome == "stopped":
            raise SessionClosed(f"the node stopped; waited for {what} from {self.peer_did}")
        if outcome == "timeout":
            raise SessionTimeout(
                f"waited {timeout} s for {what} from {self.peer_did} "
                f"(state {self.state.value}, path {self.path}, address {self.address})"
            )
