"""Smoke test of ``benchmarks/network.py`` and ``l2session bench``: with a
few messages they run real nodes on loopback, print one JSON object, and
every figure the issue names is a positive finite number.

No timing figure is asserted (a benchmark is not a test; at this size they
are noise), only that they exist and are sane, that the ratios are the
quotients of the figures beside them, and that the targets are reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from l2session.cli import bench
from script_loader import load_script, positive

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "network.py"
MESSAGES = 200

SESSION_KEYS = (
    "establish_tcp_ms",
    "establish_quic_ms",
    "resume_tcp_ms",
    "tcp_1k_msgs_per_s",
    "quic_1k_msgs_per_s",
    "rtt_64_us",
)
REQUIRED = (
    *SESSION_KEYS,
    "raw_tcp_connect_ms",
    "raw_quic_handshake_ms",
    "raw_tcp_1k_msgs_per_s",
    "tcp_ratio",
    "raw_quic_1k_msgs_per_s",
    "quic_ratio",
    "raw_rtt_64_us",
    "rtt_ratio",
)


def _load() -> ModuleType:
    return load_script(SCRIPT, "l2session_benchmark_network")


def test_small_run_reports_every_figure_beside_its_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    network = _load()
    argv = ["--messages", str(MESSAGES), "--repeat", "1", "--connects", "2", "--rounds", "20"]
    assert network.main([*argv, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)  # the whole of stdout is one JSON value
    assert isinstance(figures, dict)

    for key in REQUIRED:
        assert positive(figures[key]), (key, figures.get(key))
    for path in ("tcp", "quic"):
        ratio = figures[f"{path}_1k_msgs_per_s"] / figures[f"raw_{path}_1k_msgs_per_s"]
        assert figures[f"{path}_ratio"] == pytest.approx(ratio, rel=0.01)
        cpu = figures[f"raw_{path}_cpu_us_per_msg"] / figures[f"{path}_cpu_us_per_msg"]
        assert figures[f"{path}_cpu_ratio"] == pytest.approx(cpu, rel=0.01)
    assert figures["rtt_ratio"] == pytest.approx(
        figures["rtt_64_us"] / figures["raw_rtt_64_us"], rel=0.01
    )
    assert positive(figures["fdatasync_ms"])
    assert figures["resume_tcp_floor_ms"] == pytest.approx(
        figures["resume_tcp_mem_ms"] + figures["fdatasync_ms"], rel=0.01
    )
    assert figures["messages"] == MESSAGES
    assert figures["repeat"] == 1
    assert set(figures["targets"]) == {"resume_tcp_ms", "tcp_ratio", "quic_ratio", "rtt_ratio"}
    assert all(isinstance(target["met"], bool) for target in figures["targets"].values())


def test_the_cli_bench_prints_the_session_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(messages=MESSAGES, as_json=True) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in SESSION_KEYS:
        assert positive(figures[key]), (key, figures.get(key))
    assert figures["messages"] == MESSAGES


def test_a_resumption_is_checked_to_be_one() -> None:
    """Each resumption sample is a session that came back by RESUME (the
    benchmark refuses a new PQXDH), timed as a positive interval."""
    samples = bench.run(bench.resume_samples(2, durable=False))
    assert len(samples) == 2
    assert all(s.seconds > 0 and s.core_seconds > 0 for s in samples)
