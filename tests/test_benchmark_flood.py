"""Smoke test of ``benchmarks/flood.py``: a tiny standalone run (three
processes on loopback: victim, flooder, the pinging node) prints one JSON
object with every figure the issue names, for both modes.

No timing figure is asserted (a benchmark is not a test; at this size they
are noise): only that each exists and is sane, that the ratios are the
quotients of the figures beside them, that the counters add up (no more
packets refused or admitted than were sent), and that the flood pool is
what it claims to be.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from l2session.crypto.handshake_messages import TYPE_INIT, HandshakeInit
from l2session.runtime.entropy import SystemRandom
from l2session.wire.packets import HandshakePacket, decode_packet
from script_loader import load_script, positive, run_json

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "flood.py"

RTT = (
    "rtt_idle_p50_ms",
    "rtt_idle_p99_ms",
    "rtt_flood_p50_ms",
    "rtt_flood_p99_ms",
    "rtt_flood_mean_ms",
)
COUNTS = (
    "flood_packets_sent",
    "rate_limited",
    "rate_limited_global",
    "quarantined",
    "hosts_quarantined",
    "handshakes_processed",
)
COSTS = ("cost_valid_init_us", "cost_forged_init_us", "cost_refused_init_us")


def _load() -> ModuleType:
    return load_script(SCRIPT, "l2session_benchmark_flood")


def test_a_tiny_run_reports_every_figure_for_both_modes() -> None:
    figures = run_json(
        SCRIPT,
        *("--repeat", "1", "--rounds", "10", "--rate", "200", "--flood-seconds", "0.3"),
        *("--core-samples", "3"),
        timeout=300,
    )
    for suffix in ("", "_no_admission"):
        for key in RTT:
            assert positive(figures[key + suffix]), (key + suffix, figures.get(key + suffix))
        for key in COUNTS:
            value = figures[key + suffix]
            assert isinstance(value, int | float), key + suffix
            assert value >= 0, key + suffix
        assert positive(figures["flood_packets_sent" + suffix])
        assert positive(figures["rtt_flood_samples" + suffix])
        assert figures["rtt_ratio" + suffix] == round(
            figures["rtt_flood_p50_ms" + suffix] / figures["rtt_idle_p50_ms" + suffix], 3
        )
        seen = (
            sum(
                figures[key + suffix]
                for key in ("handshakes_processed", "rate_limited", "rate_limited_global")
            )
            + figures["quarantined" + suffix]
        )
        assert seen <= figures["flood_packets_sent" + suffix]
    # With the limits off nothing is refused.
    for key in ("rate_limited", "rate_limited_global", "quarantined", "hosts_quarantined"):
        assert figures[key + "_no_admission"] == 0
    for key in COSTS:
        assert positive(figures[key]), key
    assert figures["targets"]["rtt_ratio"]["target"] == "<= 2.0"
    assert isinstance(figures["targets"]["rtt_ratio"]["met"], bool)
    assert figures["admission_limits"]["admission_host_burst"] == 40
    assert figures["path"] == "tcp"


def test_the_flood_pool_is_fresh_dids_with_the_asked_mix() -> None:
    flood = _load()
    pool = flood.build_pool("pool test", 1_800_000_000.0, 8, 0.5, SystemRandom())
    assert len(pool) == 8
    inits = []
    for data in pool:
        packet = decode_packet(data)
        assert isinstance(packet, HandshakePacket)
        assert packet.message[1] == TYPE_INIT
        inits.append(HandshakeInit.decode(packet.message))
    assert len({init.initiator_did for init in inits}) == 8  # a fresh DID each
    victim, _ = flood.victim_keys("pool test", 1_800_000_000.0)
    assert {init.responder_did for init in inits} == {victim.did_text}
    # Genuine and forged alternate: a forged one reuses the genuine one's keys.
    assert [inits[i].ephemeral_dh == inits[i - 1].ephemeral_dh for i in range(1, 8)] == [
        True,
        False,
    ] * 3 + [True]
