"""Fault injection at the node's edge, for the demo and tests.

Drops packets between the node's session manager and its transports, both
directions, for a peer address and/or a path: a *partition* as the session
sees it (its connections stay open, nothing gets through, so heartbeats go
unanswered).  It does not touch the kernel; issue 7's chaos tests do that
with nftables in network namespaces.  To make a transport itself fail (QUIC
blocked, so connecting times out), use that transport's ``drop_filter``.
"""

from __future__ import annotations


class Faults:
    """Rules of the form (address or None, path or None): drop matches."""

    __slots__ = ("_rules",)

    def __init__(self) -> None:
        self._rules: set[tuple[str | None, str | None]] = set()

    def block(self, address: str | None = None, path: str | None = None) -> None:
        """Drop everything to and from ``address`` on ``path`` (None: any)."""
        self._rules.add((address, path))

    def unblock(self, address: str | None = None, path: str | None = None) -> None:
        self._rules.discard((address, path))

    def clear(self) -> None:
        self._rules.clear()

    def drops(self, address: str, path: str) -> bool:
        rules = self._rules
        if not rules:
            return False
        return (
            (address, path) in rules
            or (address, None) in rules
            or (None, path) in rules
            or (None, None) in rules
        )

    def __bool__(self) -> bool:
        return bool(self._rules)
