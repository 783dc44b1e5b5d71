"""The SPEC-018 §3 state table and the machine that enforces it."""

from __future__ import annotations

import logging
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2session.core.states import (
    RULES,
    TRANSITIONS,
    Rule,
    State,
    StateMachine,
    TransitionRecord,
    Trigger,
    allowed_triggers,
)
from l2session.errors import ConfigError, InvalidState

S = State
T = Trigger

#: The table written out independently of the code: (source, trigger) -> target.
EXPECTED: dict[tuple[State, Trigger], State | None] = {
    (S.IDLE, T.INITIATE_HANDSHAKE): S.HANDSHAKE_INITIATED,
    (S.IDLE, T.RECEIVE_HANDSHAKE): S.HANDSHAKE_RECEIVED,
    (S.HANDSHAKE_INITIATED, T.RECEIVE_VALID_RESPONSE): S.ESTABLISHED,
    (S.HANDSHAKE_INITIATED, T.TIMEOUT): S.FAILED,
    (S.HANDSHAKE_INITIATED, T.INVALID_SIG): S.FAILED,
    (S.HANDSHAKE_RECEIVED, T.SEND_RESPONSE_ACK): S.ESTABLISHED,
    (S.HANDSHAKE_RECEIVED, T.TIMEOUT): S.FAILED,
    (S.ESTABLISHED, T.MISSED_HEARTBEATS): S.DEGRADED,
    (S.ESTABLISHED, T.TIME_TO_ROTATE): S.ROTATING,
    (S.DEGRADED, T.CONNECTIVITY_RESTORED): S.ESTABLISHED,
    (S.DEGRADED, T.TIMEOUT): S.SUSPENDED,
    (S.SUSPENDED, T.CLEANUP): None,
    (S.SUSPENDED, T.RETRY): S.HANDSHAKE_INITIATED,
    (S.ROTATING, T.ROTATION_COMPLETE): S.ESTABLISHED,
    (S.ROTATING, T.ROTATION_TIMEOUT): S.FAILED,
    (S.FAILED, T.CLEANUP): None,
    (S.FAILED, T.RETRY_WITH_BACKOFF): S.HANDSHAKE_INITIATED,
}

ILLEGAL = [(s, t) for s in State for t in Trigger if (s, t) not in EXPECTED]


def path_to(state: State) -> list[Trigger]:
    """The shortest trigger sequence from idle to ``state`` (breadth first over the table)."""
    paths: dict[State, list[Trigger]] = {S.IDLE: []}
    todo = deque([S.IDLE])
    while todo:
        current = todo.popleft()
        for rule in TRANSITIONS:
            if rule.source is current and rule.target is not None and rule.target not in paths:
                paths[rule.target] = [*paths[current], rule.trigger]
                todo.append(rule.target)
    return paths[state]


def machine_in(state: State) -> StateMachine:
    machine = StateMachine("did:key:z6Mkpeer#1a2b")
    for step, trigger in enumerate(path_to(state)):
        machine.fire(trigger, now=float(step))
    assert machine.state is state
    return machine


# --------------------------------------------------------------------------
# The table


def test_the_table_is_the_spec_table() -> None:
    assert {(r.source, r.trigger): r.target for r in TRANSITIONS} == EXPECTED
    assert len(TRANSITIONS) == len(EXPECTED)  # no (state, trigger) listed twice


def test_the_lookup_is_built_from_the_table() -> None:
    assert dict(RULES) == {(r.source, r.trigger): r for r in TRANSITIONS}


def test_the_enums_carry_the_spec_names() -> None:
    assert [s.value for s in State] == [
        "idle",
        "handshake_initiated",
        "handshake_received",
        "established",
        "degraded",
        "rotating",
        "suspended",
        "failed",
    ]
    assert len(Trigger) == 14
    assert {t.value for t in Trigger} == {r.trigger.value for r in TRANSITIONS}


def test_every_state_is_reachable_and_has_a_way_out() -> None:
    for state in State:
        path_to(state)
        assert allowed_triggers(state), state


def test_allowed_triggers_follow_table_order() -> None:
    assert allowed_triggers(S.HANDSHAKE_INITIATED) == (
        T.RECEIVE_VALID_RESPONSE,
        T.TIMEOUT,
        T.INVALID_SIG,
    )
    assert allowed_triggers(S.FAILED) == (T.CLEANUP, T.RETRY_WITH_BACKOFF)


def test_every_rule_has_a_label_and_a_meaning() -> None:
    for rule in TRANSITIONS:
        assert rule.label.strip() == rule.label
        assert rule.label
        assert rule.meaning


# --------------------------------------------------------------------------
# Firing


def test_a_new_machine_is_idle() -> None:
    machine = StateMachine("s")
    assert machine.state is S.IDLE
    assert not machine.closed
    assert machine.history == ()
    assert machine.entered_at is None


@pytest.mark.parametrize("rule", TRANSITIONS, ids=lambda r: f"{r.source.value}-{r.trigger.value}")
def test_every_legal_transition_fires(rule: Rule) -> None:
    source, trigger = rule.source, rule.trigger
    machine = machine_in(source)
    assert machine.can(trigger)
    record = machine.fire(trigger, now=100.0, reason="because")
    target = EXPECTED[(source, trigger)]
    assert record == TransitionRecord(
        "did:key:z6Mkpeer#1a2b", source, target, trigger, "because", 100.0
    )
    assert machine.entered_at == 100.0
    assert machine.history[-1] == record
    if target is None:
        assert machine.closed
        assert machine.state is source
    else:
        assert not machine.closed
        assert machine.state is target


