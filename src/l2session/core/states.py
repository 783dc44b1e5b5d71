"""The session state machine of SPEC-018 §3, as one table.

Every legal transition is one :class:`Rule` in :data:`TRANSITIONS`; nothing
else decides where a session may go.  :class:`StateMachine` refuses anything
the table does not list with :class:`~l2session.errors.InvalidState`, and
records, reports and logs every transition it makes, so each one is
auditable (SPEC-018 ADR-002).  docs/STATES.md and its mermaid diagram are
generated from the same table by :mod:`l2session.core.diagram`, and a test
compares that diagram with the spec's, so the code, the docs and the spec
cannot drift apart.

Sans-I/O: the time of a transition is passed in as ``now``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from l2session.errors import ConfigError, InvalidState

_log = logging.getLogger("l2session.session")


class State(StrEnum):
    """The eight session states of SPEC-018 §3.1; values are the spec's names."""

    IDLE = "idle"
    HANDSHAKE_INITIATED = "handshake_initiated"
    HANDSHAKE_RECEIVED = "handshake_received"
    ESTABLISHED = "established"
    DEGRADED = "degraded"
    ROTATING = "rotating"
    SUSPENDED = "suspended"
    FAILED = "failed"


#: States in which a channel carries traffic.
CARRYING: Final = frozenset({State.ESTABLISHED, State.ROTATING, State.DEGRADED})
#: States in which queued application messages are transmitted.
SENDING: Final = frozenset({State.ESTABLISHED, State.ROTATING})


class Trigger(StrEnum):
    """What makes a session move: the edge labels of SPEC-018 §3.2, as names."""

    INITIATE_HANDSHAKE = "initiate_handshake"
    RECEIVE_HANDSHAKE = "receive_handshake"
    RECEIVE_VALID_RESPONSE = "receive_valid_response"
    TIMEOUT = "timeout"
    INVALID_SIG = "invalid_sig"
    SEND_RESPONSE_ACK = "send_response_ack"
    MISSED_HEARTBEATS = "missed_heartbeats"
    TIME_TO_ROTATE = "time_to_rotate"
    CONNECTIVITY_RESTORED = "connectivity_restored"
    CLEANUP = "cleanup"
    RETRY = "retry"
    ROTATION_COMPLETE = "rotation_complete"
    ROTATION_TIMEOUT = "rotation_timeout"
    RETRY_WITH_BACKOFF = "retry_with_backoff"


@dataclass(frozen=True, slots=True)
class Rule:
    """One legal transition.

    ``target`` None is the spec's ``[*]``: the session is removed.  ``label``
    is the spec's edge text, verbatim, so the generated diagram can be
    compared with the spec's; ``meaning`` explains the edge in docs/STATES.md
    (it lives here so that the docs have no second table to keep in step).
    """

    source: State
    trigger: Trigger
    target: State | None
    label: str
    meaning: str


_S = State
_T = Trigger

#: SPEC-018 §3.2, edge by edge, in the spec's order (DESIGN.md §2 for meanings).
TRANSITIONS: Final[tuple[Rule, ...]] = (
    Rule(_S.IDLE, _T.INITIATE_HANDSHAKE, _S.HANDSHAKE_INITIATED, "initiate_handshake()",
         "We sent a handshake to the peer."),
    Rule(_S.IDLE, _T.RECEIVE_HANDSHAKE, _S.HANDSHAKE_RECEIVED, "receive_handshake()",
         "A handshake from the peer arrived and is being answered."),
    Rule(_S.HANDSHAKE_INITIATED, _T.RECEIVE_VALID_RESPONSE, _S.ESTABLISHED,
         "receive_valid_response()", "The peer's response verified; session keys are derived."),
    Rule(_S.HANDSHAKE_INITIATED, _T.TIMEOUT, _S.FAILED, "timeout",
         "No valid response arrived within the handshake timeout."),
    Rule(_S.HANDSHAKE_INITIATED, _T.INVALID_SIG, _S.FAILED, "invalid_sig",
         "The response failed authentication; the peer is quarantined."),
    Rule(_S.HANDSHAKE_RECEIVED, _T.SEND_RESPONSE_ACK, _S.ESTABLISHED, "send_response + ack",
         "We sent our response and the peer acknowledged it."),
    Rule(_S.HANDSHAKE_RECEIVED, _T.TIMEOUT, _S.FAILED, "timeout",
         "The peer did not acknowledge our response in time."),
    Rule(_S.ESTABLISHED, _T.MISSED_HEARTBEATS, _S.DEGRADED, "missed_heartbeats(3)",
         "heartbeat_tolerance (3) heartbeats in a row were missed, or the transport lost "
         "connectivity for longer than heartbeat_interval; messages are queued."),
    Rule(_S.ESTABLISHED, _T.TIME_TO_ROTATE, _S.ROTATING, "time_to_rotate()",
         "Key age reached ttl - rotation_window; a fresh PQXDH runs inside the session."),
    Rule(_S.DEGRADED, _T.CONNECTIVITY_RESTORED, _S.ESTABLISHED, "connectivity_restored",
         "The peer is reachable again; queued messages are flushed."),
    Rule(_S.DEGRADED, _T.TIMEOUT, _S.SUSPENDED, "timeout(60s)",
         "degraded_timeout (60 s) passed without recovery; the queue is held."),
    Rule(_S.SUSPENDED, _T.CLEANUP, None, "cleanup()",
         "The session is given up and removed."),
    Rule(_S.SUSPENDED, _T.RETRY, _S.HANDSHAKE_INITIATED, "retry()",
         "A recovery attempt (periodic while suspended) starts a new handshake."),
    Rule(_S.ROTATING, _T.ROTATION_COMPLETE, _S.ESTABLISHED, "rotation_complete",
         "The new secrets are mixed into the root key."),
    Rule(_S.ROTATING, _T.ROTATION_TIMEOUT, _S.FAILED, "rotation_timeout",
         "The rotation did not complete in time; the queue is kept."),
    Rule(_S.FAILED, _T.CLEANUP, None, "cleanup()",
         "The session is removed."),
    Rule(_S.FAILED, _T.RETRY_WITH_BACKOFF, _S.HANDSHAKE_INITIATED, "retry_with_backoff()",
         "After an exponential backoff with jitter, a new handshake starts; "
         "the queue is kept."),
)  # fmt: skip

