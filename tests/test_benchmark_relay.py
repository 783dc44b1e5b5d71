"""Smoke test of ``benchmarks/relay.py``: with a few messages it runs a
relay process and real nodes on loopback, prints one JSON object, and every
figure the issue names is there and sane.  No timing figure is asserted
(a benchmark is not a test), only that they exist, that the ratios are the
quotients of the figures beside them, and that the target is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from script_loader import load_script, positive

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "relay.py"


def test_relay_benchmark_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    relay = load_script(SCRIPT, "relay_benchmark")
    assert relay.main(["--json", "--messages", "300", "--rounds", "20", "--runs", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "direct_1k_msgs_per_s",
        "relay_1k_msgs_per_s",
        "direct_rtt_64_us",
        "relay_rtt_64_us",
        "relay_cpu_us_per_packet",
        "establish_udp_blocked_ms",
        "establish_quic_ms",
    ):
        assert positive(figures[key]), key
    assert figures["relay_packets_forwarded"] > 0
    ratio = figures["relay_1k_msgs_per_s"] / figures["direct_1k_msgs_per_s"]
    assert figures["relay_throughput_ratio"] == pytest.approx(ratio, rel=0.01)
    rtt = figures["relay_rtt_64_us"] / figures["direct_rtt_64_us"]
    assert figures["relay_rtt_ratio"] == pytest.approx(rtt, rel=0.01)
    assert figures["establish_target_ms"] == 1000
    assert positive(figures["hole_punch_ms"])
