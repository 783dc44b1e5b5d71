"""Smoke test of ``benchmarks/quic_memory.py``: a tiny standalone run (20
qh3 connections handshaken in memory, each variant) prints one JSON object
with the per-connection figures.  No figure's size is asserted beyond
sanity: a benchmark is not a test."""

from __future__ import annotations

from pathlib import Path

from script_loader import run_json

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "quic_memory.py"


def test_a_tiny_run_reports_where_the_memory_goes() -> None:
    figures = run_json(SCRIPT, "--n", "20", timeout=300)
    assert set(figures) == {"default", "small_windows", "no_tls"}
    for variant, run in figures.items():
        assert run["n"] == 20, variant
        assert run["python_kb_per_conn"] > 0, variant  # qh3 objects per connection
        assert run["native_kb_per_conn"] == round(
            run["rss_kb_per_conn"] - run["python_kb_per_conn"], 2
        ), variant
        assert run["top_python"], variant
        assert all(site["bytes_per_conn"] > 0 for site in run["top_python"][:3]), variant
