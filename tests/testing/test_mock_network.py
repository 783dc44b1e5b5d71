"""MockNetwork / MockTransport: the seeded in-memory network of SPEC-018 §6.3."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.errors import ConfigError
from l2session.testing import (
    PATHS,
    Datagram,
    LinkProfile,
    MockNetwork,
    MockTransport,
    NetworkStats,
)

T0 = 1_000.0


def drain(net: MockNetwork) -> list[Datagram]:
    return net.deliver_due(math.inf)


def payloads(datagrams: list[Datagram]) -> list[bytes]:
    return [d.data for d in datagrams]


def balanced(stats: NetworkStats) -> bool:
    """Every datagram sent or duplicated is delivered, dropped or in flight."""
    return stats.sent + stats.duplicated == (
        stats.delivered
        + stats.dropped_loss
        + stats.dropped_partition
        + stats.dropped_overflow
        + stats.in_flight
    )


def noisy_run(seed: str | int) -> list[tuple[float, bytes]]:
    profile = LinkProfile(latency=0.01, jitter=0.02, loss=0.1, duplicate=0.1, reorder=0.1)
    net = MockNetwork(seed, profile)
    for i in range(300):
        net.send("alice", "bob", "quic", i.to_bytes(2, "big"), T0 + i * 0.001)
    return [(d.at, d.data) for d in drain(net)]


# ---------------------------------------------------------------------------
# Determinism


def test_the_same_seed_gives_the_same_deliveries() -> None:
    assert noisy_run("seed-1") == noisy_run("seed-1")
    assert noisy_run(7) == noisy_run(7)


def test_a_different_seed_gives_different_deliveries() -> None:
    assert noisy_run("seed-1") != noisy_run("seed-2")
    assert noisy_run(0) != noisy_run("0")


def test_a_fault_on_one_link_does_not_reshuffle_the_others() -> None:
    """Every send consumes the same draws, so cutting carol off changes
    nothing about what happens between alice and bob."""

    def run(cut_carol: bool) -> list[tuple[float, bytes]]:
        net = MockNetwork("stable", LinkProfile(jitter=0.01, loss=0.3, duplicate=0.2))
        if cut_carol:
            net.isolate("carol")
        for i in range(200):
            net.send("alice", "bob", "quic", bytes([i]), T0 + i)
            net.send("alice", "carol", "quic", bytes([i]), T0 + i)
        return [(d.at, d.data) for d in drain(net) if d.destination == "bob"]

    assert run(cut_carol=False) == run(cut_carol=True)


# ---------------------------------------------------------------------------
# Latency and ordering


def test_latency_is_exact_without_jitter() -> None:
    net = MockNetwork(profile=LinkProfile(latency=0.25))
    net.send("alice", "bob", "quic", b"hi", T0)
    assert net.next_arrival() == T0 + 0.25
    assert net.deliver_due(T0 + 0.25 - 1e-9) == []
    assert net.deliver_due(T0 + 0.25) == [Datagram(T0 + 0.25, "alice", "bob", "quic", b"hi")]
    assert net.next_arrival() is None
    assert net.pending == 0


def test_jitter_stays_within_its_bound() -> None:
    net = MockNetwork("j", LinkProfile(latency=0.1, jitter=0.05))
    for _ in range(500):
        net.send("alice", "bob", "quic", b"x", T0)
    delays = [d.at - T0 for d in drain(net)]
    assert all(0.1 <= delay < 0.15 + 1e-9 for delay in delays)
    assert max(delays) - min(delays) > 0.04  # it really varies


def test_equal_arrival_times_keep_send_order() -> None:
    net = MockNetwork(profile=LinkProfile(latency=0.0))
    for i in range(100):
        net.send("alice", "bob", PATHS[i % 2], bytes([i]), T0)
    assert payloads(net.deliver_due(T0)) == [bytes([i]) for i in range(100)]


def test_deliver_due_returns_only_what_is_due_in_arrival_order() -> None:
    net = MockNetwork()
    net.set_profile(LinkProfile(latency=0.3), between=("alice", "bob"))
    net.set_profile(LinkProfile(latency=0.1), between=("alice", "carol"))
    net.send("alice", "bob", "quic", b"slow", T0)
    net.send("alice", "carol", "quic", b"fast", T0)
    assert net.pending == 2
    assert net.next_arrival() == T0 + 0.1
    assert payloads(net.deliver_due(T0 + 0.2)) == [b"fast"]
    assert payloads(net.deliver_due(T0 + 0.3)) == [b"slow"]


def test_reordering_actually_reorders() -> None:
    profile = LinkProfile(latency=0.01, reorder=0.2, reorder_delay=0.05)
    net = MockNetwork("r", profile)
    for i in range(1_000):
        net.send("alice", "bob", "quic", i.to_bytes(2, "big"), T0 + i * 0.001)
    received = [int.from_bytes(d, "big") for d in payloads(drain(net))]
    assert sorted(received) == list(range(1_000))  # nothing lost or duplicated
    assert received != sorted(received)
    assert 150 <= net.stats.reordered <= 250


def test_duplicates_are_independent_copies() -> None:
    net = MockNetwork("d", LinkProfile(latency=0.01, jitter=0.01, duplicate=1.0))
    net.send("alice", "bob", "quic", b"twice", T0)
    first, second = drain(net)
    assert first.data == second.data == b"twice"
    assert first.at != second.at  # each copy has its own latency
    assert net.stats.duplicated == 1
    assert net.stats.delivered == 2


def test_duplication_rate_is_roughly_honoured() -> None:
    net = MockNetwork("dup", LinkProfile(duplicate=0.1))
    for i in range(10_000):
        net.send("alice", "bob", "quic", b"x", T0 + i)
    assert 850 <= net.stats.duplicated <= 1_150
    assert len(drain(net)) == 10_000 + net.stats.duplicated


# ---------------------------------------------------------------------------
# Loss


def test_loss_rate_is_roughly_honoured() -> None:
    net = MockNetwork("loss", LinkProfile(loss=0.2))
    for i in range(10_000):
        net.send("alice", "bob", "quic", b"x", T0 + i)
    delivered = len(drain(net))
    assert 1_700 <= net.stats.dropped_loss <= 2_300
    assert delivered == 10_000 - net.stats.dropped_loss
    assert balanced(net.stats)


def test_total_loss_means_unreachable() -> None:
    net = MockNetwork(profile=LinkProfile(loss=1.0))
    assert not net.reachable("alice", "bob", "quic")
    net.send("alice", "bob", "quic", b"x", T0)
    assert net.pending == 0
    assert net.stats.dropped_loss == 1


# ---------------------------------------------------------------------------
# Connectivity faults


def test_a_partition_cuts_both_directions_on_every_path_until_healed() -> None:
    net = MockNetwork()
    net.partition("alice", "bob")
    for path in (*PATHS, "custom"):
        assert not net.reachable("alice", "bob", path)
        assert not net.reachable("bob", "alice", path)
        net.send("alice", "bob", path, b"a->b", T0)
        net.send("bob", "alice", path, b"b->a", T0)
    net.send("alice", "carol", "quic", b"a->c", T0)
    assert payloads(drain(net)) == [b"a->c"]
    assert net.stats.dropped_partition == 6

    net.heal("bob", "alice")  # unordered
    assert net.reachable("alice", "bob", "quic")
    net.send("bob", "alice", "tcp", b"again", T0 + 1)
    assert payloads(drain(net)) == [b"again"]


def test_a_partition_keeps_datagrams_already_in_flight_by_default() -> None:
    net = MockNetwork()
    net.send("alice", "bob", "quic", b"on the wire", T0)
    net.partition("alice", "bob")
    assert payloads(drain(net)) == [b"on the wire"]


def test_a_partition_can_retract_datagrams_in_flight() -> None:
    net = MockNetwork()
    net.send("alice", "bob", "quic", b"a->b", T0)
    net.send("bob", "alice", "tcp", b"b->a", T0)
    net.send("alice", "carol", "quic", b"a->c", T0)
    net.partition("alice", "bob", drop_in_flight=True)
    assert net.pending == 1
    assert payloads(drain(net)) == [b"a->c"]
    assert net.stats.dropped_partition == 2
    assert balanced(net.stats)


def test_a_node_cannot_be_partitioned_from_itself() -> None:
    with pytest.raises(ConfigError, match="itself"):
        MockNetwork().partition("alice", "alice")


def test_an_isolated_node_reaches_nobody_until_it_rejoins() -> None:
    net = MockNetwork()
    net.send("bob", "alice", "quic", b"before", T0)
    net.isolate("alice", drop_in_flight=True)
    for peer in ("bob", "carol"):
        assert not net.reachable("alice", peer, "tcp")
        assert not net.reachable(peer, "alice", "quic")
        net.send("alice", peer, "quic", b"out", T0)
        net.send(peer, "alice", "tcp", b"in", T0)
    net.send("bob", "carol", "quic", b"others", T0)
    assert payloads(drain(net)) == [b"others"]
    assert net.stats.dropped_partition == 5

    net.rejoin("alice")
    assert net.reachable("alice", "bob", "quic")
    net.send("alice", "bob", "quic", b"back", T0 + 1)
    assert payloads(drain(net)) == [b"back"]


def test_a_blocked_path_drops_only_that_path() -> None:
    """UDP filtered: QUIC fails, the μTCP fallback still works."""
    net = MockNetwork()
    net.block_path("quic")
    assert not net.reachable("alice", "bob", "quic")
    assert net.reachable("alice", "bob", "tcp")
    net.send("alice", "bob", "quic", b"udp", T0)
    net.send("alice", "bob", "tcp", b"tcp", T0)
    delivered = drain(net)
    assert [(d.path, d.data) for d in delivered] == [("tcp", b"tcp")]

    net.unblock_path("quic")
    net.send("alice", "bob", "quic", b"udp again", T0 + 1)
    assert payloads(drain(net)) == [b"udp again"]


def test_blocking_a_path_can_retract_what_is_on_it() -> None:
    net = MockNetwork()
    net.send("alice", "bob", "quic", b"udp", T0)
    net.send("alice", "bob", "tcp", b"tcp", T0)
    net.block_path("quic", drop_in_flight=True)
    assert payloads(drain(net)) == [b"tcp"]


# ---------------------------------------------------------------------------
# Profiles


def test_the_most_specific_profile_wins() -> None:
    default = LinkProfile(latency=0.001)
    on_tcp = LinkProfile(latency=0.002)
    pair = LinkProfile(latency=0.003)
    pair_on_tcp = LinkProfile(latency=0.004)
    net = MockNetwork(profile=default)
    net.set_profile(on_tcp, path="tcp")
    net.set_profile(pair, between=("bob", "alice"))
    net.set_profile(pair_on_tcp, between=("alice", "bob"), path="tcp")

    assert net.profile_for("alice", "carol", "quic") is default
    assert net.profile_for("alice", "carol", "tcp") is on_tcp
    assert net.profile_for("alice", "bob", "quic") is pair
    assert net.profile_for("bob", "alice", "tcp") is pair_on_tcp

    net.send("alice", "bob", "tcp", b"x", T0)
    net.send("carol", "alice", "quic", b"y", T0)
    assert [d.at for d in drain(net)] == [T0 + 0.001, T0 + 0.004]

    net.clear_profile(between=("alice", "bob"), path="tcp")
    assert net.profile_for("alice", "bob", "tcp") is pair
    net.clear_profile(between=("alice", "bob"))
    assert net.profile_for("alice", "bob", "tcp") is on_tcp
    net.clear_profile(path="tcp")
    assert net.profile_for("alice", "bob", "tcp") is default
    net.set_profile(pair)
    assert net.profile_for("alice", "bob", "tcp") is pair
    with pytest.raises(ConfigError):
        net.clear_profile()


def test_a_lossy_path_leaves_the_other_path_clean() -> None:
    net = MockNetwork("per-path")
    net.set_profile(LinkProfile(loss=1.0), path="quic")
    for i in range(100):
        net.send("alice", "bob", "quic", b"q", T0 + i)
        net.send("alice", "bob", "tcp", b"t", T0 + i)
    assert payloads(drain(net)) == [b"t"] * 100


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency", -0.001),
        ("latency", math.inf),
        ("jitter", -1.0),
        ("jitter", math.nan),
        ("reorder_delay", -0.02),
        ("loss", 1.01),
        ("loss", -0.1),
        ("loss", math.nan),
        ("duplicate", 2.0),
        ("reorder", -0.5),
    ],
)
def test_an_invalid_profile_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        LinkProfile(**{field: value})


def test_profiles_accept_their_bounds() -> None:
    LinkProfile(latency=0, jitter=0, loss=0, duplicate=1, reorder=1, reorder_delay=0)


# ---------------------------------------------------------------------------
# Inputs and bounds


def test_the_payload_is_copied_as_bytes() -> None:
    net = MockNetwork()
    buffer = bytearray(b"mutable")
    net.send("alice", "bob", "quic", buffer, T0)
    net.send("alice", "bob", "quic", memoryview(b"view"), T0)
    buffer[:] = b"changed"
    first, second = drain(net)
    assert first.data == b"mutable"
    assert type(first.data) is bytes
    assert second.data == b"view"
    assert type(second.data) is bytes


def test_bad_inputs_are_refused() -> None:
    net = MockNetwork()
    with pytest.raises(TypeError):
        net.send("alice", "bob", "quic", "text", T0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="destination"):
        net.send("alice", "", "quic", b"x", T0)
    with pytest.raises(ConfigError, match="now"):
        net.send("alice", "bob", "quic", b"x", math.nan)
    with pytest.raises(ConfigError, match="max_in_flight"):
        MockNetwork(max_in_flight=0)
    assert net.stats.sent == 0


def test_max_in_flight_bounds_the_queue() -> None:
    net = MockNetwork(max_in_flight=10)
    for i in range(25):
        net.send("alice", "bob", "quic", bytes([i]), T0)
    assert net.pending == 10
    assert net.stats.dropped_overflow == 15
    assert payloads(drain(net)) == [bytes([i]) for i in range(10)]
    net.send("alice", "bob", "quic", b"room again", T0 + 1)
    assert payloads(drain(net)) == [b"room again"]
    assert balanced(net.stats)


def test_stats_count_every_datagram() -> None:
    net = MockNetwork("stats", LinkProfile(loss=0.2, duplicate=0.2, reorder=0.2))
    net.partition("alice", "carol")
    for i in range(1_000):
        net.send("alice", "bob" if i % 4 else "carol", "quic", b"x", T0 + i * 0.01)
    net.deliver_due(T0 + 5.0)
    stats = net.stats
    assert stats.sent == 1_000
    assert stats.dropped_partition == 250
    assert stats.in_flight == net.pending > 0
    assert stats.delivered > 0
    assert balanced(stats)


# ---------------------------------------------------------------------------
# MockTransport


def test_a_transport_sends_as_its_node() -> None:
    net = MockNetwork()
    alice = MockTransport(net, "alice")
    assert alice.address == "alice"
    assert alice.network is net
    alice.send("bob", b"hello", T0)
    alice.send("bob", b"fallback", T0, path="tcp")
    assert [(d.source, d.destination, d.path, d.data) for d in drain(net)] == [
        ("alice", "bob", "quic", b"hello"),
        ("alice", "bob", "tcp", b"fallback"),
    ]


def test_a_transport_reports_connectivity() -> None:
    net = MockNetwork()
    alice = MockTransport(net, "alice")
    assert alice.reachable("bob", "quic")
    net.block_path("quic")
    assert not alice.reachable("bob")
    assert alice.reachable("bob", "tcp")
    net.partition("alice", "bob")
    assert not alice.reachable("bob", "tcp")


def test_a_transport_needs_an_address() -> None:
    with pytest.raises(ConfigError, match="address"):
        MockTransport(MockNetwork(), "")


# ---------------------------------------------------------------------------
# Property


sends = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob", "carol"]),
        st.sampled_from(["alice", "bob", "carol"]),
        st.sampled_from(PATHS),
        st.binary(max_size=16),
        st.floats(min_value=0.0, max_value=10.0),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    latency=st.floats(min_value=0.0, max_value=1.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    reorder=st.floats(min_value=0.0, max_value=1.0),
    reorder_delay=st.floats(min_value=0.0, max_value=1.0),
    sends=sends,
)
def test_without_loss_or_duplication_everything_arrives_exactly_once(
    seed: int,
    latency: float,
    jitter: float,
    reorder: float,
    reorder_delay: float,
    sends: list[tuple[str, str, str, bytes, float]],
) -> None:
    profile = LinkProfile(
        latency=latency, jitter=jitter, reorder=reorder, reorder_delay=reorder_delay
    )
    net = MockNetwork(seed, profile)
    sent = []
    for index, (source, destination, path, data, now) in enumerate(sends):
        payload = index.to_bytes(2, "big") + data
        net.send(source, destination, path, payload, now)
        sent.append((source, destination, path, payload))
    max_delay = latency + jitter + reorder_delay
    # 1 ns of slack for float rounding in the arrival-time sums.
    deadline = max((now for *_, now in sends), default=0.0) + max_delay + 1e-9

    delivered: list[Datagram] = []
    t = 0.0
    while t < deadline:
        due = net.deliver_due(t)
        assert all(d.at <= t for d in due)
        delivered.extend(due)
        t += 0.25
    delivered.extend(net.deliver_due(deadline))

    assert net.pending == 0
    assert sorted((d.source, d.destination, d.path, d.data) for d in delivered) == sorted(sent)
    arrivals = [d.at for d in delivered]
    assert arrivals == sorted(arrivals)
    assert balanced(net.stats)
