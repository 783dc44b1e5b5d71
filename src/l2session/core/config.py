"""Session configuration: SPEC-018 §5.1 ``SessionConfig`` and the overview's
``ReconnectionPolicy``, validated when they are built.

Every limit the session core enforces lives here, with the spec's defaults,
so that an operator can read in one place what a session will tolerate.  A
bad value is refused with a :class:`~l2session.errors.ConfigError` naming the
field: a misconfigured node should fail at start-up, not at 3 a.m. when the
first rotation is due.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from l2session.crypto.handshake_messages import KIND_EPHEMERAL, KIND_PERSISTENT
from l2session.crypto.rng import RandomSource
from l2session.errors import ConfigError
from l2session.wire.records import MAX_PAYLOAD_BYTES


class MultipathStrategy(StrEnum):
    """How a session with several validated routes uses them (overview,
    "Multi-Path"; core/paths/multipath.py applies it).  Defined here, not
    in multipath, so that config depends on nothing above it."""

    #: The primary route only; the next live route when it dies.
    FAILOVER = "failover"
    #: Packets spread round-robin over the live routes.
    LOAD_BALANCE = "load_balance"
    #: Every packet on every live route (the receiver drops the copies).
    AGGREGATE = "aggregate"


HOUR: Final = 3600.0

#: The default first resend of an unanswered handshake, resumption,
#: rotation or path message (``SessionConfig.resend_interval``).
RESEND_INTERVAL: Final = 1.0
#: The default freshness windows of INIT and RESUME timestamps (seconds).
DEFAULT_FRESHNESS: Final = 300.0

#: The largest application message a session carries (bytes).  Bigger
#: payloads belong in a stream or a blob store, not in one datagram-sized
#: session message.
MAX_MESSAGE_SIZE: Final = MAX_PAYLOAD_BYTES


class SessionKind(StrEnum):
    """The overview's native session kinds.  Federated sessions are not a
    value here: they never negotiate with an l2session peer, so they are
    their own class (core/management/federated.py, docs/FEDERATION.md)."""

    #: One handshake, one request/response, nothing kept.
    EPHEMERAL = "ephemeral"
    #: Double ratchet, rotation, resumption, durable queue.
    PERSISTENT = "persistent"

    @property
    def wire(self) -> int:
        """The kind byte INIT carries (docs/PROTOCOL.md §2.1)."""
        return _WIRE_OF[self]

    @classmethod
    def from_wire(cls, value: int) -> SessionKind | None:
        """The kind an INIT asked for; None for a kind this node does not
        implement (the reserved Federated value)."""
        return _KIND_OF.get(value)


_WIRE_OF: Final = {SessionKind.PERSISTENT: KIND_PERSISTENT, SessionKind.EPHEMERAL: KIND_EPHEMERAL}
_KIND_OF: Final = {wire: kind for kind, wire in _WIRE_OF.items()}


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")


def _rate(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number per second, got {value!r}")


def _at_least(name: str, value: int, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be at most {high}, got {value!r}")


@dataclass(frozen=True, slots=True)
class ReconnectionPolicy:
    """Exponential backoff for retries: 1 s, 2 s, 4 s, ... capped at 30 s.

    ``max_attempts`` 0 retries forever.  ``jitter`` spreads each delay
    uniformly over ``[d * (1 - jitter), d]`` so that many peers cut off by
    the same outage do not all come back in the same instant.
    """

    max_attempts: int = 0
    initial_delay: float = 1.0
    max_delay: float = 30.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        _at_least("ReconnectionPolicy.max_attempts", self.max_attempts, 0)
        _positive("ReconnectionPolicy.initial_delay", self.initial_delay)
        _positive("ReconnectionPolicy.max_delay", self.max_delay)
        if self.max_delay < self.initial_delay:
            raise ConfigError(
                "ReconnectionPolicy.max_delay must be >= initial_delay "
                f"({self.max_delay!r} < {self.initial_delay!r})"
            )
        if not (math.isfinite(self.backoff_multiplier) and self.backoff_multiplier >= 1.0):
            raise ConfigError(
                f"ReconnectionPolicy.backoff_multiplier must be >= 1, "
                f"got {self.backoff_multiplier!r}"
            )
        if not (math.isfinite(self.jitter) and 0.0 <= self.jitter < 1.0):
            raise ConfigError(f"ReconnectionPolicy.jitter must be in [0, 1), got {self.jitter!r}")

    def exhausted(self, attempt: int) -> bool:
        """True when ``attempt`` (1-based) may no longer be made."""
        return self.max_attempts != 0 and attempt > self.max_attempts

    def base_delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (1-based), no jitter."""
        if attempt < 1:
            raise ConfigError(f"retry attempts count from 1, got {attempt}")
        # Cap the exponent: 2.0 ** 2000 overflows long before the cap applies.
        exponent = min(attempt - 1, 64)
        return min(self.max_delay, self.initial_delay * self.backoff_multiplier**exponent)

    def delay(self, attempt: int, rng: RandomSource) -> float:
        """The jittered delay before retry number ``attempt``."""
        base = self.base_delay(attempt)
        if self.jitter == 0.0:
            return base
        fraction = int.from_bytes(rng.random_bytes(4), "big") / 2**32
        return base * (1.0 - self.jitter * fraction)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """SPEC-018 §5.1 ``SessionConfig`` plus the limits the spec implies.

    Times are seconds.  The first five fields are the spec's; the others
    settle what DESIGN.md §2 decided (degradation, quarantine, rotation) and
    what delivery needs (queues, acknowledgements, retransmission).
    """

    #: Liveness lease after establishment (extended by heartbeats) and the
    #: key age by which a rotation must have completed.
    ttl: float = 24 * HOUR
    #: Idle time after which a heartbeat is sent.
    heartbeat_interval: float = 30.0
    #: Consecutive missed heartbeats that make the session ``degraded``.
    heartbeat_tolerance: int = 3
    #: How long a handshake (or a resumption) may take.
    handshake_timeout: float = 5.0
    #: Rotation starts at key age ``ttl - rotation_window``.
    rotation_window: float = 1 * HOUR

    #: A heartbeat not answered within this is a miss (SPEC §2.2: "peer
    #: responds within 2 seconds").
    heartbeat_timeout: float = 2.0
    #: Transport-reported connectivity loss longer than this degrades the
    #: session without waiting for missed heartbeats (SPEC §2.3: ">30s").
    connectivity_timeout: float = 30.0
    #: ``degraded`` for this long -> ``suspended``.
    degraded_timeout: float = 60.0
    #: While ``suspended``, recovery is attempted this often.
    recovery_interval: float = 60.0
    #: A peer that failed authentication is refused for this long.
    quarantine: float = 60.0
    #: A rotation not complete within this -> ``failed``.
    rotation_timeout: float = 30.0
    #: Volume limit: rotate after this many messages (or bytes) under one key
    #: epoch, long before any AEAD or chain limit is near.
    rekey_after_messages: int = 1 << 20
    rekey_after_bytes: int = 1 << 34
    #: Retry policy for failed sessions.
    reconnect: ReconnectionPolicy = field(default_factory=ReconnectionPolicy)
    kind: SessionKind = SessionKind.PERSISTENT
    #: How several validated routes to the peer are used
    #: (core/paths/multipath.py): primary with failover, round-robin, or all.
    multipath: MultipathStrategy = MultipathStrategy.FAILOVER
    #: Happy eyeballs (core/paths/race.py): an establishment whose path has not
    #: connected after this long is raced on the node's next path too
    #: (RFC 8305's 250 ms); 0 starts every path at once; None: no race.
    path_race_delay: float | None = 0.25
    #: A session that comes up over a relay offers a direct path (hole
    #: punching, core/paths/migration.py ``offer_punch``) and answers the peer's
    #: offer; False keeps relayed sessions relayed.
    hole_punching: bool = True

    #: Outbound messages held (unsent or unacknowledged) before ``send``
    #: raises QueueFull.
    max_queued: int = 10_000
    #: Out-of-order inbound messages buffered while a gap is filled.
    max_reorder: int = 4_096
    #: Delivered messages waiting for the application to read them.
    max_inbox: int = 10_000
    #: Largest application message.
    max_message_size: int = MAX_MESSAGE_SIZE
    #: Messages packed into one encrypted frame when the queue is long.
    max_batch: int = 32
    #: Freshness windows: an INIT (CRYPTO.md §4.1) or RESUME (PROTOCOL.md
    #: §6.3) whose signed timestamp is further than this from our clock is
    #: refused.  It must cover the one-way delay, the clock error, and the
    #: age of a resent copy (a resend keeps its first timestamp: up to
    #: ``handshake_timeout``).  Replay memory lasts as long (bounded).
    handshake_max_skew: float = DEFAULT_FRESHNESS
    resume_max_skew: float = DEFAULT_FRESHNESS
    #: An unanswered handshake, resumption, rotation or path message is
    #: resent after ``resend_interval``, then after twice that, doubling up
    #: to ``resend_max_interval`` (equal by default: a steady 1 s, which fits
    #: a 5 s ``handshake_timeout`` on the internet).
    resend_interval: float = RESEND_INTERVAL
    resend_max_interval: float = RESEND_INTERVAL
    #: 0-RTT resumption (docs/PROTOCOL.md §6.5): payload bytes of queued
    #: messages a resuming side puts into its RESUME, and what a responder
    #: opens from one; 0 turns 0-RTT off (a responder then ignores early
    #: data, which the resuming side sends again after the round trip).
    early_data_bytes: int = 16_384
    #: Acknowledgements are delayed at most this long to ride on data.
    ack_delay: float = 0.025
    #: First retransmission timeout and its cap (doubling in between).
    initial_rto: float = 0.5
    max_rto: float = 10.0
    #: Post-compromise healing bound of the Double Ratchet, less one round
    #: trip (CRYPTO.md §5.2): a side takes a sending DH step at most once
    #: per half of this, and only in a packet carrying application data;
    #: 0 steps at every turn of the conversation, as Signal does.
    dh_step_interval: float = 1.0
    #: ... or once this many packets went on one sending chain, whichever
    #: comes first (a one-way stream answered by data heals in volume too).
    dh_step_after: int = 4_096

    # Admission control (core/management/admission.py): what handshake-opening packets
    # (INIT, RESUME, BUNDLE_REQUEST) a source may make this node process
    # before any crypto is spent on them.  Read from the manager's config.
    #: Opening packets per second per source host, and its burst.  A real
    #: peer needs two or three per handshake and resends once a second, so
    #: 20/s leaves room for a NAT with several peers; an INIT costs ~1 ms
    #: of crypto, so one host can take at most ~2 % of a core.
    admission_host_rate: float = 20.0
    admission_host_burst: int = 40
    #: Opening packets per second from all unknown sources together, and
    #: its burst: a coarse bound on cheap packets (a peer spends two per
    #: session: BUNDLE_REQUEST and INIT).  What bounds the expensive ones
    #: is the CPU budget below; this only needs to exceed twice the
    #: handshakes per second a node can do (several hundred per core).
    admission_global_rate: float = 5_000.0
    admission_global_burst: int = 10_000
    #: Share of one core that handshakes with unknown sources may take
    #: (their measured cost, core/management/admission.py), and the burst in seconds
    #: of CPU.  A PQXDH responder handshake costs ~1.7-2.3 ms, so 0.75
    #: admits about 350 new sessions per second on one core and leaves a
    #: quarter of the loop to established sessions however many hosts
    #: flood; the burst (about a thousand handshakes) lets a crowd of
    #: peers arriving together in without waiting for the rate.
    admission_cpu_share: float = 0.75
    admission_cpu_burst: float = 2.0
    #: This many failed opening packets (bad signature, undecodable, stale,
    #: replayed) or packets beyond the host's budget within
    #: ``admission_failure_window`` seconds quarantine the host for
    #: ``admission_quarantine`` seconds.  A peer retrying resends once a
    #: second, so 100 in 10 s is not a peer.
    admission_failure_limit: int = 100
    admission_failure_window: float = 10.0
    admission_quarantine: float = 60.0
    #: Hosts tracked with a bucket, and hosts kept quarantined, at most
    #: (least recently seen / oldest evicted first): bounded memory however
    #: many addresses an attacker cycles through.
    admission_max_hosts: int = 4096

    def __post_init__(self) -> None:
        for name in (
            "ttl",
            "heartbeat_interval",
            "handshake_timeout",
            "rotation_window",
            "heartbeat_timeout",
            "connectivity_timeout",
            "degraded_timeout",
            "recovery_interval",
            "quarantine",
            "rotation_timeout",
            "ack_delay",
            "initial_rto",
            "max_rto",
            "admission_failure_window",
            "admission_quarantine",
            "handshake_max_skew",
            "resume_max_skew",
            "resend_interval",
            "resend_max_interval",
            "admission_cpu_burst",
        ):
            _positive(f"SessionConfig.{name}", getattr(self, name))
        race = self.path_race_delay
        if race is not None and not (
            isinstance(race, int | float) and math.isfinite(race) and race >= 0
        ):
            raise ConfigError(
                f"SessionConfig.path_race_delay must be 0 or more seconds (or None: no "
                f"race), got {race!r}"
            )
        if race is not None and race + self.resend_interval >= self.handshake_timeout:
            # The last path raced must get its first packet and one resend
            # before the attempt is abandoned, or the race cannot help.
            raise ConfigError(
                f"SessionConfig.handshake_timeout ({self.handshake_timeout!r}) must be longer "
                f"than path_race_delay ({self.path_race_delay!r}) plus one handshake resend "
                f"(resend_interval {self.resend_interval!r} s): the path race runs inside "
                "the handshake"
            )
        _at_least("SessionConfig.heartbeat_tolerance", self.heartbeat_tolerance, 1, 255)
        _at_least("SessionConfig.rekey_after_messages", self.rekey_after_messages, 1, 1 << 31)
        _at_least("SessionConfig.rekey_after_bytes", self.rekey_after_bytes, 1)
        _at_least("SessionConfig.max_queued", self.max_queued, 1, 1 << 24)
        _at_least("SessionConfig.max_reorder", self.max_reorder, 1, 1 << 20)
        _at_least("SessionConfig.max_inbox", self.max_inbox, 1, 1 << 24)
        _at_least("SessionConfig.max_message_size", self.max_message_size, 1, MAX_MESSAGE_SIZE)
        _at_least("SessionConfig.max_batch", self.max_batch, 1, 256)
        _at_least("SessionConfig.early_data_bytes", self.early_data_bytes, 0, 1 << 16)
        _at_least("SessionConfig.dh_step_after", self.dh_step_after, 1, 1 << 24)
        step = self.dh_step_interval
        if not (isinstance(step, int | float) and math.isfinite(step) and 0 <= step <= 3600):
            raise ConfigError(
                "SessionConfig.dh_step_interval must be in [0, 3600] seconds, "
                f"got {self.dh_step_interval!r}"
            )
        _rate("SessionConfig.admission_host_rate", self.admission_host_rate)
        _rate("SessionConfig.admission_global_rate", self.admission_global_rate)
        if not (
            isinstance(self.admission_cpu_share, int | float)
            and math.isfinite(self.admission_cpu_share)
            and 0 < self.admission_cpu_share <= 64
        ):
            raise ConfigError(
                "SessionConfig.admission_cpu_share must be a share of one core in (0, 64], "
                f"got {self.admission_cpu_share!r}"
            )
        _at_least("SessionConfig.admission_host_burst", self.admission_host_burst, 1, 1 << 30)
        _at_least("SessionConfig.admission_global_burst", self.admission_global_burst, 1, 1 << 30)
        _at_least("SessionConfig.admission_failure_limit", self.admission_failure_limit, 1, 1 << 30)
        _at_least("SessionConfig.admission_max_hosts", self.admission_max_hosts, 1, 1 << 20)
        if self.rotation_window >= self.ttl:
            raise ConfigError(
                f"SessionConfig.rotation_window ({self.rotation_window!r}) must be shorter "
                f"than ttl ({self.ttl!r}): rotation starts at ttl - rotation_window"
            )
        if self.rotation_timeout > self.rotation_window:
            raise ConfigError(
                f"SessionConfig.rotation_timeout ({self.rotation_timeout!r}) must fit in "
                f"rotation_window ({self.rotation_window!r}): a rotation must finish "
                "before the key reaches ttl"
            )
        if self.heartbeat_timeout >= self.heartbeat_interval:
            raise ConfigError(
                f"SessionConfig.heartbeat_timeout ({self.heartbeat_timeout!r}) must be "
                f"shorter than heartbeat_interval ({self.heartbeat_interval!r})"
            )
        if self.max_rto < self.initial_rto:
            raise ConfigError(
                f"SessionConfig.max_rto ({self.max_rto!r}) must be >= initial_rto "
                f"({self.initial_rto!r})"
            )
        if self.resend_max_interval < self.resend_interval:
            raise ConfigError(
                f"SessionConfig.resend_max_interval ({self.resend_max_interval!r}) must be "
                f">= resend_interval ({self.resend_interval!r})"
            )
        if not isinstance(self.hole_punching, bool):
            raise ConfigError(
                f"SessionConfig.hole_punching must be True or False, got {self.hole_punching!r}"
            )
        if not isinstance(self.reconnect, ReconnectionPolicy):
            raise ConfigError("SessionConfig.reconnect must be a ReconnectionPolicy")
        if not isinstance(self.kind, SessionKind):
            raise ConfigError(f"SessionConfig.kind must be a SessionKind, got {self.kind!r}")
        if not isinstance(self.multipath, MultipathStrategy):
            raise ConfigError(
                f"SessionConfig.multipath must be a MultipathStrategy, got {self.multipath!r}"
            )

    @property
    def rotate_at_age(self) -> float:
        """Key age at which rotation starts."""
        return self.ttl - self.rotation_window

    def resend_delay(self, sent: int) -> float:
        """The wait after the ``sent``-th transmission (1-based) of an
        unanswered message: ``resend_interval`` doubling, capped."""
        exponent = min(max(sent - 1, 0), 64)
        return min(self.resend_max_interval, self.resend_interval * 2.0**exponent)

    @classmethod
    def deep_space(cls, one_way_delay: float = 1800.0, **overrides: object) -> SessionConfig:
        """A delay-tolerant profile for links up to ``one_way_delay``
        seconds one way (default 30 light-minutes); docs/SESSIONS.md
        "Light-minute delays" justifies each value.  ``overrides`` replace
        single fields (validated like any config)."""
        _positive("deep_space one_way_delay", one_way_delay)
        d = float(one_way_delay)
        rtt = 2.0 * d
        #: Nothing is resent before a round trip could have answered it.
        wait = 1.25 * rtt + 1.0
        handshake_timeout = 4.0 * rtt
        rotation_timeout = 4.0 * rtt
        rotation_window = max(1 * HOUR, 4.0 * rotation_timeout)
        values: dict[str, object] = {
            "ttl": max(7 * 24 * HOUR, 4.0 * rotation_window),
            "rotation_window": rotation_window,
            "rotation_timeout": rotation_timeout,
            "handshake_timeout": handshake_timeout,
            "handshake_max_skew": handshake_timeout + d + DEFAULT_FRESHNESS,
            "resume_max_skew": handshake_timeout + d + DEFAULT_FRESHNESS,
            "resend_interval": wait,
            "resend_max_interval": 2.0 * wait,
            "heartbeat_timeout": wait,
            "heartbeat_interval": 2.0 * wait,
            "connectivity_timeout": wait,
            "degraded_timeout": 2.0 * wait,
            "recovery_interval": wait,
            "initial_rto": wait,
            "max_rto": 2.0 * wait,
            "ack_delay": 1.0,
            "reconnect": ReconnectionPolicy(initial_delay=rtt, max_delay=4.0 * rtt),
            # No path race: no path answers within a round trip of minutes,
            # and a copy of every handshake packet on μTCP buys nothing.
            "path_race_delay": None,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