#: ``(state, trigger) -> rule``: the one lookup :meth:`StateMachine.fire` makes.
RULES: Final[Mapping[tuple[State, Trigger], Rule]] = MappingProxyType(
    {(rule.source, rule.trigger): rule for rule in TRANSITIONS}
)

_ALLOWED: Final[Mapping[State, tuple[Trigger, ...]]] = MappingProxyType(
    {state: tuple(rule.trigger for rule in TRANSITIONS if rule.source is state) for state in State}
)


def allowed_triggers(state: State) -> tuple[Trigger, ...]:
    """The triggers the table allows in ``state``, in table order."""
    return _ALLOWED[state]


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One transition that happened: what the audit trail and the log keep.

    ``subject`` names the session (for example the peer DID and a short
    session id); ``target`` None means the session was removed.  Nothing in a
    record is secret, and nothing secret may be put in ``reason``.
    """

    subject: str
    source: State
    target: State | None
    trigger: Trigger
    reason: str
    at: float

    def as_fields(self) -> dict[str, object]:
        """Plain values for structured logging; a removed session's target is "closed"."""
        return {
            "subject": self.subject,
            "source": self.source.value,
            "target": "closed" if self.target is None else self.target.value,
            "trigger": self.trigger.value,
            "reason": self.reason,
            "at": self.at,
        }


class StateMachine:
    """The state of one session, moved only by the rules of :data:`TRANSITIONS`.

    A node may hold 100,000 sessions, so an instance is small: ``__slots__``,
    no per-instance dict, and no history list until the first transition.
    ``sink`` receives every record (the audit trail); every transition is also
    logged at INFO on ``l2session.session`` with the record's fields under
    the ``l2session`` attribute of the log record.
    """

    __slots__ = ("_closed", "_entered_at", "_history", "_limit", "_sink", "_state", "_subject")

    def __init__(
        self,
        subject: str,
        *,
        sink: Callable[[TransitionRecord], None] | None = None,
        history_limit: int = 32,
    ) -> None:
        if history_limit < 0:
            raise ConfigError(f"history_limit must be >= 0, got {history_limit}")
        self._subject = subject
        self._state = State.IDLE
        self._closed = False
        self._sink = sink
        self._limit = history_limit
        self._history: list[TransitionRecord] | None = None
        self._entered_at: float | None = None

    def __repr__(self) -> str:
        closed = ", closed" if self._closed else ""
        return f"StateMachine({self._subject!r}, state={self._state.value}{closed})"

    @property
    def subject(self) -> str:
        """Who this session is, as it appears in logs and records."""
        return self._subject

    @property
    def state(self) -> State:
        """The current state; after a removal, the state the session was removed from."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once a rule with target ``[*]`` fired: nothing more can happen."""
        return self._closed

    @property
    def history(self) -> tuple[TransitionRecord, ...]:
        """The most recent transitions (at most ``history_limit``), oldest first."""
        return () if self._history is None else tuple(self._history)

    @property
    def entered_at(self) -> float | None:
        """``now`` of the last transition, or None before the first one."""
        return self._entered_at

    def can(self, trigger: Trigger) -> bool:
        """Whether :meth:`fire` would accept ``trigger`` now."""
        return not self._closed and (self._state, trigger) in RULES

    def fire(self, trigger: Trigger, *, now: float, reason: str = "") -> TransitionRecord:
        """Apply the rule for ``(state, trigger)`` and return its record.

        Raises :class:`~l2session.errors.InvalidState`, changing nothing, if
        the table has no such rule or the session was removed.  The record is
        logged before the sink sees it, so a failing sink cannot hide a
        transition that already happened.
        """
        rule = None if self._closed else RULES.get((self._state, trigger))
        if rule is None:
            raise InvalidState(self._refusal(trigger))
        record = TransitionRecord(self._subject, rule.source, rule.target, trigger, reason, now)
        if rule.target is None:
            self._closed = True
        else:
            self._state = rule.target
        self._entered_at = now
        self._remember(record)
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "session %s: %s -> %s on %s (%s)",
                record.subject,
                record.source.value,
                "closed" if record.target is None else record.target.value,
                record.trigger.value,
                record.reason or "-",
                extra={"l2session": record.as_fields()},
            )
        if self._sink is not None:
            self._sink(record)
        return record

    def _remember(self, record: TransitionRecord) -> None:
        if self._limit == 0:
            return
        if self._history is None:
            self._history = []
        elif len(self._history) >= self._limit:
            del self._history[0]
        self._history.append(record)

    def _refusal(self, trigger: Trigger) -> str:
        if self._closed:
            where, allowed = f"{self._state.value} (the session is closed)", "none"
        else:
            where = self._state.value
            allowed = ", ".join(t.value for t in allowed_triggers(self._state))
        return (
            f"session {self._subject}: trigger {trigger.value} is not allowed in state "
            f"{where}; allowed triggers: {allowed}"
        )


__all__ = [
    "RULES",
    "TRANSITIONS",
    "Rule",
    "State",
    "StateMachine",
    "TransitionRecord",
    "Trigger",
    "allowed_triggers",
]
