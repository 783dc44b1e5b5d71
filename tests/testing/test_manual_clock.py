"""ManualClock: the injectable TimeSource of SPEC-018 §6.3 for tests."""

from __future__ import annotations

import math

import pytest

from l2session.core.clock import TimeSource
from l2session.errors import ConfigError
from l2session.testing import ManualClock


def test_it_is_a_time_source() -> None:
    clock: TimeSource = ManualClock()
    assert isinstance(clock, TimeSource)
    assert clock.now() == 0.0


def test_time_stands_still_until_moved() -> None:
    clock = ManualClock(1_800_000_000.0)
    assert clock.now() == clock.now() == 1_800_000_000.0


def test_advance_moves_forward_and_returns_the_new_time() -> None:
    clock = ManualClock(10.0)
    assert clock.advance(30.0) == 40.0
    assert clock.advance(0) == 40.0
    assert clock.now() == 40.0


def test_advance_refuses_negative_steps() -> None:
    clock = ManualClock(5.0)
    with pytest.raises(ConfigError, match="seconds"):
        clock.advance(-0.001)
    assert clock.now() == 5.0


def test_set_jumps_forward_and_refuses_going_backwards() -> None:
    clock = ManualClock(100.0)
    assert clock.set(100.0) == 100.0
    assert clock.set(86_400.0) == 86_400.0
    with pytest.raises(ConfigError, match="earlier"):
        clock.set(86_399.9)
    assert clock.now() == 86_400.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_times_are_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="start"):
        ManualClock(bad)
    clock = ManualClock()
    with pytest.raises(ConfigError, match="seconds"):
        clock.advance(bad)
    with pytest.raises(ConfigError):
        clock.set(bad)


def test_non_numbers_are_refused() -> None:
    with pytest.raises(TypeError):
        ManualClock("0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ManualClock().advance(True)
