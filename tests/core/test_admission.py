"""Admission control (core/management/admission.py): every limit at its boundary.

Two levels.  :class:`AdmissionControl` alone, fed ``now`` directly (at the
simulation's epoch, so the float rounding of real timestamps is in play):
the per-host and global token buckets, the failure window, the host
quarantine and the bounded tables.  Then the session manager on the seeded
simulation with its manual clock, fed well-formed handshake packets built
with the project's own encoders (fresh DIDs with valid signatures, forged
signatures, undecodable INITs, RESUMEs with unknown tickets, bundle
requests): what is refused is counted, refused packets cost no crypto
(``ResponderHandshake.receive_init`` is counted), and an established
session's traffic is never charged or blocked.

No timing is asserted anywhere: the tests count (the benchmark,
benchmarks/flood.py, measures time).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from l2session.core.config import SessionConfig
from l2session.core.events import PacketRejected
from l2session.core.management.admission import (
    CPU_BUDGET,
    QUARANTINED,
    RATE_LIMITED,
    RATE_LIMITED_GLOBAL,
    AdmissionControl,
    HostRateLimiter,
    host_of,
)
from l2session.core.states import State
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError
from l2session.identity.identity import Identity
from l2session.identity.resolver import resolve_signing_key
from l2session.runtime.control import ControlServer
from l2session.runtime.node import Node
from l2session.testing.simulation import START, SimNode, Simulation
from l2session.wire.packets import (
    MAC_SIZE,
    NONCE_SIZE,
    TICKET_ID_SIZE,
    BundleRequest,
    HandshakePacket,
    ResumePacket,
    decode_packet,
    encode_packet,
)

FLOODER = "203.0.113.9:4000"

#: Small limits, so that each boundary is a handful of packets.
SMALL = SessionConfig(
    admission_host_rate=2.0,
    admission_host_burst=3,
    admission_global_rate=4.0,
    admission_global_burst=6,
    admission_failure_limit=5,
    admission_failure_window=10.0,
    admission_quarantine=30.0,
    admission_max_hosts=8,
)


def _control(config: SessionConfig = SMALL) -> AdmissionControl:
    return AdmissionControl(config)


# ----------------------------------------------------------------------
# the key


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("203.0.113.7:4000", "203.0.113.7"),
        ("203.0.113.7:4001", "203.0.113.7"),
        ("[2001:db8:1:2::9]:4000", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"),
        ("[2001:db8:1:3::9]:4000", "2001:db8:1:3::/64"),
        ("[::ffff:192.0.2.1]:4000", "192.0.2.1"),
        ("[::1]:7000", "::/64"),
        ("mallory", "mallory"),
        ("[not-an-ip]:1", "[not-an-ip]:1"),
        ("[::1", "[::1"),
    ],
)
def test_the_key_is_the_host_not_the_port(address: str, host: str) -> None:
    assert host_of(address) == host


def test_ports_of_one_host_share_a_bucket() -> None:
    control = _control()
    now = START
    assert [control.admit(f"198.51.100.1:{port}", now) for port in range(1, 4)] == [None] * 3
    assert control.admit("198.51.100.1:9999", now) == RATE_LIMITED
    assert control.tracked_hosts == 1


# ----------------------------------------------------------------------
# the per-host bucket


def test_host_burst_boundary() -> None:
    control = _control()
    verdicts = [control.admit(FLOODER, START) for _ in range(SMALL.admission_host_burst + 1)]
    assert verdicts == [None] * SMALL.admission_host_burst + [RATE_LIMITED]
    assert control.stats.admitted == SMALL.admission_host_burst
    assert control.stats.rate_limited == 1


def test_host_rate_boundary() -> None:
    """After the burst, exactly one packet per 1/rate seconds."""
    control = _control(replace(SMALL, admission_failure_limit=1000))
    now = START
    for _ in range(SMALL.admission_host_burst):
        assert control.admit(FLOODER, now) is None
    interval = 1.0 / SMALL.admission_host_rate
    for _ in range(5):
        assert control.admit(FLOODER, now + 0.9 * interval) == RATE_LIMITED
        now += interval
        assert control.admit(FLOODER, now) is None
        assert control.admit(FLOODER, now) == RATE_LIMITED


def test_host_bucket_refills_only_to_its_burst() -> None:
    control = _control()
    for _ in range(SMALL.admission_host_burst):
        assert control.admit(FLOODER, START) is None
    later = START + 1000.0
    verdicts = [control.admit(FLOODER, later) for _ in range(SMALL.admission_host_burst + 1)]
    assert verdicts[-1] == RATE_LIMITED
    assert verdicts[:-1] == [None] * SMALL.admission_host_burst


def test_a_clock_stepping_back_refills_nothing() -> None:
    control = _control()
    for _ in range(SMALL.admission_host_burst):
        assert control.admit(FLOODER, START) is None
    assert control.admit(FLOODER, START - 100.0) == RATE_LIMITED
    # ... and the step back earned no credit for later either.
    assert control.admit(FLOODER, START + 0.9 / SMALL.admission_host_rate) == RATE_LIMITED


# ----------------------------------------------------------------------
# the global bucket


def _hosts(count: int) -> Iterator[str]:
    return (f"198.51.100.{i}:5000" for i in range(1, count + 1))


def test_global_burst_boundary_across_hosts() -> None:
    config = SessionConfig(admission_global_burst=6, admission_global_rate=4.0)
    control = _control(config)
    verdicts = [control.admit(address, START) for address in _hosts(7)]
    assert verdicts == [None] * 6 + [RATE_LIMITED_GLOBAL]
    assert control.stats.rate_limited_global == 1
    # One second later, exactly rate more.
    later = [control.admit(address, START + 1.0) for address in _hosts(5)]
    assert later == [None] * 4 + [RATE_LIMITED_GLOBAL]


def test_known_sources_skip_the_global_bucket_not_their_own() -> None:
    config = SessionConfig(admission_global_burst=6, admission_host_burst=3)
    control = _control(config)
    for address in _hosts(6):
        assert control.admit(address, START) is None
    assert control.admit("192.0.2.50:1", START) == RATE_LIMITED_GLOBAL
    known = [control.admit("192.0.2.99:1", START, known=True) for _ in range(4)]
    assert known == [None, None, None, RATE_LIMITED]


def test_the_host_bucket_is_charged_first() -> None:
    """A flooder beyond its own budget spends none of the global one."""
    control = _control()
    for _ in range(50):
        control.admit(FLOODER, START)
    assert control.stats.admitted == SMALL.admission_host_burst
    others = [control.admit(address, START) for address in _hosts(3)]
    assert others == [None, None, None]  # 3 + 3 = the global burst of 6


def test_global_refusals_do_not_count_towards_quarantine() -> None:
    config = SessionConfig(
        admission_global_burst=1, admission_failure_limit=2, admission_host_burst=10
    )
    control = _control(config)
    assert control.admit("192.0.2.1:1", START) is None
    for _ in range(5):
        assert control.admit(FLOODER, START) == RATE_LIMITED_GLOBAL
    assert control.stats.hosts_quarantined == 0


# ----------------------------------------------------------------------
# failures and the host quarantine


def test_failure_limit_boundary() -> None:
    control = _control()
    for _ in range(SMALL.admission_failure_limit - 1):
        control.failure(FLOODER, START)
    assert control.quarantined_until(FLOODER, START) == 0.0
    assert control.admit(FLOODER, START) is None
    control.failure(FLOODER, START)
    assert control.quarantined_until(FLOODER, START) == START + SMALL.admission_quarantine
    assert control.admit(FLOODER, START) == QUARANTINED
    assert control.admit("203.0.113.9:1", START) == QUARANTINED  # any port of the host
    assert control.admit("203.0.113.10:4000", START) is None  # another host
    assert control.stats.hosts_quarantined == 1
    assert control.stats.quarantined == 2


def test_failures_count_within_one_window() -> None:
    control = _control()
    window = SMALL.admission_failure_window
    for _ in range(SMALL.admission_failure_limit - 1):
        control.failure(FLOODER, START)
    # The window started at the first failure; at its end it starts again.
    control.failure(FLOODER, START + window)
    assert control.quarantined_until(FLOODER, START + window) == 0.0
    for _ in range(SMALL.admission_failure_limit - 2):
        control.failure(FLOODER, START + window + 1.0)
    assert control.quarantined_until(FLOODER, START + window + 1.0) == 0.0
    control.failure(FLOODER, START + window + 1.0)
    assert control.quarantined_until(FLOODER, START + window + 1.0) > 0.0


def test_rate_limit_overflow_counts_as_failure() -> None:
    """burst admitted, then failure_limit refusals quarantine the host."""
    control = _control()
    limit, burst = SMALL.admission_failure_limit, SMALL.admission_host_burst
    verdicts = [control.admit(FLOODER, START) for _ in range(burst + limit)]
    assert verdicts == [None] * burst + [RATE_LIMITED] * limit
    assert control.stats.hosts_quarantined == 1
    assert control.admit(FLOODER, START) == QUARANTINED


def test_quarantine_duration_boundary() -> None:
    control = _control()
    for _ in range(SMALL.admission_failure_limit):
        control.failure(FLOODER, START)
    end = START + SMALL.admission_quarantine
    assert control.admit(FLOODER, end - 0.001) == QUARANTINED
    assert control.admit(FLOODER, end) is None
    assert control.quarantined_hosts == 0  # the expired entry is gone


def test_a_quarantined_host_stays_out_while_flooding_only_for_its_term() -> None:
    """Packets refused by the quarantine neither extend it nor count."""
    control = _control()
    for _ in range(SMALL.admission_failure_limit):
        control.failure(FLOODER, START)
    for step in range(100):
        control.admit(FLOODER, START + step * 0.25)
    assert control.stats.failures == SMALL.admission_failure_limit
    assert control.admit(FLOODER, START + SMALL.admission_quarantine) is None


# ----------------------------------------------------------------------
# bounded memory


def test_the_host_table_is_bounded_least_recently_seen_first() -> None:
    control = _control()
    limit = SMALL.admission_max_hosts
    addresses = list(_hosts(limit))
    for address in addresses:
        control.admit(address, START)
    control.admit(addresses[0], START)  # seen again: now the most recent
    control.admit("192.0.2.200:1", START + 10)
    assert control.tracked_hosts == limit
    assert control.stats.hosts_evicted == 1
    assert control.is_tracked(addresses[0])
    assert not control.is_tracked(addresses[1])
    for address in _hosts(10 * limit):  # an attacker cycling addresses
        control.admit(address, START + 20)
    assert control.tracked_hosts == limit


def test_the_quarantine_table_is_bounded() -> None:
    config = SessionConfig(admission_failure_limit=1, admission_max_hosts=4)
    control = _control(config)
    addresses = list(_hosts(6))
    for address in addresses:
        control.failure(address, START)
    assert control.quarantined_hosts == 4
    assert control.stats.hosts_quarantined == 6
    assert control.admit(addresses[0], START) is None  # the oldest was dropped
    assert control.admit(addresses[-1], START) == QUARANTINED


# ----------------------------------------------------------------------
# the CPU budget


def test_cpu_budget_is_spent_by_measured_cost() -> None:
    """Strangers' handshakes are admitted while the CPU bucket is not in
    debt; what each cost is billed afterwards, and the bucket refills at
    ``admission_cpu_share`` seconds per second."""
    config = SessionConfig(admission_cpu_share=0.5, admission_cpu_burst=0.01)
    control = _control(config)
    hosts = _hosts(20)
    admitted = 0
    for address in hosts:
        if control.admit(address, START) is not None:
            break
        control.charge(0.002)  # what the handshake took
        admitted += 1
    assert admitted == 5  # 10 ms of burst at 2 ms each
    assert control.stats.cpu_budget == 1
    assert control.stats.cpu_charged_us == 10_000
    # 4 ms later the share has paid back 2 ms: one more handshake.
    assert control.admit("192.0.2.77:1", START + 0.004) is None
    control.charge(0.002)
    assert control.admit("192.0.2.78:1", START + 0.004) == CPU_BUDGET


def test_cpu_budget_may_go_into_debt_and_waits_it_out() -> None:
    config = SessionConfig(admission_cpu_share=1.0, admission_cpu_burst=0.001)
    control = _control(config)
    assert control.admit("192.0.2.1:1", START) is None
    control.charge(0.05)  # one very slow handshake
    assert control.admit("192.0.2.2:1", START + 0.04) == CPU_BUDGET
    assert control.admit("192.0.2.3:1", START + 0.0495) is None


def test_known_sources_and_refusals_bill_nothing() -> None:
    config = SessionConfig(admission_cpu_share=1.0, admission_cpu_burst=0.001)
    control = _control(config)
    assert control.admit("192.0.2.1:1", START, known=True) is None
    control.charge(1.0)  # a known peer's re-key is outside the budget
    assert control.admit("192.0.2.2:1", START) is None
    control.charge(-5.0)  # a clock step back bills nothing
    control.charge(1.0)  # nor a second charge for the same packet
    assert control.admit("192.0.2.3:1", START) is None
    assert control.stats.cpu_charged_us == 0


def test_snapshot_names_every_counter() -> None:
    control = _control()
    control.admit(FLOODER, START)
    snapshot = control.snapshot()
    assert snapshot["admitted"] == 1
    assert snapshot["tracked_hosts"] == 1
    assert set(snapshot) >= {
        "rate_limited",
        "rate_limited_global",
        "cpu_budget",
        "cpu_charged_us",
        "quarantined",
        "failures",
        "hosts_quarantined",
        "hosts_evicted",
        "quarantined_hosts",
    }


# ----------------------------------------------------------------------
# configuration


def test_defaults() -> None:
    config = SessionConfig()
    assert (config.admission_host_rate, config.admission_host_burst) == (20.0, 40)
    assert (config.admission_global_rate, config.admission_global_burst) == (5_000.0, 10_000)
    assert (config.admission_cpu_share, config.admission_cpu_burst) == (0.75, 2.0)
    assert (config.admission_failure_limit, config.admission_failure_window) == (100, 10.0)
    assert config.admission_quarantine == 60.0
    assert config.admission_max_hosts == 4096


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("admission_host_rate", 0),
        ("admission_host_rate", math.inf),
        ("admission_global_rate", -1.0),
        ("admission_global_rate", math.nan),
        ("admission_host_burst", 0),
        ("admission_host_burst", 2.5),
        ("admission_global_burst", 0),
        ("admission_failure_limit", 0),
        ("admission_failure_window", 0),
        ("admission_quarantine", -1),
        ("admission_max_hosts", 0),
        ("admission_max_hosts", 1 << 21),
        ("admission_cpu_share", 0),
        ("admission_cpu_share", math.nan),
        ("admission_cpu_share", 65),
        ("admission_cpu_burst", 0),
        ("admission_cpu_burst", math.inf),
    ],
)
def test_invalid_limits_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"SessionConfig.{field}"):
        SessionConfig(**{field: value})  # type: ignore[arg-type]


# ----------------------------------------------------------------------
# the session manager on the simulation


@dataclass
class World:
    sim: Simulation
    bob: SimNode
    rng: SeededRandom
    crypto: list[int]

    @property
    def admission(self) -> AdmissionControl:
        return self.bob.manager.admission

    def init(self, *, valid: bool = True, did_rng: SeededRandom | None = None) -> bytes:
        """A well-formed INIT to bob from a fresh DID (no one-time prekey);
        ``valid=False``: its signature is garbage."""
        identity = Identity.generate(did_rng or self.rng)
        bundle = self.bob.party.prekeys.bundle()
        handshake, init = InitiatorHandshake.start(
            local=identity,
            peer_did=self.bob.did,
            peer_signing_key=resolve_signing_key(self.sim.resolver, self.bob.did),
            signed_prekeys=bundle.signed_prekeys,
            one_time_prekey=None,
            rng=self.rng,
            now=self.sim.now,
        )
        if not valid:
            init = init[:-64] + bytes(64)
        return encode_packet(HandshakePacket(handshake.session_id, init))

    def feed(self, packet: bytes, source: str = FLOODER) -> list[PacketRejected]:
        self.bob.manager.receive_datagram(packet, source, "quic")
        return [e for e in self.bob.manager.events() if isinstance(e, PacketRejected)]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    crypto: list[int] = []
    original: Callable[..., Any] = ResponderHandshake.receive_init

    def counting(*args: Any, **kwargs: Any) -> Any:
        crypto.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(ResponderHandshake, "receive_init", counting)
    sim = Simulation("admission")
    bob = sim.add_node("bob", config=SMALL)
    return World(sim, bob, SeededRandom("admission/flooder"), crypto)


def test_an_init_flood_gets_the_burst_then_costs_no_crypto(world: World) -> None:
    manager = world.bob.manager
    burst, limit = SMALL.admission_host_burst, SMALL.admission_failure_limit
    for _ in range(burst):
        assert world.feed(world.init()) == []
    assert len(world.crypto) == burst
    assert len(manager.sessions) == burst  # valid INITs from fresh DIDs: half-open sessions
    answers = manager.datagrams_to_send()
    assert len(answers) == burst  # one RESPONSE each

    refused = [world.feed(world.init()) for _ in range(limit)]
    assert [r[0].reason for r in refused] == [RATE_LIMITED] * limit
    assert len(world.crypto) == burst  # not one more receive_init
    assert len(manager.sessions) == burst
    assert manager.datagrams_to_send() == []
    assert manager.rejections == {RATE_LIMITED: limit}

    # The overflow quarantined the host: refused before its bucket.
    assert world.feed(world.init())[0].reason == QUARANTINED
    assert manager.rejections[QUARANTINED] == 1
    assert world.admission.stats.hosts_quarantined == 1
    assert world.admission.stats.admitted == burst

    # Another port of the same host is the same host; another host is not.
    assert world.feed(world.init(), "203.0.113.9:5555")[0].reason == QUARANTINED
    assert world.feed(world.init(), "198.51.100.77:4000") == []
    assert len(world.crypto) == burst + 1


def test_the_flood_resumes_after_the_quarantine_at_the_rate(world: World) -> None:
    burst, limit = SMALL.admission_host_burst, SMALL.admission_failure_limit
    for _ in range(burst + limit):
        world.feed(world.init(valid=False))
    assert world.admission.quarantined_until(FLOODER, world.sim.now) > 0
    world.sim.clock.advance(SMALL.admission_quarantine - 0.001)
    assert world.feed(world.init(valid=False))[0].reason == QUARANTINED
    world.sim.clock.advance(0.001)
    before = len(world.crypto)
    world.feed(world.init(valid=False))  # admitted: the bucket refilled meanwhile
    assert len(world.crypto) == before + 1


def test_forged_signatures_quarantine_the_host(world: World) -> None:
    """Each forged INIT is a failure (and quarantines its claimed DID at
    that address); failure_limit of them quarantine the host."""
    manager = world.bob.manager
    config = SessionConfig(admission_host_burst=100, admission_failure_limit=5)
    manager.admission = AdmissionControl(config)
    for index in range(config.admission_failure_limit):
        refused = world.feed(world.init(valid=False))
        assert [r.reason for r in refused] == ["invalid_signature"], index
        world.sim.clock.advance(0.01)
    assert len(world.crypto) == config.admission_failure_limit
    assert manager.admission.stats.failures == config.admission_failure_limit
    assert manager.admission.stats.hosts_quarantined == 1
    assert world.feed(world.init(valid=False))[0].reason == QUARANTINED
    assert len(world.crypto) == config.admission_failure_limit
    assert manager.sessions == {}


def test_undecodable_inits_count_as_failures(world: World) -> None:
    manager = world.bob.manager
    junk = encode_packet(HandshakePacket(bytes(16), bytes([1, 1]) + bytes(40)))
    assert isinstance(decode_packet(junk), HandshakePacket)
    burst = SMALL.admission_host_burst
    for _ in range(burst):
        world.feed(junk)
    assert manager.admission.stats.failures == burst
    assert manager.admission.stats.admitted == 0  # failed before the charge: parsing
    for _ in range(SMALL.admission_failure_limit - burst):
        world.feed(junk)
    assert manager.admission.stats.hosts_quarantined == 1
    # Now refused before it is even parsed, and no longer a failure.
    assert world.feed(junk)[0].reason == QUARANTINED
    assert world.feed(world.init())[0].reason == QUARANTINED
    assert manager.admission.stats.failures == SMALL.admission_failure_limit
    assert world.crypto == []


def test_resume_and_bundle_requests_are_charged(world: World) -> None:
    manager = world.bob.manager
    rng = SeededRandom("admission/resume")
    burst = SMALL.admission_host_burst

    def resume() -> bytes:
        return encode_packet(
            ResumePacket(rng.random_bytes(TICKET_ID_SIZE), rng.random_bytes(32), 0, bytes(MAC_SIZE))
        )

    for _ in range(burst):
        assert world.feed(resume()) == []
    assert len(manager.datagrams_to_send()) == burst  # a RESUME_REJECT each
    assert world.feed(resume())[0].reason == RATE_LIMITED
    assert manager.datagrams_to_send() == []  # no answer beyond the budget

    request = encode_packet(BundleRequest(rng.random_bytes(NONCE_SIZE), world.bob.did))
    assert world.feed(request, "198.51.100.8:1") == []
    assert len(manager.datagrams_to_send()) == 1  # a bundle
    for _ in range(burst - 1):
        world.feed(request, "198.51.100.8:1")
    manager.datagrams_to_send()
    assert world.feed(request, "198.51.100.8:1")[0].reason == RATE_LIMITED
    assert manager.datagrams_to_send() == []


def _pair(config: SessionConfig) -> tuple[Simulation, SimNode, SimNode]:
    """Alice at 10.0.0.1:1000 and Bob with an established session."""
    sim = Simulation("admission pair")
    alice = sim.add_node("10.0.0.1:1000", config=config)
    bob = sim.add_node("bob", config=config)
    session = alice.manager.establish(bob.did)
    sim.run_until(
        lambda: (
            session.state is State.ESTABLISHED
            and (s := bob.session(alice)) is not None
            and s.state is State.ESTABLISHED
        ),
        timeout=30,
    )
    return sim, alice, bob


def test_established_sessions_are_never_charged_or_blocked() -> None:
    """A flood from the host of an established peer (another port)
    quarantines the host for handshakes; the session's DATA still flows
    both ways, uncharged."""
    sim, alice, bob = _pair(SMALL)
    manager = bob.manager
    world = World(sim, bob, SeededRandom("admission/same host"), [])
    sim.run_for(10.0)  # alice's handshake spent some of her host's budget: refill it
    admitted = manager.admission.stats.admitted
    for _ in range(SMALL.admission_host_burst + SMALL.admission_failure_limit):
        world.feed(world.init(valid=False), "10.0.0.1:2000")
    assert manager.admission.quarantined_until("10.0.0.1:1000", sim.now) > sim.now
    charged = manager.admission.stats.admitted

    a, b = alice.session(bob), bob.session(alice)
    assert a is not None
    assert b is not None
    for index in range(50):
        a.send(b"ping %d" % index)
        b.send(b"pong %d" % index)
    sim.run_until(lambda: b.available == 50 and a.available == 50, timeout=30)
    assert [b.receive() for _ in range(50)] == [b"ping %d" % i for i in range(50)]
    assert [a.receive() for _ in range(50)] == [b"pong %d" % i for i in range(50)]
    assert manager.admission.stats.admitted == charged  # DATA was never charged
    assert charged - admitted == SMALL.admission_host_burst
    assert b.state is State.ESTABLISHED


def test_a_known_peer_rekeys_outside_the_global_budget() -> None:
    """Strangers exhausted the global budget; an INIT claiming the DID of
    an established session, from that session's address, still gets in."""
    config = SessionConfig(admission_global_burst=3, admission_global_rate=0.001)
    sim, alice, bob = _pair(config)
    manager = bob.manager
    world = World(sim, bob, SeededRandom("admission/known"), [])
    # (alice's own establishment spent two of the three global tokens.)
    for index in range(3):
        world.feed(world.init(valid=False), f"198.51.100.{index}:1")
    assert world.feed(world.init(), "198.51.100.50:1")[0].reason == RATE_LIMITED_GLOBAL
    refused = manager.admission.stats.rate_limited_global

    bundle = bob.party.prekeys.bundle()
    handshake, init = InitiatorHandshake.start(
        local=alice.party.identity,
        peer_did=bob.did,
        peer_signing_key=resolve_signing_key(sim.resolver, bob.did),
        signed_prekeys=bundle.signed_prekeys,
        one_time_prekey=None,
        rng=world.rng,
        now=sim.now,
    )
    packet = encode_packet(HandshakePacket(handshake.session_id, init))
    assert world.feed(packet, alice.address) == []  # admitted as known, answered
    assert manager.admission.stats.rate_limited_global == refused
    assert manager.datagrams_to_send()  # the RESPONSE
    # The same claim from another address is a stranger's.
    assert world.feed(packet, "198.51.100.60:1")[0].reason == RATE_LIMITED_GLOBAL


