"""A session a peer opened (its INIT) whose handshake never completes is
cleaned up when the handshake times out, not retried: the initiator retries
on its own side, and a stranger's INIT must not buy a half-open session
that reconnects to the stranger's address for a day.  Two nodes over the
seeded simulation."""

from __future__ import annotations

from l2session.core.lifecycle import liveness
from l2session.core.states import State, Trigger
from l2session.store.memory import MemoryStore
from l2session.testing.recorder import record_wire
from l2session.testing.simulation import Simulation


def test_a_half_open_responder_session_is_cleaned_up_not_retried() -> None:
    store = MemoryStore()
    sim = Simulation("half-open")
    alice = sim.add_node("alice")
    bob = sim.add_node("bob", store=store)
    alice.manager.establish(bob.did)
    sim.run_until(
        lambda: (s := bob.session(alice)) is not None and s.state is State.HANDSHAKE_RECEIVED,
        timeout=5,
    )
    half_open = bob.session(alice)
    assert half_open is not None
    assert half_open.opened_by_peer
    sim.network.partition("alice", "bob", drop_in_flight=True)  # no FINISH will come
    wire = record_wire(sim)
    sim.run_for(half_open.config.handshake_timeout + 5)

    assert bob.session(alice) is None
    trail = [(r.trigger, r.target) for r in half_open.history]
    assert trail[-2:] == [(Trigger.TIMEOUT, State.FAILED), (Trigger.CLEANUP, None)]
    assert half_open.retry_at is None
    ended = half_open.history[-1].at
    # Until then bob resent its RESPONSE (the FINISH may have been lost);
    # after it, bob never reaches out to the stranger's address.
    assert [s for s in wire if s.source == "bob" and s.at < ended]
    assert not [s for s in wire if s.source == "bob" and s.at >= ended]
    bob.manager.commit()
    assert not store.load().sessions  # nothing left on disk either
    # The initiator's side is unchanged: it keeps retrying.
    mine = alice.session(bob)
    assert mine is not None
    assert mine.state in (State.HANDSHAKE_INITIATED, State.FAILED)


def test_once_established_a_peer_opened_session_still_recovers() -> None:
    sim = Simulation("half-open-established")
    alice = sim.add_node("alice")
    bob = sim.add_node("bob")
    alice.manager.establish(bob.did)
    sim.run_until(
        lambda: (s := bob.session(alice)) is not None and s.state is State.ESTABLISHED,
        timeout=5,
    )
    session = bob.session(alice)
    assert session is not None
    assert session.opened_by_peer
    assert session.established_once
    liveness.schedule_retry(session, sim.now)  # what a later failure would call
    assert session.retry_at is not None  # it may try to bring it back
    assert session.state is State.ESTABLISHED
