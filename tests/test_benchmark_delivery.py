"""Smoke test of ``benchmarks/delivery.py``: with a few messages it runs
standalone, prints one JSON object, and reports both durability modes side
by side with their fsyncs per 1,000 messages.

No timing figure is asserted (at this size they are noise), only that they
exist and are sane, that the ratios are the quotients of the figures beside
them, and that the barrier fsyncs happen in one mode and not the other.
"""

from __future__ import annotations

from pathlib import Path

from script_loader import positive, run_json

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "delivery.py"


def test_delivery_benchmark_reports_both_durability_modes() -> None:
    figures = run_json(SCRIPT, "--messages", "3000", "--repeat", "1", timeout=300)
    for key in (
        "mem_msgs_per_s_1k",
        "durable_msgs_per_s_1k",
        "durable_ratio",
        "durable_process_msgs_per_s_1k",
        "durable_process_ratio",
        "power_vs_process",
        "fsyncs_per_1k_msgs",
        "durable_cpu_ratio",
        "durable_process_cpu_ratio",
    ):
        assert positive(figures[key]), key
    assert figures["fsyncs_per_1k_msgs_process"] == 0
    quotient = figures["durable_msgs_per_s_1k"] / figures["durable_process_msgs_per_s_1k"]
    assert abs(figures["power_vs_process"] - quotient) < 0.01  # rates are rounded
    # Group commit: far fewer fsyncs than messages.
    assert figures["fsyncs_per_1k_msgs"] < 100
