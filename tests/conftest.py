"""Shared fixtures: seeded randomness, a fixed clock, and two parties.

Party creation (identity + 100 signed one-time prekeys) costs tens of
milliseconds, so the default parties are built once per session; tests that
consume prekeys or change state build their own with ``make_party``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from l2session.crypto.rng import SeededRandom
from l2session.identity.prekeys import PrekeyPolicy
from l2session.testing.parties import Party

#: 2027-01-15T08:00:00Z: every test runs at this wall-clock time unless it
#: moves it on purpose.
NOW = 1_800_000_000.0


@pytest.fixture
def now() -> float:
    return NOW


@pytest.fixture
def rng() -> SeededRandom:
    return SeededRandom("l2session tests")


@pytest.fixture
def make_party() -> Callable[..., Party]:
    counter = iter(range(1_000_000))

    def build(
        name: str = "party", *, policy: PrekeyPolicy | None = None, now: float = NOW
    ) -> Party:
        return Party.create(SeededRandom(f"{name}-{next(counter)}"), now=now, policy=policy)

    return build


@pytest.fixture(scope="session")
def alice() -> Party:
    return Party.create(SeededRandom("alice"), now=NOW)


@pytest.fixture(scope="session")
def bob() -> Party:
    return Party.create(SeededRandom("bob"), now=NOW)
