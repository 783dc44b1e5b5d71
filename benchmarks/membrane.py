"""Membrane benchmark: a 1,000-grant policy against a 10,000-DID trust graph.

What one run measures (``python benchmarks/membrane.py [--json] [--quick]``):

The set-up (seeded, so every run builds the same world).  10,000 real
identities (``--quick``: 300); DID 0 is the node itself, the root of the
trust graph.  The root trusts 50 DIDs directly (depth 1); each of those
vouches for its share of 2,000 depth-2 DIDs and distrusts about eight far
ones; each depth-2 DID vouches for its share of the far DIDs and for one
random DID (a tenth of these negative); every far DID states five opinions
of random DIDs (15 % negative), most of them beyond the root's 3-hop
horizon.  About 52,000 edges in all, each a signed :class:`TrustStatement`
dated 1 to 60 days back, added with ``TrustGraph.add`` (which verifies it)
under the default :class:`TrustConfig` (3 hops, half-life 180 days,
10,000 DIDs at most: the graph is full).  ``graph_build_s`` is the whole of
it (identities, signing, adding; ``graph_add_us`` is the node's part per
statement); ``graph_nodes`` and ``graph_edges`` what the graph then holds.

The policy is TOML, 1,000 grants in ten templates over ``feed://``,
``chapter://`` and ``service://`` resources two to four segments deep:
public feeds (``"*"``, half with an ``expires`` in 2099), per-channel
writers (DID lists, ``min_trust``), chapter reads (``min_trust``),
proposals (``"*"`` with ``member_of`` the city), admin (``group:staff``,
any action), events (``group:CITY``), partner services (``group:partners``,
a large hourly ``quota``, ``min_trust``), premium services (DID lists, 100
units an hour), status endpoints (``"*"``), versioned APIs (a group and
DIDs, a daily quota, ``min_trust``, ``expires``); 22 groups (20 cities of
100 members, staff, partners), a policy-wide ``min_trust`` of 0.45 and
``max_units``.  ``policy_load_ms``: ``parse_policy`` of that text (median
of at least three parses), ``policy_bytes`` its size.

The request stream: 50,000 (``--quick``: 3,000) requests from the whole
population, built beforehand: public reads, writers writing, members
voting and RSVPing, partners calling services, a few heavy callers
exhausting a premium quota, status polls, requests no grant covers,
outsiders writing to a chapter, distrusted DIDs reading.  ``mix`` gives how
the decisions end (a first, untimed pass): about 84 % allowed, the rest
refused at the trust step, for want of a grant, by a condition, or by a
quota.  Virtual time starts at 2027-01-15 and advances 10 µs per decision
(fixed, so a run is repeatable and no score goes stale by time decay).

``decisions_per_s`` (target >= 50,000; ``decisions_target_met``)
    ``Membrane.decide`` over the stream with scores warm (every DID scored
    once beforehand, as a running node's are), a fresh ``QuotaLedger``, and
    every decision recorded as an ``AccessRecord`` in the audit log of a
    fresh :class:`SqliteStore` (WAL, ``synchronous=normal``, its default),
    committed after every 1,000 decisions (group commit, as a node commits
    once per burst) -- the honest end-to-end figure, commits included.
``decisions_per_s_no_audit``
    The same without an audit sink.
``raw_decide_per_s`` / ``decisions_ratio``
    The baseline: ``decision.decide`` alone over the same stream, each
    peer's score looked up before the clock starts; ratio = decisions_per_s
    / raw_decide_per_s.  The three runs must allow exactly as many
    requests (checked).
``trust_score_cached_per_s`` / ``trust_score_cold_per_s``
    ``TrustGraph.score`` over the stream's peers with the cache warm; and
    every DID scored once right after a root edge changed (tables rebuilt,
    cache empty: what each score costs after such a change).
``decisions_per_s_during_edge_churn`` / ``churn_ratio``
    ``decisions_per_s`` (audit included) with one trust statement added by
    ``Membrane.add_trust`` after every 100 decisions (verified, and kept in
    the store as a node keeps them).  Statements are signed beforehand (the
    issuer's cost, not the node's).  About 1 % come from the root and 4 %
    from depth-1 DIDs (re-weighting an edge: the forward tables are rebuilt
    and every cached score dropped); the rest from depth-2 and far DIDs (a
    new opinion or a revised one: one cached score dropped).  This is where
    "trust updated incrementally when edges change" shows;
    ``churn_statements`` counts them, ratio = churn / decisions_per_s.
``edge_update_us`` / ``statement_verify_us`` / ``edge_update_key_misses``
    A far issuer's new or revised edge: ``TrustGraph.add`` plus the next
    ``score`` of its subject, median.  Beside it, ``verify()`` of the same
    statement right afterwards (the Ed25519 check alone, issuer key
    validated): the floor of any update.  ``edge_update_key_misses`` is the
    share of those adds that had to validate the issuer's key anew (the key
    cache holds fewer keys than a full graph has issuers).
``root_edge_update_ms``
    The root re-weighting an edge: ``add`` plus the next ``score`` (which
    rebuilds the forward tables), median.
``audit_append_per_s`` / ``raw_sqlite_commit_per_s`` / ``audit_append_ratio``
    Durable appends: ``append_audit`` then ``commit()`` for each record
    (each durable against a crash of the process when it returns), into a
    fresh store.  The baseline: the very rows the store writes (encoded and
    hashed beforehand) into a table of the same shape in a plain SQLite
    file with the store's pragmas (WAL, ``synchronous=NORMAL``, no
    automatic checkpoint), ``BEGIN IMMEDIATE`` + ``INSERT`` + ``COMMIT``
    each.  ``audit_append_fsync_per_s`` / ``raw_sqlite_commit_fsync_per_s``:
    the same with ``synchronous=FULL`` (an fsync per commit: durable
    against power loss), fewer records.
``audit_append_batched_per_s`` / ``raw_sqlite_batched_per_s`` / ``audit_batched_ratio``
    The same with 1,000 appends per commit (``executemany`` for the raw
    baseline).
``audit_verify_per_s``
    Entries per second of ``verify_audit()`` over the 50,000 entries the
    ``decisions_per_s`` run wrote (checked intact and complete).
``decisions_per_s_by_round``
    The headline figure of each round, to show the spread.

Every figure is the median over ``--repeat`` rounds (5; ``--quick``: 2),
each round measuring every figure once in the same order, so that machine
noise hits figure and baseline alike; per-sample figures (edge updates)
are the median of all samples.  ``time.perf_counter`` around each run; a
full garbage collection before it, the collector left on inside (a node
runs with it).  The SQLite files live in a fresh temporary directory per
round (``--dir`` to choose where).  The exit code is 0 whether or not the
target is met.

The code is in three modules: this script (configuration, the rounds,
medians and output), :mod:`benchmarks._membrane_scenarios` (the graph, the
policy text and the request stream it builds) and
:mod:`benchmarks._membrane_runs` (each timed run and its baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from l2session.core.link.envelope import AccessRecord
from l2session.membrane import audit, decision
from l2session.membrane.membrane import Membrane
from l2session.membrane.policy import MembranePolicy
from l2session.membrane.policy_file import parse_policy
from l2session.membrane.quota import QuotaLedger
from l2session.store.sqlite import SqliteStore

# Run as a script (``python benchmarks/membrane.py``), the repository root is
# not on the path; the scenario builders and the timed runs are its modules.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._membrane_runs import (
    EdgeTimes,
    Run,
    churn_decide,
    collected,
    cycled,
    edge_updates,
    membrane_decide,
    raw_commits,
    raw_decide,
    score_cached,
    store_appends,
    verify_rate,
)
from benchmarks._membrane_scenarios import (
    CHURN_EVERY,
    COMMIT_EVERY,
    SEED,
    World,
    build_world,
    churn_statements,
    in_chunks,
    policy_text,
    request_stream,
    warm,
)

# Re-exported: tests/test_benchmark_membrane.py reads bench.T0.
from benchmarks._membrane_scenarios import T0 as T0

TARGETS: Final = {"decisions_per_s": (">=", 50_000.0)}


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    #: DIDs in the trust graph, the root included.
    nodes: int
    grants: int
    #: Decisions per timed run.
    decisions: int
    repeat: int
    #: Audit appends per run committed one by one (synchronous=NORMAL / FULL).
    appends: int
    fsync_appends: int
    #: Audit appends per run committed 1,000 at a time.
    batched_appends: int
    #: Trust statements timed per round, from far issuers and from the root.
    edge_samples: int
    root_samples: int


DEFAULT: Final = Config(
    name="default",
    nodes=10_000,
    grants=1_000,
    decisions=50_000,
    repeat=5,
    appends=2_000,
    fsync_appends=100,
    batched_appends=20_000,
    edge_samples=100,
    root_samples=5,
)
QUICK: Final = Config(
    name="quick",
    nodes=300,
    grants=100,
    decisions=3_000,
    repeat=2,
    appends=100,
    fsync_appends=5,
    batched_appends=2_000,
    edge_samples=10,
    root_samples=2,
)


# ==========================================================================
# The run


def _verdicts(
    policy: MembranePolicy, world: World, stream: list[Any]
) -> tuple[Counter[str], list[AccessRecord]]:
    """One untimed pass (it also warms everything up): the verdict mix and
    the access records the audit runs append."""
    records: list[AccessRecord] = []
    membrane = Membrane(policy, world.graph, audit=records.append, ledger=QuotaLedger())
    mix: Counter[str] = Counter()
    for peer, request, now in stream:
        verdict = membrane.decide(peer, request, now)
        step = verdict.step
        if step == decision.CONSTRAINT and "quota" in verdict.reason:
            step = "quota"
        mix[step] += 1
    return mix, records


def measure(config: Config, repeat: int, directory: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    rng = random.Random(SEED)
    world = build_world(config.nodes, rng)
    shape = policy_text(world, config.grants, rng)
    load_ms: list[float] = []
    policy = parse_policy(shape.text, "membrane-bench.toml")
    for _ in range(max(3, repeat)):
        with collected():
            t = time.perf_counter()
            parse_policy(shape.text, "membrane-bench.toml")
            load_ms.append(1e3 * (time.perf_counter() - t))
    if len(policy.grants) != config.grants:
        raise RuntimeError(f"the policy holds {len(policy.grants)} grants")
    stream = request_stream(world, shape, config.decisions, rng)
    chunks = in_chunks(stream, COMMIT_EVERY)
    warm(world)
    mix, records = _verdicts(policy, world, stream)
    single = cycled(records, config.appends)
    fsync = cycled(records, config.fsync_appends)
    batched = cycled(records, config.batched_appends)

    def rows(of: list[AccessRecord]) -> list[tuple[int, float, str, str, str, bytes]]:
        return [
            (e.id, e.at, e.kind, e.subject, e.body, e.digest)
            for e in audit.chain(of, 0, audit.GENESIS)
        ]

    raw_single, raw_fsync, raw_batched = rows(single), rows(fsync), rows(batched)

    runs: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        runs.setdefault(key, []).append(value)

    def check(name: str, run: Run, expected: int | None) -> Run:
        if run.count != config.decisions or (expected is not None and run.allowed != expected):
            raise RuntimeError(f"{name}: {run.allowed} of {run.count} allowed, expected {expected}")
        return run

    churn: Counter[str] = Counter()
    edge_times = EdgeTimes()
    far_per_round = max(1, config.edge_samples // repeat)
    root_per_round = max(1, config.root_samples // repeat)
    depth1 = {world.dids[i] for i in world.depth1}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="l2session-membrane-", dir=directory) as tmp:
            here = Path(tmp)
            warm(world)
            raw = check("raw", raw_decide(policy, world, chunks), None)
            add("raw_decide_per_s", raw.rate)
            expected = raw.allowed  # the same scores: the same verdicts
            add("trust_score_cached_per_s", score_cached(world, chunks).rate)
            no_audit = membrane_decide(policy, world, chunks, None)
            add("decisions_per_s_no_audit", check("no audit", no_audit, expected).rate)
            with SqliteStore.open(here / "decisions.db") as store:
                headline = membrane_decide(policy, world, chunks, store)
                add("decisions_per_s", check("audit", headline, expected).rate)
                add("audit_verify_per_s", verify_rate(store, config.decisions))
            statements = churn_statements(world, config.decisions // CHURN_EVERY, rng)
            churn.update(
                "root" if st.issuer == world.root else "depth1" if st.issuer in depth1 else "far"
                for st in statements
            )
            with SqliteStore.open(here / "churn.db") as store:
                run = churn_decide(policy, world, chunks, store, statements)
                add("decisions_per_s_during_edge_churn", check("churn", run, None).rate)
            times = edge_updates(world, far_per_round, root_per_round, rng)
            edge_times.far_us += times.far_us
            edge_times.verify_us += times.verify_us
            edge_times.root_ms += times.root_ms
            edge_times.cold_per_s += times.cold_per_s
            edge_times.key_misses += times.key_misses
            for key, path, batch, sync, data in (
                ("audit_append_per_s", "single.db", 1, "normal", single),
                ("audit_append_fsync_per_s", "fsync.db", 1, "full", fsync),
                ("audit_append_batched_per_s", "batched.db", COMMIT_EVERY, "normal", batched),
            ):
                add(key, store_appends(here / path, data, batch, sync).rate)
            for key, path, batch, sync, table in (
                ("raw_sqlite_commit_per_s", "raw-single.db", 1, "normal", raw_single),
                ("raw_sqlite_commit_fsync_per_s", "raw-fsync.db", 1, "full", raw_fsync),
                ("raw_sqlite_batched_per_s", "raw-batched.db", COMMIT_EVERY, "normal", raw_batched),
            ):
                add(key, raw_commits(here / path, table, batch, sync).rate)

    fig = {key: statistics.median(values) for key, values in runs.items()}
    out: dict[str, Any] = {}
    for key in (
        "decisions_per_s",
        "decisions_per_s_no_audit",
        "raw_decide_per_s",
        "trust_score_cached_per_s",
        "decisions_per_s_during_edge_churn",
    ):
        out[key] = round(fig[key])
    out["decisions_per_s_by_round"] = [round(rate) for rate in runs["decisions_per_s"]]
    out["trust_score_cold_per_s"] = round(statistics.median(edge_times.cold_per_s))
    out["decisions_ratio"] = round(fig["decisions_per_s"] / fig["raw_decide_per_s"], 3)
    out["churn_ratio"] = round(fig["decisions_per_s_during_edge_churn"] / fig["decisions_per_s"], 3)
    out["edge_update_us"] = round(statistics.median(edge_times.far_us), 1)
    out["statement_verify_us"] = round(statistics.median(edge_times.verify_us), 1)
    out["edge_update_key_misses"] = round(edge_times.key_misses / len(edge_times.far_us), 3)
    out["root_edge_update_ms"] = round(statistics.median(edge_times.root_ms), 3)
    for key in AUDIT_KEYS:
        out[key] = round(fig[key])
    for ratio, (key, raw_key) in AUDIT_RATIOS.items():
        out[ratio] = round(fig[key] / fig[raw_key], 3)
    out["decisions_target_met"] = out["decisions_per_s"] >= TARGETS["decisions_per_s"][1]
    out["targets"] = {
        key: {"target": f"{op} {bound:g}", "met": _met(op, float(out[key]), bound)}
        for key, (op, bound) in TARGETS.items()
    }
    out["policy_load_ms"] = round(statistics.median(load_ms), 2)
    out["policy_bytes"] = len(shape.text.encode())
    out["policy_grants"] = len(policy.grants)
    out["policy_groups"] = len(policy.groups)
    out["graph_nodes"] = world.nodes_built
    out["graph_edges"] = world.edges_built
    out["graph_build_s"] = round(world.build_s, 2)
    out["graph_identities_s"] = round(world.identities_s, 2)
    out["graph_sign_s"] = round(world.sign_s, 2)
    out["graph_add_us"] = round(1e6 * world.add_s / world.edges_built, 1)
    out["graph_distrusted"] = len(world.distrusted)
    total = sum(mix.values())
    out["mix"] = {step: round(mix[step] / total, 4) for step in MIX_STEPS}
    out["churn_statements"] = {kind: churn[kind] for kind in ("root", "depth1", "far")}
    out.update(
        mode=config.name,
        decisions=config.decisions,
        repeat=repeat,
        commit_every=COMMIT_EVERY,
        churn_every=CHURN_EVERY,
        synchronous="normal",
        python=platform.python_version(),
        sqlite=sqlite3.sqlite_version,
        cpus=os.cpu_count(),
    )
    out["elapsed_s"] = round(time.perf_counter() - started, 1)
    return out


AUDIT_KEYS: Final = (
    "audit_append_per_s",
    "raw_sqlite_commit_per_s",
    "audit_append_fsync_per_s",
    "raw_sqlite_commit_fsync_per_s",
    "audit_append_batched_per_s",
    "raw_sqlite_batched_per_s",
    "audit_verify_per_s",
)
AUDIT_RATIOS: Final = {
    "audit_append_ratio": ("audit_append_per_s", "raw_sqlite_commit_per_s"),
    "audit_append_fsync_ratio": ("audit_append_fsync_per_s", "raw_sqlite_commit_fsync_per_s"),
    "audit_batched_ratio": ("audit_append_batched_per_s", "raw_sqlite_batched_per_s"),
}
#: The verdict mix: how each decision ended (``quota``: a constraint step
#: that refused for a quota).
MIX_STEPS: Final = ("allowed", "trust", "grant", "constraint", "quota")


def _met(op: str, value: float, bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound


# ==========================================================================
# Output


def _table(figures: dict[str, Any]) -> str:
    def row(key: str, unit: str = "", baseline: str = "", ratio: str = "") -> str:
        value = figures[key]
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        text = f"  {key:<36}{shown + (' ' + unit if unit else ''):>16}"
        if baseline:
            text += f"   vs {baseline} = {figures[baseline]:,}"
            if ratio:
                text += f" (ratio {figures[ratio]:g})"
        return text

    target = figures["targets"]["decisions_per_s"]
    lines = [
        f"l2session membrane benchmark ({figures['mode']} mode, {figures['elapsed_s']} s; "
        f"Python {figures['python']}, SQLite {figures['sqlite']}, {figures['cpus']} CPUs)",
        f"  policy: {figures['policy_grants']:,} grants, {figures['policy_groups']} groups, "
        f"{figures['policy_bytes']:,} bytes, loaded in {figures['policy_load_ms']:g} ms",
        f"  trust graph: {figures['graph_nodes']:,} DIDs, {figures['graph_edges']:,} edges, "
        f"built in {figures['graph_build_s']:g} s ({figures['graph_add_us']:g} µs per add); "
        f"{figures['graph_distrusted']} DIDs below the policy's min_trust",
        "  verdicts: "
        + ", ".join(f"{step} {100 * share:.1f}%" for step, share in figures["mix"].items()),
        "",
        "Decisions (median of the rounds):",
        row("decisions_per_s", "/s", "raw_decide_per_s", "decisions_ratio"),
        "  decisions_per_s by round: "
        + ", ".join(f"{rate:,}" for rate in figures["decisions_per_s_by_round"]),
        row("decisions_per_s_no_audit", "/s"),
        row("decisions_per_s_during_edge_churn", "/s", "decisions_per_s", "churn_ratio"),
        row("trust_score_cached_per_s", "/s"),
        row("trust_score_cold_per_s", "/s"),
        f"  target: decisions_per_s {target['target']}: {'met' if target['met'] else 'MISSED'}",
        "",
        "Trust updates:",
        row("edge_update_us", "µs", "statement_verify_us"),
        row("edge_update_key_misses"),
        row("root_edge_update_ms", "ms"),
        "  churn statements: "
        + ", ".join(f"{kind} {n}" for kind, n in figures["churn_statements"].items()),
        "",
        f"Audit log (SqliteStore, synchronous={figures['synchronous']} unless fsync):",
    ]
    for ratio, (key, raw_key) in AUDIT_RATIOS.items():
        lines.append(row(key, "/s", raw_key, ratio))
    lines.append(row("audit_verify_per_s", "/s"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--quick", action="store_true", help="a small graph and policy (smoke test)"
    )
    parser.add_argument("--repeat", type=int, default=None, help="rounds, median (5; quick: 2)")
    parser.add_argument(
        "--dir", default=None, help="where the SQLite files go (default: the temp directory)"
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else DEFAULT
    repeat = args.repeat if args.repeat is not None else config.repeat
    if repeat < 1:
        parser.error("--repeat must be positive")
    figures = measure(config, repeat, args.dir)
    print(json.dumps(figures) if args.json else _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
