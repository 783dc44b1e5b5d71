"""The checks of ``Node(...)``'s keyword options, kept apart from the node.

Every timing option is validated when the node is constructed, so a bad
value fails at once with a ConfigError naming it, not minutes later as a
strange timeout.  The values themselves stay attributes of the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from l2session.core.config import SessionConfig
from l2session.errors import ConfigError
from l2session.runtime.limits import NodeLimits
from l2session.transports.address import parse_address

#: Paths in order of preference (the core falls back along this order).
DEFAULT_PATHS: Final = ("quic", "tcp")
#: How a peer reached through a relay is written (``relay://host:port``).
RELAY_SCHEME: Final = "relay://"


def check_options(
    *,
    paths: tuple[str, ...],
    config: SessionConfig,
    connect_timeout: float,
    quic_probe_interval: float,
    quic_stall_timeout: float | None,
    discovery_targets: Sequence[str],
    limits: NodeLimits | None,
) -> None:
    """Raise ConfigError for the first option out of range."""
    for target in discovery_targets:
        parse_address(target)
    unknown = [p for p in paths if p not in DEFAULT_PATHS]
    if not paths or unknown or len(set(paths)) != len(paths):
        raise ConfigError(f"paths must be distinct names from {DEFAULT_PATHS}, got {paths!r}")
    if quic_probe_interval <= 0 or connect_timeout <= 0:
        raise ConfigError("connect_timeout and quic_probe_interval must be positive")
    if quic_stall_timeout is not None and not quic_stall_timeout > 0:
        raise ConfigError(
            f"quic_stall_timeout must be positive (or None: off), got {quic_stall_timeout!r}"
        )
    race = config.path_race_delay
    if race is not None and connect_timeout <= race:
        raise ConfigError(
            f"connect_timeout ({connect_timeout!r}) must be longer than "
            f"SessionConfig.path_race_delay ({race!r}): a path "
            "would be declared failed before the next one joins the race"
        )
    if limits is not None and not isinstance(limits, NodeLimits):
        raise ConfigError(f"limits must be a NodeLimits, got {type(limits).__name__}")


def quic_idle_timeout(given: float | None, config: SessionConfig) -> float:
    """``given``, else long enough for several heartbeats: they are the
    only traffic of an idle session, and QUIC's idle timeout must outlast
    them or the connection churns."""
    return given if given is not None else max(30.0, 3 * config.heartbeat_interval)
