"""Run a coroutine on the fastest event loop installed.

uvloop (``pip install l2session[fast]``) when it is importable, else the
standard asyncio loop.  The node works on either; the CLI, the demo and the
benchmarks start here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, on uvloop when installed."""
    # Not inside ``except ImportError``: every exception the coroutine
    # raised would carry "No module named 'uvloop'" as its context.
    try:
        import uvloop
    except ImportError:
        fast = False
    else:
        fast = True
    if not fast:
        return asyncio.run(coro)
    return uvloop.run(coro)
