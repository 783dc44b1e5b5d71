"""Light-minute delays on the seeded simulation (docs/SESSIONS.md
"Light-minute delays"): with ``SessionConfig.deep_space`` two nodes 20 and
40 minutes apart (one way) establish, exchange 100 messages each way
exactly once and in order, and recover from a partition by resumption, not
a full handshake.

Each phase also bounds the datagrams sent, because "it works" is not enough
at these delays: with the old fixed 1 s resend a 20-minute establishment
sent about 14,000 datagrams.  The bounds and why:

* establishment: exactly one of each of BUNDLE_REQ, BUNDLE, INIT, RESPONSE
  and FINISH (5): the first resend waits 1.25 round trips, so nothing is
  resent on a lossless link.
* 100 messages each way: at most 32 messages per packet gives 4 DATA
  packets per side, plus at most 2 packets per side for SYNC and ACKs that
  find no data to ride on: 12.  No retransmission: ``initial_rto`` is above
  a round trip.
* partition: no side sends faster than its fastest timer, the degraded
  heartbeat every ``heartbeat_interval / heartbeat_tolerance``; so at most
  2 * (T / that + 1) datagrams in a partition of T seconds.
* recovery: a RESUME from each side (RESUME_EARLY, carrying the messages
  queued during the partition as 0-RTT data; they cross and the lower
  DID's wins), one RESUME_ACK, and no HANDSHAKE packet at all; with the
  SYNC, the loser's messages and the ACKs, at most 12.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from l2session.core.config import SessionConfig
from l2session.core.link.session import Session
from l2session.core.states import State
from l2session.store.memory import MemoryStore
from l2session.testing.network import LinkProfile
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.packets import decode_packet

MINUTE = 60.0


class Counted:
    """Counts every datagram put on the network, by packet type."""

    def __init__(self, sim: Simulation) -> None:
        self.sent: Counter[str] = Counter()
        network = sim.network
        original = network.send

        def send(source: str, destination: str, path: str, data: bytes, now: float) -> None:
            self.sent[type(decode_packet(data)).__name__] += 1
            original(source, destination, path, data, now)

        network.send = send  # type: ignore[method-assign,assignment]

    def take(self) -> Counter[str]:
        out, self.sent = self.sent, Counter()
        return out


def _session(node: SimNode, peer: SimNode) -> Session:
    session = node.session(peer)
    assert session is not None
    return session


def _both(a: SimNode, b: SimNode, state: State) -> bool:
    one, two = a.session(b), b.session(a)
    return one is not None and two is not None and one.state is state and two.state is state


@pytest.mark.parametrize("minutes", [20, 40])
def test_light_minutes_establish_exchange_and_resume(minutes: int) -> None:
    delay = minutes * MINUTE
    config = SessionConfig.deep_space(delay)
    sim = Simulation(f"light-minutes-{minutes}", profile=LinkProfile(latency=delay))
    alice = sim.add_node("alice", config=config, store=MemoryStore())
    bob = sim.add_node("bob", config=config, store=MemoryStore())
    counted = Counted(sim)

    # Establishment: bundle fetch and PQXDH, two and a half round trips.
    alice.manager.establish(bob.did)
    took = sim.run_until(lambda: _both(alice, bob, State.ESTABLISHED), timeout=20 * delay)
    sent = counted.take()
    print(f"\n{minutes} min: established in {took:.0f} s, {dict(sent)}")
    assert took == pytest.approx(5 * delay)
    assert sent == Counter(BundleRequest=1, BundlePacket=1, HandshakePacket=3), (
        f"establishment sent {dict(sent)}"
    )

    # 100 messages each way, exactly once and in order.
    a, b = _session(alice, bob), _session(bob, alice)
    for i in range(100):
        a.send(b"a%d" % i)
        b.send(b"b%d" % i)
    at_a: list[bytes] = []
    at_b: list[bytes] = []

    def exchanged() -> bool:
        at_a.extend(a.receive_many())
        at_b.extend(b.receive_many())
        return len(at_a) >= 100 and len(at_b) >= 100 and a.queued == 0 and b.queued == 0

    sim.run_until(exchanged, timeout=20 * delay)
    sent = counted.take()
    print(f"{minutes} min: 100 each way, {dict(sent)}")
    assert at_b == [b"a%d" % i for i in range(100)]
    assert at_a == [b"b%d" % i for i in range(100)]
    assert sum(sent.values()) <= 12, f"exchange sent {dict(sent)}"

    # A partition long enough to suspend both sides, with messages queued.
    sim.network.partition("alice", "bob")
    start = sim.now
    for i in range(5):
        a.send(b"late a%d" % i)
        b.send(b"late b%d" % i)
    sim.run_until(
        lambda: a.state is State.SUSPENDED and b.state is State.SUSPENDED, timeout=200 * delay
    )
    partitioned = sim.now - start
    sent = counted.take()
    print(f"{minutes} min: partition of {partitioned:.0f} s, {dict(sent)}")
    cadence = config.heartbeat_interval / config.heartbeat_tolerance
    assert sum(sent.values()) <= 2 * (math.ceil(partitioned / cadence) + 1), dict(sent)

    sim.network.heal("alice", "bob")
    healed = sim.now
    late_a: list[bytes] = []
    late_b: list[bytes] = []

    def recovered() -> bool:
        late_a.extend(a.receive_many())
        late_b.extend(b.receive_many())
        return (
            _both(alice, bob, State.ESTABLISHED)
            and len(late_a) >= 5
            and len(late_b) >= 5
            and a.queued == 0
            and b.queued == 0
        )

    sim.run_until(recovered, timeout=200 * delay)
    sent = counted.take()
    assert late_b == [b"late a%d" % i for i in range(5)]
    assert late_a == [b"late b%d" % i for i in range(5)]
    assert sent["HandshakePacket"] == 0  # resumed, not a new PQXDH handshake
    # The queued messages ride in the RESUME (0-RTT) where the side that
    # wins the crossing has them; either way a resumption, not a handshake.
    assert sent["ResumePacket"] + sent["ResumeEarlyPacket"] >= 1
    assert sent["ResumeAckPacket"] == 1
    assert sum(sent.values()) <= 12, f"recovery sent {dict(sent)}"
    # Nothing was delivered twice anywhere along the way.
    assert a.receive_many() == []
    assert b.receive_many() == []
    print(f"\n{minutes} min: recovered {sim.now - healed:.0f} s after healing, {dict(sent)}")


def test_the_default_windows_cannot_span_twenty_light_minutes() -> None:
    """Why the profile exists: with the default 300 s freshness window the
    INIT is stale on arrival, and the steady 1 s resend floods the link
    (even with the attempt's timeout stretched to let the INIT arrive)."""
    delay = 20 * MINUTE
    config = SessionConfig(handshake_timeout=4 * delay, heartbeat_interval=1e6)
    sim = Simulation("light-minutes-default", profile=LinkProfile(latency=delay))
    alice = sim.add_node("alice", config=config)
    bob = sim.add_node("bob", config=config)
    counted = Counted(sim)
    session = alice.manager.establish(bob.did)
    sim.run_for(4 * delay)
    assert session.state is not State.ESTABLISHED
    assert bob.session(alice) is None
    assert bob.manager.rejections.get("HandshakeError", 0) > 0  # stale INITs
    assert sum(counted.take().values()) > 5000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("handshake_max_skew", 0.0),
        ("resume_max_skew", -1.0),
        ("resend_interval", float("nan")),
        ("resend_max_interval", 0.5),
    ],
)
def test_windows_and_resends_are_validated(field: str, value: float) -> None:
    from l2session.errors import ConfigError

    with pytest.raises(ConfigError, match=field):
        SessionConfig(**{field: value})  # type: ignore[arg-type]


def test_resends_back_off_to_the_cap() -> None:
    config = SessionConfig(resend_interval=2.0, resend_max_interval=10.0)
    assert [config.resend_delay(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert SessionConfig().resend_delay(50) == 1.0
    with pytest.raises(Exception, match="one_way_delay"):
        SessionConfig.deep_space(0.0)
