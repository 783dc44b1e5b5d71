"""Smoke test of ``benchmarks/peers.py`` in a quick mode: it runs raw TCP,
CurveZMQ (a real second process), l2session over μTCP and QUIC, prints one
JSON object, and every figure the issue names is a positive finite number
beside the ratios computed from it.  py-libp2p is not in the test
environment (it lives in the separate ``peers`` extra): the benchmark must
skip it and say why, or, where it is installed, measure it too.

No timing figure is asserted (at this size they are noise).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from script_loader import load_script, positive

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "peers.py"


def test_quick_run_reports_every_peer_and_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    peers = load_script(SCRIPT, "l2session_benchmark_peers")
    argv = ["--messages", "300", "--rounds", "20", "--repeat", "1", "--json"]
    assert peers.main(argv) == 0
    figures = json.loads(capsys.readouterr().out)
    assert isinstance(figures, dict)
    contenders = ["raw_tcp", "curvezmq", "l2s_tcp", "l2s_quic"]
    if "libp2p" in figures["skipped"]:
        assert "libp2p" in figures["skipped"]["libp2p"]  # the reason names what is missing
        assert "l2s_vs_libp2p_msgs" not in figures
    else:
        contenders.append("libp2p")
    for name in contenders:
        assert positive(figures[f"{name}_1k_msgs_per_s"]), name
        assert positive(figures[f"{name}_rtt_64_us"]), name
    peers_measured = ["raw", "curvezmq"] + (["libp2p"] if "libp2p" in contenders else [])
    for peer in peers_measured:
        source = "raw_tcp" if peer == "raw" else peer
        msgs = figures["l2s_tcp_1k_msgs_per_s"] / figures[f"{source}_1k_msgs_per_s"]
        rtt = figures["l2s_tcp_rtt_64_us"] / figures[f"{source}_rtt_64_us"]
        assert figures[f"l2s_vs_{peer}_msgs"] == pytest.approx(msgs, rel=0.01)
        assert figures[f"l2s_vs_{peer}_rtt"] == pytest.approx(rtt, rel=0.01)
    assert figures["messages"] == 300
    assert isinstance(figures["targets"]["l2s_vs_curvezmq_msgs"]["met"], bool)


def test_a_missing_libp2p_is_named() -> None:
    peers = load_script(SCRIPT, "l2session_benchmark_peers")
    reason = peers.libp2p_missing(str(SCRIPT.parent / "no-such-python"))
    assert reason
