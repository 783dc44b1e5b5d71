"""Path migration and validation (core/paths/migration.py) over the seeded
simulation on virtual time.

A session's peer moves (MIGRATE, or passively: packets from elsewhere); the
new route carries nothing but PATH_CHALLENGE until an authenticated
PATH_RESPONSE echoes the token; then the session switches, keeps its keys,
and resends what is unacknowledged.  Stale MIGRATEs, spoofed sources, wrong
tokens and unanswered challenges change nothing.
"""

from __future__ import annotations

import pytest
from path_helpers import extra as _extra
from path_helpers import session_of as _session
from path_helpers import validation as _v

from l2session.core.events import PathMigrated, PathValidated, StateChanged
from l2session.core.paths.migration import (
    CHALLENGE_TRIES,
    MAX_CHALLENGES,
    MIGRATE_TRIES,
)
from l2session.core.states import State
from l2session.errors import ConfigError, InvalidState
from l2session.store.memory import MemoryStore
from l2session.testing.recorder import record_wire
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.records import Migrate, PathResponse


def _pair(
    seed: str, *, bob_store: MemoryStore | None = None
) -> tuple[Simulation, SimNode, SimNode]:
    sim = Simulation(seed)
    alice = sim.add_node("alice")
    bob = sim.add_node("bob", store=bob_store)
    alice.manager.establish(bob.did)
    sim.run_until(lambda: _established(alice, bob) and _established(bob, alice), timeout=30)
    return sim, alice, bob


def _established(node: SimNode, peer: SimNode) -> bool:
    session = node.session(peer)
    return session is not None and session.state is State.ESTABLISHED


def _exchange(sim: Simulation, alice: SimNode, bob: SimNode, count: int, tag: str) -> None:
    """``count`` messages each way, all delivered once and in order."""
    a, b = _session(alice, bob), _session(bob, alice)
    sent_a = [f"{tag} a{i}".encode() for i in range(count)]
    sent_b = [f"{tag} b{i}".encode() for i in range(count)]
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    for x, y in zip(sent_a, sent_b, strict=True):
        a.send(x)
        b.send(y)

    def done() -> bool:
        got_b.extend(b.receive_many())
        got_a.extend(a.receive_many())
        return len(got_a) >= count and len(got_b) >= count and not a.queued and not b.queued

    sim.run_until(done, timeout=60)
    sim.run_for(1)
    got_b.extend(b.receive_many())
    got_a.extend(a.receive_many())
    assert got_b == sent_a
    assert got_a == sent_b


def test_migration_is_validated_then_switched_with_the_same_keys() -> None:
    store = MemoryStore()
    sim, alice, bob = _pair("migrate", bob_store=store)
    _exchange(sim, alice, bob, 20, "before")
    a, b = _session(alice, bob), _session(bob, alice)
    keys = (a.session_id, a.key_epoch, b.session_id, b.key_epoch)
    bob.events.clear()
    alice.events.clear()
    wire = record_wire(sim)

    sim.rebind("alice", "alice-2", keep_old=True)  # alice announces MIGRATE
    moved_at = sim.now
    assert b.address == "alice"  # nothing switches before validation
    sim.run_until(lambda: b.address == "alice-2", timeout=5)
    switched = sim.now
    assert b.path == "quic"
    assert switched - moved_at < 0.1  # one MIGRATE and one challenge round trip

    # Before the switch the new address got exactly one packet: the challenge.
    early = [s for s in wire if s.destination == "alice-2" and s.at < switched]
    assert len(early) == 1
    assert _v(b).validated == 1
    assert not _v(b).challenges
    migrated = [e for e in bob.events if isinstance(e, PathMigrated)]
    assert migrated == [PathMigrated(alice.did, "alice-2", "quic", "alice", "quic")]
    # Same keys, same session, no state change anywhere.
    assert (a.session_id, a.key_epoch, b.session_id, b.key_epoch) == keys
    for node in (alice, bob):
        assert not [e for e in node.events if isinstance(e, StateChanged)]
    # The durable row names the new address.
    (row,) = store.load().sessions
    assert row.address == "alice-2"

    # The old address goes away; everything flows over the new one.
    sim.unbind("alice")
    _exchange(sim, alice, bob, 200, "after")
    assert not [
        s for s in wire if s.source == "bob" and s.destination == "alice" and s.at > switched
    ]
    assert a.state is State.ESTABLISHED
    assert b.state is State.ESTABLISHED
    assert (a.session_id, b.session_id) == keys[::2]


