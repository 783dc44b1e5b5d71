"""The quota ledger: how many units each peer used under each grant's quota
in the current window.

A :class:`~l2session.membrane.policy.Quota` allows ``units`` per peer per
fixed window of ``window`` seconds; the window a moment falls in is
``floor(now / window)``, so every count resets at the window boundary and
the ledger keeps one counter per (grant, peer): its window number and the
units used in it.  A counter from an earlier window reads as zero and is
overwritten on the next use.

Why bounded: peers are remote and numerous, and a ledger that grows with
every DID that ever asked would be a memory leak an attacker can drive.  At
``max_entries`` counters the ledger first forgets counters whose window has
ended (they read as zero anyway, so forgetting them changes no answer); if
every counter is still live it refuses to account for a new peer, and the
decision denies with "quota ledger full" rather than letting the ledger
grow or letting the peer through unaccounted.  Peers already counted keep
their service.  The sweep runs at most once per window end while the
ledger is full, so a flood of new peers costs one dictionary lookup each.

Deterministic: no clock (``now`` is passed in), no randomness.

Counters are keyed by (grant name, peer DID): the grant's ``id``, or
"grant #N" for a grant without one.  Why the name rather than the position:
a policy reload must not hand every peer a fresh quota, so a grant that
keeps its ``id`` keeps its counters (and a counter whose window length
changed reads as zero).  Unnamed grants are counted by position, so after a
reload that reorders them, :meth:`QuotaLedger.clear` is the safe choice.
"""

from __future__ import annotations

import math
from typing import Final

from l2session.core.link.envelope import MAX_UNITS
from l2session.errors import ConfigError
from l2session.membrane.policy import Grant, Quota

#: Counters a ledger keeps by default (about 10 MB at most).
DEFAULT_MAX_ENTRIES: Final = 100_000


class _Counter:
    """Units used by one peer under one grant in one window."""

    __slots__ = ("ends", "length", "used", "window")

    def __init__(self, window: int, length: float, used: int) -> None:
        self.window = window
        self.length = length
        self.used = used
        self.ends = (window + 1) * length


def _window(quota: Quota, now: float) -> int:
    if not math.isfinite(now):
        raise ConfigError(f"now must be a finite number of seconds, got {now!r}")
    return math.floor(now / quota.window)


class QuotaLedger:
    """Per (grant, peer) counters of units used in the current window."""

    __slots__ = ("_counters", "_max_entries", "_next_sweep")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise ConfigError(f"max_entries must be an int >= 1, got {max_entries!r}")
        self._max_entries = max_entries
        self._counters: dict[tuple[str, str], _Counter] = {}
        # When full, the earliest moment a counter's window ends (a sweep
        # before then would free nothing).
        self._next_sweep = -math.inf

    @property
    def max_entries(self) -> int:
        return self._max_entries

    @property
    def size(self) -> int:
        """Counters held now.  (A property rather than ``len()``: a ledger
        must not be falsy when empty, or ``ledger or QuotaLedger()`` would
        silently swap the caller's ledger for a new one.)"""
        return len(self._counters)

    def used(self, grant: Grant, peer_did: str, now: float) -> int:
        """Units ``peer_did`` used under ``grant``'s quota in the window of
        ``now`` (0 for a grant without a quota)."""
        quota = grant.quota
        if quota is None:
            return 0
        counter = self._counters.get((grant.name, peer_did))
        if counter is None or counter.length != quota.window:
            return 0
        if counter.window != _window(quota, now):
            return 0
        return counter.used

    def remaining(self, grant: Grant, peer_did: str, now: float) -> int:
        """Units ``peer_did`` may still use under ``grant`` in this window
        (:data:`~l2session.core.link.envelope.MAX_UNITS` without a quota)."""
        quota = grant.quota
        if quota is None:
            return MAX_UNITS
        return quota.units - self.used(grant, peer_did, now)

    @staticmethod
    def resets_at(grant: Grant, now: float) -> float:
        """When the window of ``now`` ends for ``grant``'s quota."""
        if grant.quota is None:
            raise ConfigError(f"{grant.label} has no quota")
        return (_window(grant.quota, now) + 1) * grant.quota.window

    def has_room(self, grant: Grant, peer_did: str, now: float) -> bool:
        """Whether the ledger can count ``peer_did`` under ``grant``: it
        already does, or it has room for one more counter (possibly after
        forgetting counters of ended windows, which changes no answer)."""
        counters = self._counters
        if len(counters) < self._max_entries or (grant.name, peer_did) in counters:
            return True
        if now < self._next_sweep:
            return False
        self._sweep(now)
        return len(counters) < self._max_entries

    def _sweep(self, now: float) -> None:
        counters = self._counters
        for key in [key for key, counter in counters.items() if counter.ends <= now]:
            del counters[key]
        if len(counters) >= self._max_entries:
            self._next_sweep = min(counter.ends for counter in counters.values())
        else:
            self._next_sweep = -math.inf

    def consume(self, grant: Grant, peer_did: str, units: int, now: float) -> None:
        """Count ``units`` used by ``peer_did`` under ``grant`` now.

        The decision checks first; this refuses (ConfigError, nothing
        counted) a grant without a quota, a use beyond the quota, or a new
        peer when the ledger is full, so the ledger never holds more than
        the quota allowed."""
        quota = grant.quota
        if quota is None:
            raise ConfigError(f"{grant.label} has no quota to consume")
        if type(units) is not int or not 1 <= units <= MAX_UNITS:
            raise ConfigError(f"units must be an int in 1..{MAX_UNITS}, got {units!r}")
        window = _window(quota, now)
        key = (grant.name, peer_did)
        counter = self._counters.get(key)
        if counter is None:
            if not self.has_room(grant, peer_did, now):
                raise ConfigError(f"quota ledger full ({len(self._counters)} counters)")
            if units > quota.units:
                raise ConfigError(f"{units} units exceed {grant.label}'s quota of {quota}")
            self._counters[key] = _Counter(window, quota.window, units)
            return
        live = counter.window == window and counter.length == quota.window
        used = counter.used if live else 0
        if used + units > quota.units:
            raise ConfigError(
                f"{used} + {units} units exceed {grant.label}'s quota of {quota} for {peer_did}"
            )
        if used == 0:
            counter.window = window
            counter.length = quota.window
            counter.ends = (window + 1) * quota.window
        counter.used = used + units

    def clear(self) -> None:
        """Forget every counter (after loading a different policy)."""
        self._counters.clear()
        self._next_sweep = -math.inf


__all__ = ["DEFAULT_MAX_ENTRIES", "QuotaLedger"]
