"""Waiting on a condition the node's pump changes: one wake-up per handle.

A session handle (native or federated) waits for its session to reach a
condition: established, a message to read, room in the queue, an
acknowledgement.  Conditions change only when the node's pump (or the
federation's bridges) processed something, and those call
:meth:`Wakeup.notify`; the waiter then checks its condition again.  The
wait is bounded by a timeout and ends when the node stops.

``notify`` is on the hot path (every event of a session calls it), so it
costs nothing while no one waits.  Each waiting coroutine parks on one
bare future with, when bounded, one ``call_later`` for its deadline: an
``Event`` plus ``asyncio.wait_for`` (a task and a timer per wait) cost a
round trip about 5% (issue 18's profile).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal

#: How a wait ended: the condition holds, the node stopped, or time ran out.
Outcome = Literal["ready", "stopped", "timeout"]


class Wakeup:
    """The wake-up signal of one handle and the bounded wait on it."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        """Wake every current waiter (they re-check their condition)."""
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(
        self, ready: Callable[[], bool], timeout: float | None, running: Callable[[], bool]
    ) -> Outcome:
        """Wait until ``ready()``, for at most ``timeout`` seconds (None:
        no limit), and no longer than ``running()`` holds."""
        if ready():
            return "ready"
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not ready():
            if not running():
                return "stopped"
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return "timeout"
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timer = None if remaining is None else loop.call_later(remaining, _wake, waiter)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                if not waiter.done() or waiter.cancelled():  # we were cancelled: forget it
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
        return "ready"


def _wake(waiter: asyncio.Future[None]) -> None:
    """A wait's deadline: wake it to find the time passed."""
    if not waiter.done():
        waiter.set_result(None)