def test_messages_lost_on_the_old_address_are_resent_after_the_switch() -> None:
    sim, alice, bob = _pair("migrate-in-flight")
    a, b = _session(alice, bob), _session(bob, alice)
    for i in range(300):
        b.send(b"b%04d" % i)
    sim.run_for(0.001)  # bob's first packets are on their way to "alice"
    sim.rebind("alice", "alice-2")  # the old address vanishes at once
    received: list[bytes] = []

    def done() -> bool:
        received.extend(a.receive_many())
        return len(received) >= 300 and not b.queued

    took = sim.run_until(done, timeout=30)
    assert received == [b"b%04d" % i for i in range(300)]
    assert b.address == "alice-2"
    assert took < 1.0  # resent at the switch, not after retransmission timeouts


def test_passive_migration_after_a_nat_rebinding() -> None:
    sim, alice, bob = _pair("nat-rebinding")
    b = _session(bob, alice)
    wire = record_wire(sim)
    sim.rebind("alice", "alice-nat", announce=False)  # alice does not know
    _exchange(sim, alice, bob, 50, "nat")
    assert b.address == "alice-nat"
    assert [e for e in bob.events if isinstance(e, PathMigrated)][-1].previous_address == "alice"
    # No MIGRATE was needed: alice never announced.
    assert alice.session(bob) is not None
    assert _session(alice, bob).validation is None  # never announced anything
    assert any(s.destination == "alice-nat" for s in wire)


def test_an_older_migrate_cannot_move_the_session_back() -> None:
    sim, alice, bob = _pair("stale-migrate")
    a, b = _session(alice, bob), _session(bob, alice)
    wire = record_wire(sim)
    sim.rebind("alice", "alice-2", keep_old=True)
    sim.pump()  # the MIGRATE goes on the wire
    first_migrate = next(s for s in wire if s.source == "alice-2" and s.destination == "bob")
    sim.run_until(lambda: b.address == "alice-2", timeout=5)
    sim.rebind("alice", "alice-3", keep_old=True)  # alice-2 still answers
    sim.run_until(lambda: b.address == "alice-3", timeout=5)
    assert _v(b).peer_seq == 2
    sim.run_for(5)  # MIGRATE resends over, nothing outstanding
    before = len(wire)

    # An exact replay of the first MIGRATE is refused by the replay window.
    replays = bob.manager.rejections.get("ReplayDetected", 0)
    bob.manager.receive_datagram(first_migrate.data, "alice-3", "quic")
    assert bob.manager.rejections.get("ReplayDetected", 0) == replays + 1

    # A delayed MIGRATE(1) that was never seen authenticates, and is ignored.
    assert a.channel is not None
    delayed = a.channel.seal([Migrate(1, "alice-2")])
    bob.manager.receive_datagram(delayed, "alice-3", "quic")
    assert _v(b).stale_migrates == 1
    assert not _v(b).challenges
    sim.run_for(5)
    assert b.address == "alice-3"
    assert not [s for s in wire[before:] if s.destination == "alice-2"]
    assert b.state is State.ESTABLISHED
    _exchange(sim, alice, bob, 20, "still")


def test_a_spoofed_source_gets_no_data_before_validation() -> None:
    sim, alice, bob = _pair("spoof")
    a, b = _session(alice, bob), _session(bob, alice)
    wire = record_wire(sim)
    send = sim.network.send
    diverted: list[float] = []
    stop_at = sim.now + 1.0

    def attacker(
        source: str, destination: str, path: str, data: bytes | bytearray | memoryview, now: float
    ) -> None:
        # An on-path attacker takes alice's packets and re-sends them as
        # its own: they authenticate at bob, from "mallory".
        if source == "alice" and destination == "bob" and now < stop_at:
            diverted.append(now)
            source = "mallory"
        send(source, destination, path, data, now)

    sim.network.send = attacker  # type: ignore[method-assign]
    for i in range(100):
        a.send(b"a%03d" % i)
    got: list[bytes] = []

    def done() -> bool:
        got.extend(b.receive_many())
        return len(got) >= 100 and not a.queued

    sim.run_until(done, timeout=30)
    sim.run_for(30)  # past the hold-off, the attacker silent again
    got.extend(b.receive_many())
    assert len(diverted) > 1
    # The authenticated data was accepted, once each, in order ...
    assert got == [b"a%03d" % i for i in range(100)]
    # ... but "mallory" received only the challenges, and never became the route.
    to_mallory = [s for s in wire if s.destination == "mallory"]
    assert 1 <= len(to_mallory) <= CHALLENGE_TRIES
    assert b.address == "alice"
    assert _v(b).abandoned == 1
    assert ("mallory", "quic") not in _extra(b)
    assert not [e for e in bob.events if isinstance(e, PathMigrated | PathValidated)]
    assert b.state is State.ESTABLISHED


