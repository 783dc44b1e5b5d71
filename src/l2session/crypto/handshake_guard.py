"""Refuse replayed or stale handshake INIT messages.

A captured INIT replayed to its responder must not make the responder do
work or answer again.  Two mechanisms together make that sound:

* **Freshness.**  INIT carries the initiator's wall-clock timestamp (signed).
  One further than ``max_skew`` seconds from the responder's clock is refused.
* **Memory.**  Every accepted INIT's (initiator DID, ephemeral key) is
  remembered until its timestamp leaves the freshness window; a second INIT
  with the same pair inside the window is a replay.  (Keyed by DID too, so
  that someone copying Alice's ephemeral key into their own INIT cannot
  block hers.)

So every replay is either remembered or stale -- across restarts too: a
node with a store gives the guard a ``sink`` that journals every accepted
INIT (committed before the RESPONSE leaves) and :meth:`restore`-s the
unexpired entries at start, so a captured INIT replayed to a restarted
responder is still refused.  One-time prekeys add a third
line: a consumed one-time prekey cannot be used again at all.  Memory is
bounded (``max_entries``); past it the oldest entries are dropped, which at
worst lets a replay reach the signature check and prekey lookup, never
complete a handshake (the attacker lacks the ephemeral private keys).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Final

from l2session.errors import ConfigError, HandshakeError, ReplayDetected

DEFAULT_MAX_SKEW: Final = 300.0
DEFAULT_MAX_ENTRIES: Final = 65_536

#: Told every accepted INIT: ``(key, expires, now)``, all seconds.
GuardSink = Callable[[bytes, float, float], None]


class HandshakeReplayGuard:
    """Freshness window plus memory of recently accepted INIT messages."""

    __slots__ = ("_entries", "_max_entries", "_max_skew", "sink")

    def __init__(
        self, *, max_skew: float = DEFAULT_MAX_SKEW, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        if not max_skew > 0:
            raise ConfigError(f"max_skew must be positive seconds, got {max_skew!r}")
        if max_entries < 1:
            raise ConfigError(f"max_entries must be at least 1, got {max_entries!r}")
        self._max_skew = float(max_skew)
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        #: Called with every accepted INIT (a node's store journals it).
        self.sink: GuardSink | None = None

    @property
    def max_skew(self) -> float:
        return self._max_skew

    @property
    def remembered(self) -> int:
        """How many accepted INIT messages are remembered now.  (Deliberately
        not ``__len__``: an empty guard must not be falsy.)"""
        return len(self._entries)

    def check(self, key: bytes, timestamp_ms: int, now: float) -> None:
        """Raise if the INIT is stale or already seen.  Changes nothing."""
        offset = timestamp_ms / 1000.0 - now
        if abs(offset) > self._max_skew:
            direction = "ahead of" if offset > 0 else "behind"
            raise HandshakeError(
                f"handshake timestamp is {abs(offset):.0f} s {direction} this node's clock "
                f"(at most {self._max_skew:.0f} s allowed); check both clocks"
            )
        expiry = self._entries.get(key)
        if expiry is not None and expiry >= now:
            raise ReplayDetected("handshake INIT was already received (replay)")

    def commit(self, key: bytes, timestamp_ms: int, now: float) -> None:
        """Remember an accepted INIT until it can no longer pass :meth:`check`."""
        entries = self._entries
        while entries:
            oldest_key = next(iter(entries))
            if entries[oldest_key] >= now and len(entries) < self._max_entries:
                break
            del entries[oldest_key]
        expires = timestamp_ms / 1000.0 + self._max_skew
        entries[key] = expires
        if self.sink is not None:
            self.sink(key, expires, now)

    def restore(self, entries: Iterable[tuple[bytes, float]], now: float) -> None:
        """Remember ``(key, expires)`` entries kept by a store (those
        expired at ``now`` are skipped), soonest expiry first.  Past
        ``max_entries`` the soonest to expire are left out, as
        :meth:`commit` drops them: the latest INITs are the ones a replay
        is most likely to reuse (and the store may hold more than fit)."""
        fresh = sorted(
            ((bytes(key), float(expires)) for key, expires in entries if expires >= now),
            key=lambda entry: entry[1],
        )
        room = self._max_entries - len(self._entries)
        for key, expires in fresh[max(len(fresh) - room, 0) :]:
            self._entries[key] = expires
