"""Smoke test of ``benchmarks/crypto.py``: it runs, prints one JSON object with
the figures the issue names, and counts the handshake's primitive operations.

No timing is asserted here (a benchmark is not a test); only that the figures
exist and are sane numbers, and the operation counts, which pin the cost of
the protocol: a change to PQXDH that adds or drops an asymmetric operation
must update them on purpose.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from script_loader import run_json

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "crypto.py"

REQUIRED = (
    "handshake_floor_us",
    "handshake_us",
    "handshake_floor_ratio",
    "ratchet_us_1k",
    "doubleratchet_us_1k",
    "ratchet_speedup",
)

#: The asymmetric operations of one full handshake (with a one-time prekey),
#: read off crypto/pqxdh.py and crypto/prekey_records.py:
#:   initiator start:   verify signed prekey set + one-time prekey (2 verify),
#:                      EK_A (x25519_generate), EKEM_A (mlkem_generate),
#:                      DH1..DH4 (4 x25519), CT1 (mlkem_encapsulate), Sig_A (sign)
#:   responder INIT:    Sig_A (verify), DH1..DH4 (4 x25519), SS1 (decapsulate),
#:                      EK_B (x25519_generate), CT2 (encapsulate), DH5 (x25519), Sig_B (sign)
#:   initiator RESPONSE: Sig_B (verify), DH5 (x25519), SS2 (decapsulate)
#:   responder FINISH:  MAC comparison only
EXPECTED_OPS = {
    "x25519_generate": 2,
    "x25519": 10,
    "mlkem_generate": 1,
    "mlkem_encapsulate": 2,
    "mlkem_decapsulate": 2,
    "ed25519_sign": 2,
    "ed25519_verify": 4,
}


def _run_quick() -> dict[str, Any]:
    return run_json(SCRIPT, "--quick")


def test_quick_run_reports_the_issue_figures_and_the_operation_counts() -> None:
    figures = _run_quick()

    for key in (*REQUIRED, "ratchet_pingpong_us_1k", "doubleratchet_pingpong_us_1k"):
        value = figures[key]
        assert isinstance(value, (int, float)), (key, value)
        assert not isinstance(value, bool), key
        assert math.isfinite(value), (key, value)
        assert value > 0, (key, value)

    assert figures["handshake_ops"] == EXPECTED_OPS
    assert set(figures["op_costs_us"]) == set(EXPECTED_OPS)
    assert all(
        isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0
        for cost in figures["op_costs_us"].values()
    )
    assert set(figures["targets"]) == {
        "handshake_floor_ratio",
        "ratchet_us_1k",
        "ratchet_speedup",
    }
    assert all(isinstance(target["met"], bool) for target in figures["targets"].values())
    assert figures["mode"] == "quick"
    assert figures["doubleratchet"] == "1.3.0"
