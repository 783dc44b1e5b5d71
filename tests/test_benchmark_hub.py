"""Smoke test of ``benchmarks/hub.py``: a tiny standalone run (one hub
process, two peer processes, 30 peers on their own loopback addresses,
both transports, sessions and baselines) prints one JSON object with every
figure the issue names.

No timing figure is asserted (a benchmark is not a test; at this size they
are noise): only that each exists and is sane, and that the counts add up
-- every peer established at its first attempt, every message sent was
delivered, the hub accepted one session per peer.
"""

from __future__ import annotations

from pathlib import Path

from script_loader import run_json

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "hub.py"
PEERS = 30

FIGURES = (
    "establish_per_s",
    "establish_wall_s",
    "rss_per_session_kb",
    "hub_rss_mb",
    "idle_cpu_ms_per_30s",
    "idle_cpu_share",
    "msg_cpu_us",
    "msg_cpu_us_gross",
    "hub_cpu_share_establish",
    "clients_cpu_share_establish",
    "clients_idle_cpu_share",
    "clients_msg_cpu_share",
)


def test_a_tiny_run_reports_every_figure_beside_its_baseline() -> None:
    figures = run_json(
        SCRIPT,
        *("--quick", "--n", str(PEERS), "--idle", "1", "--client-procs", "2"),
        timeout=600,
    )
    assert figures["nofile_limit"] >= 1024
    for transport in ("tcp", "quic"):
        for key in (f"{transport}_{PEERS}", f"raw_{transport}_{PEERS}"):
            run = figures[key]
            assert run["established"] == PEERS, key
            assert run["failed_first_attempts"] == 0, key
            assert run["hub_accepted"] == PEERS, key
            assert run["sent"] == PEERS, key  # one message each in a 10 s window
            assert run["delivered"] == run["sent"], key
            for name in FIGURES:
                value = run[name]
                assert isinstance(value, int | float), (key, name)
                assert value >= 0, (key, name)
        sessions = figures[f"{transport}_{PEERS}"]
        assert sessions["admission"]["admitted"] == 2 * PEERS  # a BUNDLE_REQ and an INIT each
        assert sessions["rejections"] == {}
        assert sessions["failure_reasons"] == {}
        for side in ("hub_stalls_establish", "clients_stalls_establish"):
            assert set(sessions[side]) == {"max_loop_lag_s", "gc_max_pause_s", "gc_total_s"}
    assert figures["tcp_30"]["listen_overflows_establish"] >= 0
