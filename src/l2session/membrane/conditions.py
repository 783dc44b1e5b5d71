"""Grant conditions and policy constraints, and how reasons show their values.

A :class:`~l2session.membrane.policy.Grant` holds *conditions* that must all
hold for it to allow a request (:class:`MemberOf`, :class:`Quota`,
:class:`Expires`, :class:`MinTrust`); a policy holds *constraints* checked
on every request (:class:`MinTrust`, :class:`Expires`, :class:`MaxUnits`).
Each is a frozen value validated at construction, so a policy cannot hold a
negative quota or a trust bound of 1.5 (:class:`~l2session.errors.ConfigError`
otherwise).

The display helpers live here because the decision's one-line reasons and
the policy file's messages must show times and windows the same way the
policy file writes them (``2026-12-31T23:59:59Z``, ``1h``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeAlias

from l2session.core.link.envelope import MAX_UNITS
from l2session.errors import ConfigError

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE: Final = (
    "1..64 letters, digits, '_', '.' or '-', starting with a letter or digit (such as 'berlin')"
)


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a group or a grant (None when it can).
    Names appear in one-line reasons and in ``group:NAME``, so they are
    plain: no spaces, quotes or colons."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return f"name {name!r} is not {NAME_RULE}"
    return None


#: Shortest quota window, in seconds.
MIN_WINDOW: Final = 1.0
#: Longest quota window, in seconds (366 days).
MAX_WINDOW: Final = 366 * 86_400.0
#: Latest expiry time: 9999-12-31T23:59:59Z (the last second ``datetime`` can show).
MAX_TIMESTAMP: Final = 253_402_300_799.0

# --------------------------------------------------------------------------
# Display helpers (one-line reasons and the loader's messages share them)


def format_time(at: float) -> str:
    """``at`` (UNIX seconds) as an ISO 8601 UTC date-time, ``...Z``, the way
    the policy file writes it."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_window(seconds: float) -> str:
    """A quota window the way the policy file writes it: ``"1h"``, ``"90m"``,
    ``"30s"`` (exact: the largest unit that divides it)."""
    if seconds == int(seconds):
        whole = int(seconds)
        for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
            if whole % size == 0:
                return f"{whole // size}{unit}"
        return f"{whole}s"
    return f"{seconds:g}s"


def format_span(seconds: float) -> str:
    """A time span for people, rounded up to the second and shown in its two
    largest units: ``"45s"``, ``"11m 30s"``, ``"2h 5m"``, ``"3d 4h"``."""
    total = max(1, math.ceil(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
            if len(parts) == 2 or not total:
                break
    return " ".join(parts)


# --------------------------------------------------------------------------
# Conditions and constraints


def _real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class MemberOf:
    """Grant condition: the peer DID is a member of the policy's group."""

    group: str

    def __post_init__(self) -> None:
        if not isinstance(self.group, str) or not _NAME.fullmatch(self.group):
            raise ConfigError(f"member_of: group name {self.group!r} is not {NAME_RULE}")

    def __str__(self) -> str:
        return f"member of group {self.group!r}"


@dataclass(frozen=True, slots=True)
class Quota:
    """Grant condition: at most ``units`` per peer in each fixed window of
    ``window`` seconds (window number ``floor(now / window)``), so it resets
    at window boundaries.  Fixed windows, not sliding ones, so that the
    ledger keeps one counter per peer and a reset time is easy to state."""

    units: int
    window: float

    def __post_init__(self) -> None:
        if type(self.units) is not int or not 1 <= self.units <= MAX_UNITS:
            raise ConfigError(f"quota units must be an int in 1..{MAX_UNITS}, got {self.units!r}")
        if not _real(self.window) or not MIN_WINDOW <= self.window <= MAX_WINDOW:
            raise ConfigError(
                f"quota window must be {MIN_WINDOW:g}..{MAX_WINDOW:g} seconds, got {self.window!r}"
            )
        object.__setattr__(self, "window", float(self.window))

    def __str__(self) -> str:
        return f"{self.units} units per {format_window(self.window)}"


@dataclass(frozen=True, slots=True)
class Expires:
    """Grant condition or policy constraint: valid while ``now < at``; at
    ``at`` exactly it has expired (the instant named is the first one
    refused, as "expires at midnight" means)."""

    at: float

    def __post_init__(self) -> None:
        if not _real(self.at) or not 0.0 <= self.at <= MAX_TIMESTAMP:
            raise ConfigError(
                f"expiry must be UNIX seconds between 1970 and 9999 ({MAX_TIMESTAMP:g}), "
                f"got {self.at!r}"
            )
        object.__setattr__(self, "at", float(self.at))

    def __str__(self) -> str:
        return f"expires {format_time(self.at)}"


@dataclass(frozen=True, slots=True)
class MinTrust:
    """Grant condition or policy constraint: the peer's QVL trust score must
    be at least ``score`` (exactly ``score`` passes)."""

    score: float

    def __post_init__(self) -> None:
        if not _real(self.score) or not 0.0 <= self.score <= 1.0:
            raise ConfigError(f"minimum trust must be a number in 0..1, got {self.score!r}")
        object.__setattr__(self, "score", float(self.score))

    def __str__(self) -> str:
        return f"trust at least {self.score:g}"


@dataclass(frozen=True, slots=True)
class MaxUnits:
    """Policy constraint: no single request may claim more than ``units``."""

    units: int

    def __post_init__(self) -> None:
        if type(self.units) is not int or not 1 <= self.units <= MAX_UNITS:
            raise ConfigError(f"max_units must be an int in 1..{MAX_UNITS}, got {self.units!r}")

    def __str__(self) -> str:
        return f"at most {self.units} units per request"


Condition: TypeAlias = MemberOf | Quota | Expires | MinTrust
Constraint: TypeAlias = MinTrust | Expires | MaxUnits

# The order conditions are checked (and reported) in: static checks first,
# the stateful quota last, so a refused request never reads the ledger.
CONDITION_ORDER: Final[dict[type, int]] = {Expires: 0, MinTrust: 1, MemberOf: 2, Quota: 3}
CONSTRAINT_ORDER: Final[dict[type, int]] = {Expires: 0, MaxUnits: 1, MinTrust: 2}


__all__ = [
    "CONDITION_ORDER",
    "CONSTRAINT_ORDER",
    "MAX_TIMESTAMP",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "NAME_RULE",
    "Condition",
    "Constraint",
    "Expires",
    "MaxUnits",
    "MemberOf",
    "MinTrust",
    "Quota",
    "format_span",
    "format_time",
    "format_window",
    "name_problem",
]
