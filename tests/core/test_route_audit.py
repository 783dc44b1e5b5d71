"""Route changes in the audit log (core/paths/multipath.py ``switch_primary``):
an operator reads why a session left QUIC for μTCP, came back, or followed
its peer to another address -- in the same hash chain as the transitions.
Two sessions over the seeded simulation; Bob keeps a MemoryStore."""

from __future__ import annotations

from path_helpers import session_of as _session

from l2session.core.lifecycle.persistence import (
    ROUTE_FAILOVER,
    ROUTE_MIGRATED,
    ROUTE_RESTORED,
    RouteRecord,
)
from l2session.core.states import State
from l2session.store.memory import MemoryStore
from l2session.testing.simulation import SimNode, Simulation


def _pair(seed: str) -> tuple[Simulation, SimNode, SimNode, MemoryStore]:
    store = MemoryStore()
    sim = Simulation(seed, report_connectivity=True)
    alice = sim.add_node("alice")
    bob = sim.add_node("bob", store=store)
    bob.manager.establish(alice.did)
    sim.run_until(
        lambda: (
            (s := alice.session(bob)) is not None
            and s.state is State.ESTABLISHED
            and _session(bob, alice).state is State.ESTABLISHED
        ),
        timeout=30,
    )
    return sim, alice, bob, store


def _routes(store: MemoryStore) -> list[RouteRecord]:
    return [r for e in store.audit_log() if isinstance(r := e.record(), RouteRecord)]


def test_a_fallback_to_tcp_and_the_return_to_quic_are_audited() -> None:
    sim, alice, bob, store = _pair("route-audit-fallback")
    assert _routes(store) == []
    sim.network.block_path("quic")
    _session(bob, alice).send(b"over tcp")
    sim.run_for(2)
    assert _session(bob, alice).path == "tcp"
    assert alice.session(bob) is not None
    sim.network.unblock_path("quic")
    sim.run_for(2)
    assert _session(bob, alice).path == "quic"
    bob.manager.commit()
    routes = _routes(store)
    assert [(r.cause, r.previous_path, r.path) for r in routes] == [
        (ROUTE_FAILOVER, "quic", "tcp"),
        (ROUTE_RESTORED, "tcp", "quic"),
    ]
    assert {(r.subject, r.address, r.previous_address) for r in routes} == {
        (alice.did, "alice", "alice")
    }
    assert routes[0].at < routes[1].at
    assert store.verify_audit().ok


def test_a_migration_is_audited_with_both_addresses() -> None:
    sim, alice, bob, store = _pair("route-audit-migration")
    sim.rebind("alice", "alice-2", keep_old=True)  # alice announces MIGRATE
    sim.run_for(2)
    assert _session(bob, alice).address == "alice-2"
    bob.manager.commit()
    routes = _routes(store)
    assert [(r.cause, r.previous_address, r.address, r.path) for r in routes] == [
        (ROUTE_MIGRATED, "alice", "alice-2", "quic")
    ]
    entry = next(e for e in store.audit_log() if e.kind == "route")
    assert "route migrated: quic alice -> quic alice-2" in entry.describe()
