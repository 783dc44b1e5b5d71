"""Smoke test of ``benchmarks/membrane.py``: in its quick configuration it
builds a small trust graph and policy, runs every measurement, and prints
one JSON object with every figure the issue names.

No timing figure is asserted (a benchmark is not a test; at this size they
are noise), only that each exists and is a positive finite number, that
the ratios are the quotients of the figures beside them, that the graph
and the policy have the configured sizes, and that the counts the
benchmark reports agree with its configuration.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from script_loader import load_script, positive, run_json

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "membrane.py"

RATES = (
    "decisions_per_s",
    "decisions_per_s_no_audit",
    "raw_decide_per_s",
    "trust_score_cached_per_s",
    "trust_score_cold_per_s",
    "decisions_per_s_during_edge_churn",
    "audit_append_per_s",
    "audit_append_fsync_per_s",
    "audit_append_batched_per_s",
    "raw_sqlite_commit_per_s",
    "raw_sqlite_commit_fsync_per_s",
    "raw_sqlite_batched_per_s",
    "audit_verify_per_s",
)
TIMES = ("edge_update_us", "statement_verify_us", "root_edge_update_ms", "policy_load_ms")
RATIOS = {
    "decisions_ratio": ("decisions_per_s", "raw_decide_per_s"),
    "churn_ratio": ("decisions_per_s_during_edge_churn", "decisions_per_s"),
    "audit_append_ratio": ("audit_append_per_s", "raw_sqlite_commit_per_s"),
    "audit_append_fsync_ratio": ("audit_append_fsync_per_s", "raw_sqlite_commit_fsync_per_s"),
    "audit_batched_ratio": ("audit_append_batched_per_s", "raw_sqlite_batched_per_s"),
}


def _load() -> ModuleType:
    return load_script(SCRIPT, "l2session_benchmark_membrane")


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    """One quick standalone run (a few seconds), shared by the tests below."""
    return run_json(SCRIPT, "--quick")


def test_every_figure_is_reported_as_a_positive_number(figures: dict[str, Any]) -> None:
    for key in (*RATES, *TIMES, *RATIOS, "graph_build_s", "graph_add_us", "policy_bytes"):
        assert positive(figures[key]), (key, figures.get(key))
    for ratio, (key, baseline) in RATIOS.items():
        assert figures[ratio] == pytest.approx(figures[key] / figures[baseline], rel=0.01), ratio
    assert 0 <= figures["edge_update_key_misses"] <= 1
    by_round = figures["decisions_per_s_by_round"]
    assert len(by_round) == figures["repeat"]
    assert all(positive(rate) for rate in by_round)


def test_the_target_is_reported_not_asserted(figures: dict[str, Any]) -> None:
    met = figures["decisions_target_met"]
    assert isinstance(met, bool)
    assert met == (figures["decisions_per_s"] >= 50_000)
    assert figures["targets"] == {"decisions_per_s": {"target": ">= 50000", "met": met}}


def test_the_world_has_the_configured_size(figures: dict[str, Any]) -> None:
    config = _load().QUICK
    assert figures["mode"] == "quick"
    assert figures["graph_nodes"] == config.nodes
    # A few edges per DID, and never more than the graph's bound per issuer.
    assert 3 * config.nodes <= figures["graph_edges"] <= 100 * config.nodes
    assert figures["policy_grants"] == config.grants
    assert figures["policy_groups"] >= 4  # two cities at least, staff, partners
    assert figures["decisions"] == config.decisions
    assert figures["repeat"] == config.repeat
    assert figures["commit_every"] == 1_000
    assert figures["synchronous"] == "normal"


def test_the_mix_and_the_churn_add_up(figures: dict[str, Any]) -> None:
    mix = figures["mix"]
    assert set(mix) == {"allowed", "trust", "grant", "constraint", "quota"}
    assert sum(mix.values()) == pytest.approx(1.0, abs=1e-3)
    assert mix["allowed"] > 0.5  # most requests are allowed ...
    for refused in ("trust", "grant", "constraint"):  # ... not all
        assert mix[refused] > 0, refused
    churn = figures["churn_statements"]
    assert set(churn) == {"root", "depth1", "far"}
    per_round = figures["decisions"] // figures["churn_every"]
    assert sum(churn.values()) == per_round * figures["repeat"]
    assert churn["far"] > churn["root"] + churn["depth1"]


def test_a_tiny_world_is_built_as_described() -> None:
    """The graph builder alone, on 60 DIDs: every DID holds an edge, the
    root trusts only depth-1 DIDs, and every score is in [0, 1]."""
    bench = _load()
    world = bench.build_world(60, random.Random(1))
    graph = world.graph
    assert graph.node_count == 60
    assert len(graph) == len(world.edges)
    root_edges = {statement.subject for statement in graph.edges_of(world.root)}
    assert root_edges == {world.dids[i] for i in world.depth1}
    assert graph.score(world.root, bench.T0) == 1.0
    assert all(0.0 <= graph.score(did, bench.T0) <= 1.0 for did in world.dids)