def test_default_limits_let_ordinary_establishment_through() -> None:
    """Several peers behind one host establish at once under the defaults."""
    sim = Simulation("admission nat")
    hub = sim.add_node("hub")
    peers = [sim.add_node(f"192.0.2.1:{1000 + i}") for i in range(12)]
    sessions = [peer.manager.establish(hub.did) for peer in peers]
    sim.run_until(
        lambda: (
            all(s.state is State.ESTABLISHED for s in sessions)
            and len(hub.manager.sessions) == len(peers)
        ),
        timeout=30,
    )
    # (Peers may pick the same one-time prekey: the loser retries.)
    refused = {QUARANTINED, RATE_LIMITED, RATE_LIMITED_GLOBAL} & set(hub.manager.rejections)
    assert refused == set()
    assert hub.manager.admission.stats.failures == hub.manager.rejections.get("PrekeyNotFound", 0)
    assert hub.manager.admission.stats.admitted >= 2 * len(peers)  # BUNDLE_REQUEST + INIT


# ----------------------------------------------------------------------
# what operators see


def test_the_control_status_shows_the_counters(tmp_path: Path) -> None:
    """``{"op": "status"}`` answers with the refused-packet counters and
    admission control's (runtime/control.py)."""

    async def scenario() -> dict[str, Any]:
        async with Node(listen="127.0.0.1:0", paths=("tcp",), config=SMALL) as node:
            node.manager.receive_datagram(b"\x01garbage", "127.0.0.1:9", "tcp")
            node.manager.admission.failure("127.0.0.1:9", node.clock.now())
            return await ControlServer(node, tmp_path / "control.sock")._answer({"op": "status"})

    status = asyncio.run(scenario())
    assert status["ok"] is True
    assert sum(status["rejections"].values()) == 1
    assert status["admission"]["failures"] == 1
    assert status["admission"]["tracked_hosts"] == 1
    json.dumps(status)  # what the control socket sends


# ----------------------------------------------------------------------
# the same rule for a transport


def test_host_rate_limiter_boundaries() -> None:
    limiter = HostRateLimiter(rate=10.0, burst=2, max_hosts=3)
    assert [limiter.allow("192.0.2.1:1", START) for _ in range(3)] == [True, True, False]
    assert limiter.allow("192.0.2.1:2", START + 0.09) is False  # same host, not yet
    assert limiter.allow("192.0.2.1:3", START + 0.1) is True  # exactly 1/rate later
    assert limiter.refused == 2
    for address in _hosts(10):
        limiter.allow(address, START + 1.0)
    assert len(limiter) == 3  # bounded


@pytest.mark.parametrize(
    ("rate", "burst", "hosts"), [(0.0, 1, 1), (math.inf, 1, 1), (1.0, 0, 1), (1.0, 1, 0)]
)
def test_host_rate_limiter_refuses_bad_limits(rate: float, burst: int, hosts: int) -> None:
    with pytest.raises(ConfigError, match="HostRateLimiter"):
        HostRateLimiter(rate, burst, hosts)
