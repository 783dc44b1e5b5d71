"""What ``l2session node`` prints: timestamped lines (or JSON objects), with
repeats rate-limited per peer and reason.

A node whose peer is away would otherwise print ``path tcp to … down:
connect failed`` about once a second for as long as the peer stays away.
Each line has a key (its kind, its peer or address, and its reason); the
first line of a key is printed, repeats within ``interval`` seconds are
counted instead, and the next line of that key printed says how many were
held back.  The library's own warnings (the ``l2session`` loggers) go
through the same limiter.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import OrderedDict
from typing import Any, Final, TextIO

#: Keys remembered by the limiter (the oldest forgotten first).
MAX_KEYS: Final = 10_000


class RateLimiter:
    """At most one line per key per ``interval`` seconds."""

    def __init__(self, interval: float, clock: Any = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: OrderedDict[tuple[str, ...], tuple[float, int]] = OrderedDict()

    def allow(self, key: tuple[str, ...]) -> int | None:
        """None: hold this line back (counted).  Else the number of lines
        of this key held back since the last one printed."""
        now = self.clock()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._last[key] = (seen[0], seen[1] + 1)
            return None
        held = 0 if seen is None else seen[1]
        self._last.pop(key, None)
        self._last[key] = (now, 0)
        while len(self._last) > MAX_KEYS:
            self._last.popitem(last=False)
        return held


def timestamp(at: float | None = None) -> str:
    """UTC, ISO 8601, milliseconds: ``2026-12-07T01:02:03.456Z``."""
    at = time.time() if at is None else at
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


class NodeLog:
    """The node's output: one line per event, ``text`` or ``json``."""

    def __init__(self, out: TextIO, *, fmt: str = "text", interval: float = 60.0) -> None:
        self.out = out
        self.json = fmt == "json"
        self.limiter = RateLimiter(interval)

    def line(self, text: str, *, key: tuple[str, ...] | None = None, **fields: Any) -> None:
        """Print ``text`` (``fields`` in JSON mode), unless ``key`` was
        printed within the interval."""
        if key is not None:
            held = self.limiter.allow(key)
            if held is None:
                return
            if held:
                text += f" ({held} more like it held back)"
                fields["held_back"] = held
        if self.json:
            self.out.write(json.dumps({"ts": timestamp(), "msg": text, **fields}) + "\n")
        else:
            self.out.write(f"{timestamp()} {text}\n")
        self.out.flush()


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.as_json:
            fields = getattr(record, "l2session", None)
            body = {"ts": timestamp(record.created), "level": record.levelname.lower()}
            body.update({"logger": record.name, "msg": message})
            if isinstance(fields, dict):
                body.update({k: v for k, v in fields.items() if k not in body})
            return json.dumps(body, default=str)
        return f"{timestamp(record.created)} {record.levelname.lower()}: {message}"


class _Limit(logging.Filter):
    def __init__(self, limiter: RateLimiter) -> None:
        super().__init__()
        self.limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "l2session", None)
        if isinstance(fields, dict) and fields.get("event") == "store_failed":
            return False  # the node's exit line says it (cli/commands.py)
        if record.levelno >= logging.ERROR:
            return True
        first = str(record.args[0]) if isinstance(record.args, tuple) and record.args else ""
        return self.limiter.allow((record.name, str(record.msg), first)) is not None


def setup_logging(log: NodeLog, verbose: int) -> None:
    """The library's log records on stderr, formatted as ``log``, warnings
    and up (``-v``: info, ``-vv``: debug), rate-limited like node lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(log.json))
    handler.addFilter(_Limit(log.limiter))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
