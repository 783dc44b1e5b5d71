"""Waiting on a condition the node's pump changes: one wake-up per handle.

A session handle (native or federated) waits for its session to reach a
condition: established, a message to read, room in the queue, an
acknowledgement.  Conditions change only when the node's pump (or the
federation's bridges) processed something, and those call
:meth:`Wakeup.notify`; the waiter then checks its condition again.  The
wait is bounded by a timeout and ends when the node stops.

``notify`` is on the hot path (every event of a session calls it), so it
costs nothing while no one waits: the event is only replaced and set when
a waiter counted itself in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

#: How a wait ended: the condition holds, the node stopped, or time ran out.
Outcome = Literal["ready", "stopped", "timeout"]


class Wakeup:
    """The wake-up signal of one handle and the bounded wait on it."""

    __slots__ = ("_event", "_waiting")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._waiting = 0  # coroutines in wait(): notify() is free without them

    def notify(self) -> None:
        """Wake every current waiter (they re-check their condition)."""
        if self._waiting:
            event, self._event = self._event, asyncio.Event()
            event.set()

    async def wait(
        self, ready: Callable[[], bool], timeout: float | None, running: Callable[[], bool]
    ) -> Outcome:
        """Wait until ``ready()``, for at most ``timeout`` seconds (None:
        no limit), and no longer than ``running()`` holds."""
        if ready():
            return "ready"
        self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            while not ready():
                if not running():
                    return "stopped"
                event = self._event
                if deadline is None:
                    await event.wait()
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return "timeout"
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    continue
            return "ready"
        finally:
            self._waiting -= 1
