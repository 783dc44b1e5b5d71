"""Bounded waits for the real-socket tests: every scenario runs under a
wall-clock limit, every poll loop under a count."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from l2session.runtime.handle import SessionHandle

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], limit: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


async def until(ready: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    for _ in range(int(limit / 0.01)):
        if ready():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def drain(handle: SessionHandle, count: int, into: list[bytes]) -> None:
    """Receive into ``into`` until it holds ``count`` messages."""
    for _ in range(count + 1):
        if len(into) >= count:
            return
        into += await handle.receive_many(timeout=15)
    raise AssertionError(f"{len(into)} of {count} messages arrived")
