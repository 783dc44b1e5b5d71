"""The timed runs of the membrane benchmark (``benchmarks/membrane.py``):
decisions with and without the audit log, the raw ``decision.decide``
baseline, trust scores, edge updates, and durable audit appends against a
plain SQLite baseline.

Each run takes the world :mod:`benchmarks._membrane_scenarios` built and
returns counts and seconds; ``membrane.py`` repeats them and reports medians.
"""

from __future__ import annotations

import gc
import math
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from benchmarks._membrane_scenarios import (
    CHURN_EVERY,
    T0,
    World,
    in_chunks,
)
from l2session.core.link.envelope import AccessRecord, Request
from l2session.crypto import primitives
from l2session.membrane import decision
from l2session.membrane.membrane import Membrane
from l2session.membrane.policy import MembranePolicy
from l2session.membrane.quota import QuotaLedger
from l2session.membrane.trust_statement import TrustStatement
from l2session.store.sqlite import SqliteStore

# The audit table exactly as the store creates it (store/schema.py, v3).
_AUDIT_TABLE: Final = """CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    digest BLOB NOT NULL
)"""
_INSERT: Final = (
    "INSERT INTO audit_log (id, at, kind, subject, body, digest) VALUES (?, ?, ?, ?, ?, ?)"
)


# ==========================================================================
# Timed runs


@contextmanager
def collected() -> Iterator[None]:
    """A full collection before a timed run; the collector stays on inside
    it, as in a node."""
    gc.collect()
    yield


@dataclass(slots=True)
class Run:
    count: int
    seconds: float
    allowed: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def raw_decide(
    policy: MembranePolicy, world: World, chunks: list[list[tuple[str, Request, float]]]
) -> Run:
    """decision.decide alone, with every peer's score looked up beforehand."""
    score = world.graph.score
    scored = [[(p, r, score(p, now), now) for p, r, now in chunk] for chunk in chunks]
    ledger = QuotaLedger()
    decide = decision.decide
    allowed = 0
    with collected():
        started = time.perf_counter()
        for chunk in scored:
            for peer, request, trust, now in chunk:
                allowed += decide(policy, peer, request, trust, now, ledger).allowed
        seconds = time.perf_counter() - started
    return Run(sum(map(len, chunks)), seconds, allowed)


def membrane_decide(
    policy: MembranePolicy,
    world: World,
    chunks: list[list[tuple[str, Request, float]]],
    store: SqliteStore | None,
) -> Run:
    """Membrane.decide over the stream; with a store, every decision is
    appended to its audit log and committed after each chunk."""
    membrane = Membrane(
        policy,
        world.graph,
        audit=None if store is None else store.append_audit,
        ledger=QuotaLedger(),
    )
    decide = membrane.decide
    commit = store.commit if store is not None else _nothing
    allowed = 0
    with collected():
        started = time.perf_counter()
        for chunk in chunks:
            for peer, request, now in chunk:
                allowed += decide(peer, request, now).allowed
            commit()
        seconds = time.perf_counter() - started
    return Run(sum(map(len, chunks)), seconds, allowed)


def _nothing() -> None:
    return None


def churn_decide(
    policy: MembranePolicy,
    world: World,
    chunks: list[list[tuple[str, Request, float]]],
    store: SqliteStore,
    statements: list[TrustStatement],
) -> Run:
    """:func:`membrane_decide` with the store, plus one trust statement
    added (verified, kept in the store) after every :data:`CHURN_EVERY`
    decisions."""

    def keep(statement: TrustStatement) -> None:
        store.put_trust(statement.issuer, statement.subject, statement.to_bytes())

    membrane = Membrane(
        policy, world.graph, audit=store.append_audit, on_trust=keep, ledger=QuotaLedger()
    )
    decide, add, commit = membrane.decide, membrane.add_trust, store.commit
    parts = [in_chunks(chunk, CHURN_EVERY) for chunk in chunks]
    pending = iter(statements)
    allowed = 0
    with collected():
        started = time.perf_counter()
        for chunk in parts:
            for part in chunk:
                now = T0
                for peer, request, now in part:
                    allowed += decide(peer, request, now).allowed
                add(next(pending), now)
            commit()
        seconds = time.perf_counter() - started
    return Run(sum(map(len, chunks)), seconds, allowed)


def score_cached(world: World, chunks: list[list[tuple[str, Request, float]]]) -> Run:
    score = world.graph.score
    with collected():
        started = time.perf_counter()
        for chunk in chunks:
            for peer, _, now in chunk:
                score(peer, now)
        seconds = time.perf_counter() - started
    return Run(sum(map(len, chunks)), seconds, 0)


