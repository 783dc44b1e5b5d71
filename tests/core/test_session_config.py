"""SessionConfig and ReconnectionPolicy: spec defaults, refusals that name
the field, and the backoff schedule."""

from __future__ import annotations

import math

import pytest

from l2session.core.config import ReconnectionPolicy, SessionConfig, SessionKind
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError


def test_spec_defaults() -> None:
    config = SessionConfig()
    assert config.ttl == 24 * 3600
    assert config.heartbeat_interval == 30
    assert config.heartbeat_tolerance == 3
    assert config.handshake_timeout == 5
    assert config.rotation_window == 3600
    assert config.rotate_at_age == 23 * 3600
    assert config.kind is SessionKind.PERSISTENT
    policy = config.reconnect
    assert (policy.initial_delay, policy.backoff_multiplier, policy.max_delay) == (1, 2, 30)
    assert policy.max_attempts == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ttl", 0),
        ("ttl", -1),
        ("heartbeat_interval", 0),
        ("handshake_timeout", -5),
        ("rotation_window", 0),
        ("heartbeat_timeout", math.inf),
        ("quarantine", math.nan),
        ("heartbeat_tolerance", 0),
        ("max_queued", 0),
        ("max_message_size", 10**9),
        ("rekey_after_messages", 0),
    ],
)
def test_invalid_values_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"SessionConfig.{field}"):
        SessionConfig(**{field: value})  # type: ignore[arg-type]


def test_rotation_window_must_be_shorter_than_ttl() -> None:
    with pytest.raises(ConfigError, match="rotation_window"):
        SessionConfig(ttl=3600, rotation_window=3600)


def test_rotation_timeout_must_fit_the_window() -> None:
    with pytest.raises(ConfigError, match="rotation_timeout"):
        SessionConfig(ttl=100, rotation_window=10, rotation_timeout=20)


def test_heartbeat_timeout_shorter_than_interval() -> None:
    with pytest.raises(ConfigError, match="heartbeat_timeout"):
        SessionConfig(heartbeat_interval=2, heartbeat_timeout=2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", -1),
        ("initial_delay", 0),
        ("max_delay", -1),
        ("backoff_multiplier", 0.5),
        ("jitter", 1.0),
    ],
)
def test_policy_refusals_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"ReconnectionPolicy.{field}"):
        ReconnectionPolicy(**{field: value})  # type: ignore[arg-type]


def test_backoff_doubles_then_caps_at_30_seconds() -> None:
    policy = ReconnectionPolicy()
    assert [policy.base_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert policy.base_delay(10_000) == 30  # no overflow


def test_jitter_stays_within_its_band_and_varies() -> None:
    policy = ReconnectionPolicy(jitter=0.2)
    rng = SeededRandom("jitter")
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(3.2 - 1e-9 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 100


def test_max_attempts() -> None:
    forever = ReconnectionPolicy()
    assert not forever.exhausted(10**6)
    limited = ReconnectionPolicy(max_attempts=3)
    assert not limited.exhausted(3)
    assert limited.exhausted(4)
