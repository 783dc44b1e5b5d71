"""Fixtures and the steps the three SPEC-018 §2 features share."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then

from l2session.core.states import RULES, State, Trigger
from l2session.identity.resolver import resolve_signing_key

from .scenario_harness import EPS, World, record_of


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    return World(monkeypatch)


# ----------------------------------------------------------------------
# steps shared by the three features


@given("a discovered peer with valid DID")
def discovered_peer(world: World) -> None:
    sim = world.start()
    bob = world.bob
    # Discovered: the directory knows where Bob's DID is reachable.
    directory = world.alice.ctx.net_connect
    assert directory is not None
    assert directory.address_of(bob.did) == "bob"
    # Valid: the DID resolves, and to the key Bob actually signs with.
    assert resolve_signing_key(sim.resolver, bob.did) == bob.party.identity.signing_public
    assert world.alice.session(bob) is None


@given("an established session between Alice and Bob")
def established_session(world: World) -> None:
    world.start(report_connectivity=True)
    world.establish()
    assert world.transitions("alice") == [
        ("idle", "handshake_initiated", "initiate_handshake"),
        ("handshake_initiated", "established", "receive_valid_response"),
    ]


@then(parsers.parse('state transitions to "{state}"'))
def state_transitions_to(world: World, state: str) -> None:
    session = world.session("alice")
    target = State(state)
    assert session.state is target, f"Alice's session is {session.state.value}, not {state}"
    last = session.history[-1]
    assert last.target is target
    # It moved along an edge of SPEC-018 §3's table.
    assert RULES[(last.source, last.trigger)].target is target


@then(parsers.parse('failure reason is "{reason}"'))
def failure_reason_is(world: World, reason: str) -> None:
    session = world.session("alice")
    assert session.failure_reason == reason
    last = record_of(session, State.FAILED)
    assert last.reason == reason


@then(parsers.parse('state becomes "{state}"'))
def state_becomes(world: World, state: str) -> None:
    """Run until Alice's session is in ``state`` (DESIGN.md §2.2 bounds how
    long that may take) and check the transition that brought it there."""
    session = world.session("alice")
    target = State(state)
    config = session.config
    if session.state is not target:
        world.sim.run_until(lambda: session.state is target, timeout=config.degraded_timeout + 5)
    record = session.history[-1]
    assert record.target is target
    if target is State.DEGRADED:
        assert (record.source, record.trigger) == (State.ESTABLISHED, Trigger.MISSED_HEARTBEATS)
        lost = world.marks.get("connectivity_lost")
        if lost is not None:
            # Transport-reported loss: degraded once it lasted connectivity_timeout.
            assert record.reason == "connectivity lost"
            assert record.at - lost == pytest.approx(config.connectivity_timeout, abs=EPS)
    elif target is State.SUSPENDED:
        degraded = record_of(session, State.DEGRADED)
        assert (record.source, record.trigger) == (State.DEGRADED, Trigger.TIMEOUT)
        assert record.at - degraded.at == pytest.approx(config.degraded_timeout, abs=EPS)
    world.marks[state] = record.at