def test_a_path_response_needs_the_outstanding_token() -> None:
    _sim, alice, bob = _pair("wrong-token")
    a, b = _session(alice, bob), _session(bob, alice)
    bob.manager.add_route(alice.did, "alice-x", "quic")  # nobody is there
    (challenge,) = _v(b).challenges
    assert a.channel is not None

    wrong = bytes(x ^ 0xFF for x in challenge.token)
    bob.manager.receive_datagram(a.channel.seal([PathResponse(wrong)]), "alice", "quic")
    assert _v(b).unknown_responses == 1
    assert _v(b).challenges == [challenge]
    assert not _extra(b)

    # A forged (unauthenticated) response is refused before any record is read.
    forged = bytearray(a.channel.seal([PathResponse(challenge.token)]))
    forged[-1] ^= 1
    bob.manager.receive_datagram(bytes(forged), "alice", "quic")
    assert _v(b).challenges == [challenge]
    assert sum(bob.manager.rejections.values()) == 1

    # Only the keyholder echoing the right token validates.
    bob.manager.receive_datagram(a.channel.seal([PathResponse(challenge.token)]), "alice", "quic")
    assert not _v(b).challenges
    assert _extra(b) == [("alice-x", "quic")]
    assert b.address == "alice"  # an added route joins; it does not move the session
    assert PathValidated(alice.did, "alice-x", "quic") in bob.manager.events()


def test_challenges_are_abandoned_after_the_bound() -> None:
    sim, alice, bob = _pair("abandon")
    b = _session(bob, alice)
    wire = record_wire(sim)
    start = sim.now
    bob.manager.add_route(alice.did, "nowhere", "quic")
    sim.run_for(20)
    tries = [s.at - start for s in wire if s.destination == "nowhere"]
    assert tries == pytest.approx([0.0, 1.0, 2.0], abs=0.01)
    assert len(tries) == CHALLENGE_TRIES
    assert _v(b).abandoned == 1
    assert not _v(b).challenges
    assert _extra(b) == []
    assert b.state is State.ESTABLISHED

    # At most MAX_CHALLENGES are outstanding; more candidates are refused.
    for i in range(MAX_CHALLENGES + 2):
        bob.manager.add_route(alice.did, f"nowhere-{i}", "quic")
    assert _v(b).outstanding == MAX_CHALLENGES
    assert _v(b).refused == 2
    sim.run_for(10)
    assert _v(b).outstanding == 0
    assert _v(b).abandoned == 1 + MAX_CHALLENGES
    _exchange(sim, alice, bob, 10, "fine")


def test_a_migration_that_cannot_be_validated_keeps_the_old_path() -> None:
    sim, alice, bob = _pair("unreachable-endpoint")
    a, b = _session(alice, bob), _session(bob, alice)
    wire = record_wire(sim)
    alice.manager.local_address_changed("alice-void")  # but alice still sends from "alice"
    _exchange(sim, alice, bob, 100, "meanwhile")
    sim.run_for(10)
    assert b.address == "alice"
    assert _v(b).abandoned == 1
    assert len([s for s in wire if s.destination == "alice-void"]) == CHALLENGE_TRIES
    # Alice gave up announcing after MIGRATE_TRIES: the challenges never reached her.
    assert _v(a).announce is None
    migrates = [s for s in wire if s.source == "alice" and s.destination == "bob"]
    assert len(migrates) >= MIGRATE_TRIES
    assert a.state is State.ESTABLISHED
    assert b.state is State.ESTABLISHED


def test_when_nothing_validates_the_ordinary_liveness_rules_apply() -> None:
    sim, alice, bob = _pair("liveness-after-move")
    a, b = _session(alice, bob), _session(bob, alice)
    send = sim.network.send
    blocked = [True]

    def one_way(
        source: str, destination: str, path: str, data: bytes | bytearray | memoryview, now: float
    ) -> None:
        if blocked[0] and destination == "alice-2":
            return  # bob cannot reach alice's new address (yet)
        send(source, destination, path, data, now)

    sim.network.send = one_way  # type: ignore[method-assign]
    sim.rebind("alice", "alice-2")
    # Bob answers at the old address, which is gone: alice hears nothing
    # and degrades by the heartbeat rules; no state was added for this.
    sim.run_until(lambda: a.state is State.DEGRADED, timeout=300)
    assert b.address == "alice"
    assert _v(b).abandoned >= 1
    blocked[0] = False
    sim.run_until(lambda: a.state is State.ESTABLISHED and b.address == "alice-2", timeout=60)
    assert [r.target for r in a.history][-2:] == [State.DEGRADED, State.ESTABLISHED]
    _exchange(sim, alice, bob, 20, "recovered")


def test_api_arguments_are_checked() -> None:
    _sim, alice, bob = _pair("api")
    with pytest.raises(InvalidState):
        alice.manager.add_route("did:key:z6MkNobody", "x", "quic")
    with pytest.raises(ConfigError):
        alice.manager.add_route(bob.did, "", "quic")
    with pytest.raises(ConfigError):
        alice.manager.local_address_changed("")
    with pytest.raises(ConfigError):
        alice.manager.local_address_changed("x" * 256)
