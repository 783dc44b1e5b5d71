"""Finding 1: prekeys are maintained while a node runs (on virtual time).

Before the fix ``PrekeyStore.maintain`` ran only at creation and at start,
so after 7 + 2 days every handshake to a running node failed with
``PrekeyExpired`` and a drained one-time pool stayed empty.
"""

from __future__ import annotations

import pytest

from l2session.core.config import SessionConfig
from l2session.core.states import State
from l2session.errors import ConfigError, PrekeyExpired
from l2session.identity.prekeys import DAY, PrekeyPolicy
from l2session.store.memory import MemoryStore
from l2session.testing.simulation import SimNode, Simulation


def _handshake(sim: Simulation, initiator: SimNode, responder: SimNode) -> bool:
    """A fresh full handshake; True when both ends are established."""
    session = initiator.manager.establish(responder.did)

    def done() -> bool:
        peer = responder.session(initiator)
        return (
            session.state is State.ESTABLISHED
            and peer is not None
            and peer.state is State.ESTABLISHED
        ) or session.state is State.FAILED

    sim.run_until(done, timeout=60)
    ok = session.state is State.ESTABLISHED
    session.close("done for today")
    sim.run_for(5)
    return ok


def test_a_node_accepts_a_fresh_handshake_every_day_for_sixty_days() -> None:
    sim = Simulation("sixty-days")
    bob = sim.add_node("bob", store=MemoryStore())
    first_set = bob.ctx.keys.prekeys.signed_set_ids[-1]
    for day in range(60):
        caller = sim.add_node(f"caller-{day}")
        assert _handshake(sim, caller, bob), f"day {day}: the handshake failed"
        del sim.nodes[caller.name]  # keep the simulation small
        sim.run_for(DAY - 65)
    prekeys = bob.ctx.keys.prekeys
    # Rotated every 7 days (8 times in 60), old sets pruned after the overlap.
    assert prekeys.signed_set_ids[-1] != first_set
    assert first_set not in prekeys.signed_set_ids
    assert len(prekeys.signed_set_ids) <= 2
    # And the rotated private prekeys were journalled (a restart keeps them).
    stored = bob.ctx.store.load().prekeys if bob.ctx.store is not None else None
    assert stored == prekeys.to_bytes()


def test_a_drained_one_time_pool_is_refilled_within_one_maintenance_period() -> None:
    sim = Simulation("drained-pool")
    bob = sim.add_node("bob")
    prekeys = bob.ctx.keys.prekeys
    policy = prekeys.policy
    sim.run_for(1)
    for record in prekeys.bundle().one_time_prekeys:  # what throw-away INITs do
        prekeys.consume_one_time_prekey(record.prekey_id)
    assert prekeys.one_time_count == 0
    sim.run_for(policy.maintenance_interval)
    assert prekeys.one_time_count >= policy.one_time_refill_threshold
    assert prekeys.one_time_count == policy.one_time_pool_size


def test_the_maintenance_timer_is_in_the_managers_heap() -> None:
    sim = Simulation("maintenance-timer")
    bob = sim.add_node("bob")
    sim.run_for(1)
    timer = bob.manager.get_timer()
    assert timer is not None
    assert timer <= sim.now + bob.ctx.keys.prekeys.policy.maintenance_interval


def test_an_old_signed_prekey_is_accepted_for_its_overlap_and_not_after() -> None:
    sim = Simulation("overlap")
    policy = PrekeyPolicy()
    bob = sim.add_node("bob")
    old_bundle = bob.ctx.keys.prekeys.bundle()
    config = SessionConfig(handshake_timeout=10)

    def with_old_bundle(name: str) -> SimNode:
        return sim.add_node(
            name, config=config, bundles=lambda did: old_bundle if did == bob.did else None
        )

    # Past the lifetime: bob hands out a new set, the old one is still valid.
    sim.run_for(policy.signed_prekey_lifetime + DAY)
    assert bob.ctx.keys.prekeys.bundle().signed_prekeys != old_bundle.signed_prekeys
    assert _handshake(sim, with_old_bundle("late"), bob)
    # Past lifetime + overlap: the old set is gone.
    sim.run_for(policy.signed_prekey_overlap)
    assert old_bundle.signed_prekeys.prekey_id not in bob.ctx.keys.prekeys.signed_set_ids
    with pytest.raises(PrekeyExpired):  # the initiator checks validity first
        _handshake(sim, with_old_bundle("too-late"), bob)


@pytest.mark.parametrize("interval", [0.5, DAY + 1, float("nan")])
def test_the_maintenance_interval_is_validated(interval: float) -> None:
    with pytest.raises(ConfigError, match="maintenance_interval"):
        PrekeyPolicy(maintenance_interval=interval)
