"""Hole punching timed as DCUtR, on the seeded simulation (virtual time).

Two nodes behind NATs that map endpoint-independently but filter by
address (a packet from outside gets in only after the host sent one to
that address -- Linux masquerade with conntrack), and a relay path between
them that is slower than the direct one.  The lower DID leads: it measures
the relayed round trip with the MIGRATE exchange, sends PUNCH_SYNC and
fires half a round trip later, while the follower fires on receipt.  So
both punches leave at the same virtual moment, neither is dropped by the
other's NAT, and the session is direct one direct round trip later --
where the untimed punch (each side firing when the other's MIGRATE arrived)
lost the follower's first challenge to the leader's NAT and waited a
resend interval.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from l2session.core.config import SessionConfig
from l2session.core.link.session import Session
from l2session.testing.network import Datagram, LinkProfile
from l2session.testing.simulation import SimNode, Simulation, both_established

RELAY_DELAY = 0.040  # one way, through the relay
DIRECT_DELAY = 0.010  # one way, NAT to NAT
CONFIG = replace(SessionConfig(), path_race_delay=None)


class NatSimulation(Simulation):
    """Alice and Bob reach each other at ``relay/...`` over the path
    ``"relay"`` (the relay rewrites the source, as a circuit does), and
    directly from their NATs' addresses ``NAME-nat``."""

    def __init__(self, seed: str, *, behind_nat: tuple[str, ...] = ("alice", "bob")) -> None:
        super().__init__(seed, profile=LinkProfile(latency=DIRECT_DELAY))
        self.network.set_profile(LinkProfile(latency=RELAY_DELAY), path="relay")
        self.behind_nat = behind_nat
        #: (host, remote address) -> when the host first sent there.
        self.opened: dict[tuple[str, str], float] = {}
        self.nat_drops = 0
        #: When each node sent its first direct packet.
        self.first_direct: dict[str, float] = {}
        deliver = self.network.deliver_due

        def filtered(now: float) -> list[Datagram]:
            return [d for d in deliver(now) if self._admitted(d)]

        self.network.deliver_due = filtered  # type: ignore[method-assign]

    def public(self, name: str) -> str:
        return f"{name}-nat" if name in self.behind_nat else f"{name}-public"

    def setup(self) -> tuple[SimNode, SimNode]:
        alice = self.add_node("alice", config=CONFIG)
        bob = self.add_node("bob", config=CONFIG)
        for node in (alice, bob):
            self.bind(node.name, self.public(node.name))
            self.bind(node.name, "relay/~alice" if node is alice else "relay/bob")
            manager = node.manager
            manager.fixed_path = lambda a: "relay" if a.startswith("relay/") else None
            mine = self.public(node.name)
            manager.reflexive = lambda a, mine=mine: mine if a.startswith("relay/") else None
        self._addresses[bob.did] = "relay/bob"  # Alice knows Bob via the relay only
        return alice, bob

    def _admitted(self, datagram: Datagram) -> bool:
        if datagram.path == "relay":
            return True
        host = datagram.destination.removesuffix("-nat")
        if host == datagram.destination:
            return True  # a public address: no NAT
        sent = self.opened.get((host, datagram.source))
        if sent is None or sent > datagram.at:
            self.nat_drops += 1
            return False
        return True

    def _flush_outboxes(self, now: float) -> int:
        moved = 0
        for node in self.nodes.values():
            for out in node.manager.datagrams_to_send():
                if out.path == "relay":
                    # The circuit: the peer sees us at our relayed route.
                    source = "relay/bob" if node.name == "bob" else "relay/~alice"
                    destination = "relay/bob" if node.name == "alice" else "relay/~alice"
                else:
                    source, destination = self.public(node.name), out.address
                    self.opened.setdefault((node.name, destination), now)
                    self.first_direct.setdefault(node.name, now)
                self.network.send(source, destination, out.path, out.data, now)
                moved += 1
        return moved


def sessions(alice: SimNode, bob: SimNode) -> tuple[Session, Session]:
    ab, ba = alice.session(bob), bob.session(alice)
    assert ab is not None
    assert ba is not None
    return ab, ba


def direct(alice: SimNode, bob: SimNode) -> bool:
    a, b = alice.session(bob), bob.session(alice)
    return a is not None and b is not None and a.path == b.path == "quic"


SEEDS = ["punch-1", "punch-2", "punch-3", "punch-4"]  # both DID orders occur


@pytest.mark.parametrize("seed", SEEDS)
def test_both_punches_leave_at_once_and_neither_nat_drops_one(seed: str) -> None:
    sim = NatSimulation(seed)
    alice, bob = sim.setup()
    alice.manager.establish(bob.did)
    sim.run_until(lambda: both_established(alice, bob), timeout=10)
    ab, ba = sessions(alice, bob)
    assert ab.address == "relay/bob"
    assert ba.address == "relay/~alice"
    took = sim.run_until(lambda: direct(alice, bob), timeout=10)
    assert ab.address == "bob-nat"
    assert ba.address == "alice-nat"
    # Both fired at the same virtual moment, so no punch was dropped.
    assert sim.first_direct["alice"] == sim.first_direct["bob"]
    assert sim.nat_drops == 0
    # Relayed MIGRATE out and back, half a round trip, one direct round
    # trip: well under the one-second resend an untimed punch waited for.
    assert took <= 2 * RELAY_DELAY + RELAY_DELAY + 2 * DIRECT_DELAY + 1e-6
    leader, follower = (ab, ba) if alice.did < bob.did else (ba, ab)
    assert leader.validation is not None
    assert follower.validation is not None
    assert leader.validation.punch_rtt is not None
    assert abs(leader.validation.punch_rtt - 2 * RELAY_DELAY) < 1e-6
    assert leader.validation.punch_failures == 0
    assert follower.validation.punch_failures == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_follower_announces_by_itself_when_the_leader_cannot_punch(seed: str) -> None:
    """The leader has no NAT address (it is public): it announces nothing,
    so the follower offers its own after one resend interval, and the
    leader validates it (the follower is public here too: a one-sided
    punch cannot pass a filtering NAT, with or without timing)."""
    probe = NatSimulation(seed)
    a, b = probe.setup()
    leader_name = "alice" if a.did < b.did else "bob"
    sim = NatSimulation(seed, behind_nat=())
    alice, bob = sim.setup()
    lead, follow = (alice, bob) if leader_name == "alice" else (bob, alice)
    lead.manager.reflexive = lambda address: None
    alice.manager.establish(bob.did)
    sim.run_until(lambda: both_established(alice, bob), timeout=10)
    leading, following = lead.session(follow), follow.session(lead)
    assert leading is not None
    assert following is not None
    took = sim.run_until(lambda: leading.path == "quic", timeout=10)
    assert took >= CONFIG.resend_interval  # the follower waited for the leader
    assert following.validation is not None
    assert following.validation.punch_wait_until is None  # it announced
    assert leading.address == f"{follow.name}-public"
    # The leader's next packet comes directly: the follower validates that
    # route (passive migration) and is direct too.
    leading.send(b"direct now")
    sim.run_until(lambda: direct(alice, bob), timeout=10)
