"""Smoke test of ``benchmarks/federation.py``: with a few messages it runs
both measurements against a real relay process and prints one JSON object
with every figure the issue names.  No timing is asserted; the ratio must
be the quotient of the two rates beside it."""

from __future__ import annotations

import math
from pathlib import Path

from script_loader import positive, run_json

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "federation.py"


def test_the_federation_benchmark_reports_every_figure() -> None:
    figures = run_json(SCRIPT, "--json", "--messages", "20", timeout=180)
    for name in (
        "bridge_msgs_per_s",
        "bridge_p50_ms",
        "nostr_sdk_msgs_per_s",
        "nostr_sdk_p50_ms",
        "ratio",
    ):
        assert positive(figures[name]), name
    assert figures["messages"] == 20
    expected = figures["bridge_msgs_per_s"] / figures["nostr_sdk_msgs_per_s"]
    assert math.isclose(figures["ratio"], expected, rel_tol=0.02)
