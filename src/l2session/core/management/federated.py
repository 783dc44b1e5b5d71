"""A federated session: the session state machine, mapped onto a bridge.

A :class:`FederatedSession` talks to a peer on another network (a
:class:`~l2session.identity.foreign.ForeignIdentity`, for example a Nostr
public key) through a bridge.  There is no handshake and no ratchet of ours
on the wire: the foreign protocol's own encryption is all there is
(docs/FEDERATION.md compares it with a native session).  What stays the
same is the state machine: the rules of :mod:`l2session.core.states`, and
every transition in the audit trail.  Each state is given a meaning that is
true on the bridge:

==================== =====================================================
state                on the bridge
==================== =====================================================
handshake_initiated  connecting to the relays and subscribing
established          at least one relay is connected *and* subscribed
degraded             every relay was lost; messages are queued
suspended            degraded for ``degraded_timeout`` (60 s); the queue is
                     held and a reconnection is tried every
                     ``recovery_interval``
failed               no relay came up within ``connect_timeout``; retried
                     after the ReconnectionPolicy's backoff
==================== =====================================================

Sans-I/O: the runtime reports relay counts and the time; this class fires
the transitions and says, through :attr:`reconnect_due`, when the runtime
should try the relays again.  It also bounds and checks what the runtime
may queue (:class:`FederationConfig`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from l2session.core.config import ReconnectionPolicy
from l2session.core.states import SENDING, State, StateMachine, TransitionRecord, Trigger
from l2session.crypto.rng import RandomSource
from l2session.errors import ConfigError, ForeignMessageRejected, InvalidState
from l2session.identity.foreign import BridgeProtocol, ForeignIdentity

#: NIP-59 puts a gift wrap's ``created_at`` up to two days in the past, so
#: a subscription must look back that far (plus a margin for clock skew).
NIP59_LOOKBACK: Final = 2 * 86400.0 + 3600.0


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ConfigError(f"FederationConfig.{name} must be a positive number, got {value!r}")


def _count(name: str, value: int, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"FederationConfig.{name} must be an int >= {low}, got {value!r}")


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """Every limit of a federated session, validated at construction."""

    #: Seconds to reach at least one subscribed relay before ``failed``.
    connect_timeout: float = 15.0
    #: The spec's 60 s from ``degraded`` to ``suspended``.
    degraded_timeout: float = 60.0
    #: How often a suspended session tries the relays again.
    recovery_interval: float = 60.0
    #: Backoff of the retries from ``failed``.
    reconnect: ReconnectionPolicy = field(default_factory=ReconnectionPolicy)
    #: Messages sent and not yet accepted by a relay (backpressure beyond).
    max_queued: int = 10_000
    #: Largest message body, in bytes of UTF-8 (NIP-44 v2 caps plaintext
    #: at 65,535 bytes; the seal and wrap must fit relays' event limits).
    max_message: int = 32 * 1024
    #: Event ids remembered for deduplication (oldest forgotten first; the
    #: subscription's floor moves past them, docs/FEDERATION.md).
    seen_limit: int = 100_000
    #: How far before the last sync a subscription looks (NIP-59 tweak).
    lookback: float = NIP59_LOOKBACK
    #: Received messages waiting for the application.
    max_unread: int = 100_000
    #: Federated sessions at once: anyone on Nostr can write to the node,
    #: so a message from a new peer beyond this is dropped (and counted),
    #: not stored; the relay still has it for a later start.
    max_sessions: int = 10_000

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "degraded_timeout", "recovery_interval", "lookback"):
            _positive(name, getattr(self, name))
        _count("max_queued", self.max_queued, 1)
        _count("max_message", self.max_message, 1)
        if self.max_message > 65_535:
            raise ConfigError(
                f"FederationConfig.max_message is at most 65535 (NIP-44 v2), got {self.max_message}"
            )
        _count("seen_limit", self.seen_limit, 16)
        _count("max_unread", self.max_unread, 1)
        _count("max_sessions", self.max_sessions, 1)
        if not isinstance(self.reconnect, ReconnectionPolicy):
            raise ConfigError("FederationConfig.reconnect must be a ReconnectionPolicy")


def check_message(data: bytes, config: FederationConfig) -> str:
    """``data`` as the text a foreign message carries; raises
    ForeignMessageRejected (nothing is queued) when it cannot be one."""
    if len(data) > config.max_message:
        raise ForeignMessageRejected(
            f"message of {len(data)} bytes exceeds max_message ({config.max_message} bytes) "
            "of a federated session"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ForeignMessageRejected(
            "a federated message must be UTF-8 text (Nostr direct messages carry text)"
        ) from None


class FederatedSession:
    """One session with a foreign peer, as a state machine (see module doc).

    ``sink`` receives every transition record (the audit trail).
    """

    __slots__ = (
        "_attempt",
        "_next_try",
        "config",
        "counters",
        "links",
        "local_did",
        "machine",
        "peer",
        "protocol",
        "reconnect_due",
        "rng",
    )

    def __init__(
        self,
        local_did: str,
        peer: ForeignIdentity,
        *,
        config: FederationConfig,
        rng: RandomSource,
        sink: Callable[[TransitionRecord], None] | None = None,
    ) -> None:
        self.local_did = local_did
        self.peer = peer
        self.protocol: BridgeProtocol = peer.protocol
        self.config = config
        self.rng = rng
        self.machine = StateMachine(peer.text, sink=sink)
        #: Relays (or a custom bridge's links) connected and subscribed.
        self.links = 0
        #: When the runtime should try the relays again (None: not due).
        self.reconnect_due: float | None = None
        self._attempt = 0
        self._next_try: float | None = None
        #: Refusals by cause (forged, malformed, duplicate, policy, ...).
        self.counters: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"FederatedSession({self.peer.text!r}, state={self.state.value})"

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def closed(self) -> bool:
        return self.machine.closed

    @property
    def sending(self) -> bool:
        """Whether queued messages should be published now."""
        return self.state in SENDING and not self.closed

    @property
    def history(self) -> tuple[TransitionRecord, ...]:
        return self.machine.history

    def count(self, cause: str) -> None:
        self.counters[cause] = self.counters.get(cause, 0) + 1

    # ------------------------------------------------------------------
    # inputs

    def open(self, now: float) -> None:
        """Start: connect and subscribe (``handshake_initiated``)."""
        self.machine.fire(Trigger.INITIATE_HANDSHAKE, now=now, reason="connecting to relays")
        self._next_try = now + self.config.connect_timeout

    def links_changed(self, up: int, now: float, detail: str = "") -> None:
        """``up`` links (relays connected and subscribed) are usable now."""
        if up < 0:
            raise ValueError("a link count is never negative")
        self.links = up
        if self.closed:
            return
        state = self.state
        if up > 0:
            reason = detail or f"{up} relay(s) connected and subscribed"
            if state is State.SUSPENDED:
                self.machine.fire(Trigger.RETRY, now=now, reason="a relay came back")
                state = State.HANDSHAKE_INITIATED
            elif state is State.FAILED:
                self.machine.fire(Trigger.RETRY_WITH_BACKOFF, now=now, reason="a relay came back")
                state = State.HANDSHAKE_INITIATED
            if state is State.HANDSHAKE_INITIATED:
                self.machine.fire(Trigger.RECEIVE_VALID_RESPONSE, now=now, reason=reason)
            elif state is State.DEGRADED:
                self.machine.fire(Trigger.CONNECTIVITY_RESTORED, now=now, reason=reason)
            self._attempt = 0
            self._next_try = None
            self.reconnect_due = None
        elif state is State.ESTABLISHED:
            self.machine.fire(
                Trigger.MISSED_HEARTBEATS, now=now, reason=detail or "every relay was lost"
            )
            self._next_try = now + self.config.degraded_timeout
            self.reconnect_due = now  # the runtime keeps reconnecting

    def tick(self, now: float) -> None:
        """Fire what is due: degraded → suspended, a connect timeout, or
        a retry (which sets :attr:`reconnect_due` for the runtime)."""
        if self.closed or self._next_try is None or now < self._next_try:
            return
        state = self.state
        config = self.config
        if state is State.DEGRADED:
            self.machine.fire(
                Trigger.TIMEOUT, now=now, reason=f"no relay for {config.degraded_timeout:g} s"
            )
            self._next_try = now + config.recovery_interval
        elif state is State.HANDSHAKE_INITIATED:
            self.machine.fire(
                Trigger.TIMEOUT,
                now=now,
                reason=f"no relay subscribed within {config.connect_timeout:g} s",
            )
            self._schedule_backoff(now)
        elif state is State.SUSPENDED:
            self.reconnect_due = now
            self._next_try = now + config.recovery_interval
        elif state is State.FAILED:
            policy = config.reconnect
            if policy.max_attempts and self._attempt >= policy.max_attempts:
                self._next_try = None
                return
            self.machine.fire(
                Trigger.RETRY_WITH_BACKOFF, now=now, reason=f"reconnect attempt {self._attempt}"
            )
            self.reconnect_due = now
            self._next_try = now + config.connect_timeout

    def _schedule_backoff(self, now: float) -> None:
        self._attempt += 1
        self._next_try = now + self.config.reconnect.delay(self._attempt, self.rng)

    def get_timer(self) -> float | None:
        """When :meth:`tick` next has something to do (None: nothing)."""
        return None if self.closed else self._next_try

    def close(self, now: float, reason: str = "closed by the application") -> None:
        """Remove the session (``cleanup``).  A session that is up passes
        through ``degraded`` and ``suspended`` first, as the table demands:
        the records say why."""
        if self.closed:
            return
        state = self.state
        if state is State.IDLE:
            raise InvalidState("a federated session that never opened cannot be closed")
        if state is State.HANDSHAKE_INITIATED:
            self.machine.fire(Trigger.TIMEOUT, now=now, reason=reason)
        elif state is State.ESTABLISHED:
            self.machine.fire(Trigger.MISSED_HEARTBEATS, now=now, reason=reason)
        if self.state is State.DEGRADED:
            self.machine.fire(Trigger.TIMEOUT, now=now, reason=reason)
        self.machine.fire(Trigger.CLEANUP, now=now, reason=reason)
        self._next_try = None
        self.reconnect_due = None
