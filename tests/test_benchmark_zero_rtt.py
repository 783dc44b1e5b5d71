"""Smoke test of ``benchmarks/zero_rtt.py``: on a tiny run it restarts real
nodes on loopback, prints one JSON object, and every figure is a positive
finite number; each 0-RTT sample is checked (inside the benchmark) to have
come in a 0-RTT flight and each 1-RTT sample not.  No timing is asserted,
except on the simulation, whose time is virtual (one one-way delay against
three)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from script_loader import load_script, positive

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "zero_rtt.py"


def test_small_run_reports_both_modes_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    module = load_script(SCRIPT, "l2session_benchmark_zero_rtt")
    assert module.main(["--samples", "2", "--repeat", "1", "--delay-ms", "2", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    for path in ("tcp", "quic"):
        zero = figures[f"zero_rtt_first_message_{path}_ms"]
        one = figures[f"one_rtt_first_message_{path}_ms"]
        assert positive(zero)
        assert positive(one)
        assert figures[f"{path}_ratio"] == pytest.approx(zero / one, rel=0.01)
    zero = figures["zero_rtt_first_message_delayed_ms"]
    one = figures["one_rtt_first_message_delayed_ms"]
    assert positive(zero)
    assert positive(one)
    assert figures["delayed_ratio"] == pytest.approx(zero / one, rel=0.01)
    assert figures["delay_ms"] == 2
    assert figures["zero_rtt_first_message_ms"] == figures["zero_rtt_first_message_tcp_ms"]
    one_way = figures["sim_one_way_ms"]
    assert figures["sim_zero_rtt_first_message_ms"] == pytest.approx(one_way)
    assert figures["sim_one_rtt_first_message_ms"] == pytest.approx(3 * one_way)
    assert figures["samples"] == 2
