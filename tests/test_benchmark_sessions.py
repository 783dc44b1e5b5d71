"""Smoke test of ``benchmarks/sessions.py``: with a few sessions it runs, prints
one JSON object with the figures the issue names, and its counts agree.

No timing or memory figure is asserted (a benchmark is not a test; at this
size they are noise), only that they exist, are finite numbers, and that the
counts the benchmark checks itself are consistent: one session per peer on the
hub, both ends in the process, one heartbeat packet each way per session in a
steady round.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from script_loader import load_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "sessions.py"
SESSIONS = 40

REQUIRED = (
    "rss_bytes_per_session",
    "idle_tick_us_1k",
    "idle_tick_us_100k",
    "heartbeat_round_s_100k",
)


def _load() -> ModuleType:
    return load_script(SCRIPT, "l2session_benchmark_sessions")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_small_run_reports_the_issue_figures_with_consistent_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench = _load()
    assert bench.main(["--sessions", str(SESSIONS), "--batch", "16", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)  # the whole of stdout is one JSON value
    assert isinstance(figures, dict)

    assert figures["sessions"] == SESSIONS
    for key in REQUIRED:
        assert _number(figures[key]), (key, figures[key])
    for key in ("idle_tick_us_1k", "idle_tick_us_100k", "heartbeat_round_s_100k"):
        assert figures[key] > 0, key

    # Both ends of every session live in the process.
    assert figures["session_objects"] == 2 * SESSIONS
    assert figures["idle_tick_sessions"] == {"1k": SESSIONS, "100k": SESSIONS}
    # A steady round: one heartbeat out and one answer back per session; the
    # first round also carries the hub's delayed ACK of the peer's SYNC.
    assert figures["heartbeat_packets"] == {
        "steady_round": {"from_hub": SESSIONS, "to_hub": SESSIONS},
        "first_round": {"from_hub": 2 * SESSIONS, "to_hub": SESSIONS},
    }
    assert len(figures["heartbeat_rounds_cpu_s"]) == 2
    assert figures["heartbeat_round_hub_s"] >= 0
    assert _number(figures["heartbeat_floor_s"])
    assert figures["rss_delta_bytes"] == (
        figures["rss_established_bytes"] - figures["rss_before_bytes"]
    )

    breakdown = figures["memory_breakdown"]
    assert breakdown["sampled_sessions_per_side"] == SESSIONS
    assert breakdown["hub_session_total"] == pytest.approx(
        sum(breakdown["hub_session"].values()), abs=len(breakdown["hub_session"])
    )
    assert breakdown["live_python_bytes_per_session_object"] > 0
    assert set(figures["targets"]) == {
        "rss_bytes_per_session",
        "idle_tick_ratio",
        "heartbeat_round_s_100k",
    }
    assert all(isinstance(target["met"], bool) for target in figures["targets"].values())