@pytest.mark.parametrize(
    ("state", "trigger"), ILLEGAL, ids=lambda v: v.value if isinstance(v, State | Trigger) else ""
)
def test_every_illegal_transition_is_refused(state: State, trigger: Trigger) -> None:
    machine = machine_in(state)
    history, entered_at = machine.history, machine.entered_at
    assert not machine.can(trigger)
    with pytest.raises(InvalidState) as caught:
        machine.fire(trigger, now=1000.0)
    assert machine.state is state
    assert machine.history == history
    assert machine.entered_at == entered_at
    message = str(caught.value)
    assert trigger.value in message
    assert state.value in message


def test_there_are_illegal_pairs_for_every_state() -> None:
    assert len(ILLEGAL) == len(State) * len(Trigger) - len(EXPECTED)
    assert {state for state, _ in ILLEGAL} == set(State)


def test_the_refusal_names_the_allowed_triggers() -> None:
    machine = machine_in(S.ESTABLISHED)
    with pytest.raises(InvalidState, match="missed_heartbeats, time_to_rotate") as caught:
        machine.fire(T.RETRY, now=5.0)
    assert "retry" in str(caught.value)
    assert "established" in str(caught.value)
    assert "did:key:z6Mkpeer#1a2b" in str(caught.value)


@pytest.mark.parametrize("state", [S.SUSPENDED, S.FAILED])
def test_a_closed_machine_refuses_everything(state: State) -> None:
    machine = machine_in(state)
    machine.fire(T.CLEANUP, now=50.0)
    assert machine.closed
    for trigger in Trigger:
        assert not machine.can(trigger)
        with pytest.raises(InvalidState, match="closed") as caught:
            machine.fire(trigger, now=60.0)
        assert trigger.value in str(caught.value)
        assert "allowed triggers: none" in str(caught.value)
    assert machine.state is state
    assert machine.entered_at == 50.0


def test_the_history_keeps_the_most_recent_records() -> None:
    machine = StateMachine("s", history_limit=3)
    machine.fire(T.INITIATE_HANDSHAKE, now=1.0)
    machine.fire(T.TIMEOUT, now=2.0)
    machine.fire(T.RETRY_WITH_BACKOFF, now=3.0)
    machine.fire(T.RECEIVE_VALID_RESPONSE, now=4.0)
    machine.fire(T.MISSED_HEARTBEATS, now=5.0)
    assert [r.at for r in machine.history] == [3.0, 4.0, 5.0]
    assert [r.trigger for r in machine.history] == [
        T.RETRY_WITH_BACKOFF,
        T.RECEIVE_VALID_RESPONSE,
        T.MISSED_HEARTBEATS,
    ]


def test_a_zero_history_limit_keeps_nothing_but_still_reports() -> None:
    seen: list[TransitionRecord] = []
    machine = StateMachine("s", history_limit=0, sink=seen.append)
    machine.fire(T.INITIATE_HANDSHAKE, now=1.0)
    assert machine.history == ()
    assert len(seen) == 1


def test_a_negative_history_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="history_limit"):
        StateMachine("s", history_limit=-1)


def test_the_sink_receives_every_record() -> None:
    seen: list[TransitionRecord] = []
    machine = StateMachine("s", sink=seen.append)
    records = [
        machine.fire(T.RECEIVE_HANDSHAKE, now=1.0),
        machine.fire(T.SEND_RESPONSE_ACK, now=2.0),
        machine.fire(T.TIME_TO_ROTATE, now=3.0, reason="key age 23h"),
    ]
    assert seen == records
    with pytest.raises(InvalidState):
        machine.fire(T.CLEANUP, now=4.0)
    assert seen == records


def test_the_machine_has_no_instance_dict() -> None:
    machine = machine_in(S.ESTABLISHED)
    assert not hasattr(machine, "__dict__")
    assert repr(machine) == "StateMachine('did:key:z6Mkpeer#1a2b', state=established)"


def test_a_transition_is_logged_at_info_with_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    machine = StateMachine("did:key:z6Mkpeer#1a2b")
    machine.fire(T.INITIATE_HANDSHAKE, now=1.0)
    machine.fire(T.TIMEOUT, now=2.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="l2session.session"):
        machine.fire(T.CLEANUP, now=3.0, reason="gave up")
    [log] = caplog.records
    assert log.name == "l2session.session"
    assert log.levelno == logging.INFO
    assert (
        log.getMessage() == "session did:key:z6Mkpeer#1a2b: failed -> closed on cleanup (gave up)"
    )
    assert getattr(log, "l2session") == {  # noqa: B009
        "subject": "did:key:z6Mkpeer#1a2b",
        "source": "failed",
        "target": "closed",
        "trigger": "cleanup",
        "reason": "gave up",
        "at": 3.0,
    }


def test_a_refused_transition_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    machine = StateMachine("s")
    with caplog.at_level(logging.INFO, logger="l2session.session"), pytest.raises(InvalidState):
        machine.fire(T.CLEANUP, now=1.0)
    assert caplog.records == []


@given(st.lists(st.sampled_from(list(Trigger)), max_size=60), st.integers(0, 5))
def test_the_machine_follows_a_model_walk(triggers: list[Trigger], limit: int) -> None:
    machine = StateMachine("model", history_limit=limit)
    state: State = S.IDLE
    closed = False
    fired = 0
    for step, trigger in enumerate(triggers):
        legal = not closed and (state, trigger) in EXPECTED
        assert machine.can(trigger) == legal
        if legal:
            machine.fire(trigger, now=float(step))
            target = EXPECTED[(state, trigger)]
            if target is None:
                closed = True
            else:
                state = target
            fired += 1
        else:
            with pytest.raises(InvalidState):
                machine.fire(trigger, now=float(step))
        assert machine.state is state
        assert machine.closed == closed
        assert len(machine.history) == min(fired, limit)