@dataclass(slots=True)
class EdgeTimes:
    far_us: list[float] = field(default_factory=list)
    verify_us: list[float] = field(default_factory=list)
    root_ms: list[float] = field(default_factory=list)
    cold_per_s: list[float] = field(default_factory=list)
    #: Far statements whose issuer key had to be validated anew.
    key_misses: int = 0


def edge_updates(world: World, far: int, root: int, rng: random.Random) -> EdgeTimes:
    """Far-issuer statements: verify alone, then add() + score(subject);
    root statements: add() + the next score() (which rebuilds the tables),
    then every DID scored once from the cold cache."""
    graph = world.graph
    times = EdgeTimes()
    issuers = world.depth2 + world.far
    statements: list[TrustStatement] = []
    for _ in range(far):
        issuer = rng.choice(issuers)
        subject = rng.randrange(1, len(world.dids))
        if subject == issuer:
            subject = 1 + issuer % (len(world.dids) - 1)
        old = world.edges.get((issuer, subject))
        weight = round(math.copysign(rng.uniform(0.3, 1.0), old if old is not None else 1.0), 3)
        world.edges[issuer, subject] = weight
        statements.append(
            TrustStatement.sign(
                world.identities[issuer], world.dids[subject], weight, world.next_time()
            )
        )
    now = T0
    misses = primitives.ed25519_public_key.cache_info().misses
    with collected():
        for statement in statements:
            started = time.perf_counter()
            graph.add(statement, now)
            graph.score(statement.subject, now)
            times.far_us.append(1e6 * (time.perf_counter() - started))
            # The signature check alone, the issuer's key now validated.
            started = time.perf_counter()
            statement.verify()
            times.verify_us.append(1e6 * (time.perf_counter() - started))
    times.key_misses += primitives.ed25519_public_key.cache_info().misses - misses
    for _ in range(root):
        subject = rng.choice(world.depth1)
        weight = round(rng.uniform(0.7, 1.0), 3)
        world.edges[0, subject] = weight
        statement = TrustStatement.sign(
            world.identities[0], world.dids[subject], weight, world.next_time()
        )
        probe = world.dids[rng.choice(world.far)]
        with collected():
            started = time.perf_counter()
            graph.add(statement, now)
            graph.score(probe, now)
            times.root_ms.append(1e3 * (time.perf_counter() - started))
            others = world.dids[1:]
            started = time.perf_counter()
            for did in others:
                graph.score(did, now)
            times.cold_per_s.append(len(others) / (time.perf_counter() - started))
    return times


# -- the audit log ---------------------------------------------------------


def store_appends(path: Path, records: list[AccessRecord], per_commit: int, sync: str) -> Run:
    """Appends to a fresh SqliteStore, a commit after every ``per_commit``;
    the time includes the last commit (each commit durable when it returns)."""
    with SqliteStore.open(path, synchronous=sync) as store:
        append, commit = store.append_audit, store.commit
        chunks = in_chunks(records, per_commit)
        with collected():
            started = time.perf_counter()
            for chunk in chunks:
                for record in chunk:
                    append(record)
                commit()
            seconds = time.perf_counter() - started
        report = store.verify_audit()
    if not report.ok or report.count != len(records):
        raise RuntimeError(f"audit log after {len(records)} appends: {report}")
    return Run(len(records), seconds, 0)


def raw_commits(
    path: Path, rows: list[tuple[int, float, str, str, str, bytes]], per_commit: int, sync: str
) -> Run:
    """The same rows (already encoded and hashed) into a same-shaped table
    of a plain SQLite file with the store's pragmas: INSERT + COMMIT."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {sync.upper()}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {8 * 1024 * 1024}")
        conn.execute("PRAGMA secure_delete = FAST")
        conn.execute(_AUDIT_TABLE)
        execute, executemany = conn.execute, conn.executemany
        chunks = in_chunks(rows, per_commit)
        with collected():
            started = time.perf_counter()
            if per_commit == 1:
                for (row,) in chunks:
                    execute("BEGIN IMMEDIATE")
                    execute(_INSERT, row)
                    execute("COMMIT")
            else:
                for chunk in chunks:
                    execute("BEGIN IMMEDIATE")
                    executemany(_INSERT, chunk)
                    execute("COMMIT")
            seconds = time.perf_counter() - started
        (count,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    finally:
        conn.close()
    if count != len(rows):
        raise RuntimeError(f"raw table holds {count} of {len(rows)} rows")
    return Run(len(rows), seconds, 0)


def verify_rate(store: SqliteStore, expected: int) -> float:
    with collected():
        started = time.perf_counter()
        report = store.verify_audit()
        seconds = time.perf_counter() - started
    if not report.ok or report.count != expected:
        raise RuntimeError(f"audit log of {expected} decisions: {report}")
    return report.count / seconds


def cycled(records: list[AccessRecord], count: int) -> list[AccessRecord]:
    return [records[i % len(records)] for i in range(count)]
