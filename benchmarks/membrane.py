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
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from l2session.core.link.envelope import AccessRecord, Request
from l2session.crypto import primitives
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.membrane import audit, decision
from l2session.membrane.membrane import Membrane
from l2session.membrane.policy import MembranePolicy
from l2session.membrane.policy_file import parse_policy
from l2session.membrane.quota import QuotaLedger
from l2session.membrane.trust import DAY, TrustConfig, TrustGraph
from l2session.membrane.trust_statement import TrustStatement
from l2session.store.sqlite import SqliteStore

#: The benchmark's "now": every decision, score and statement lies within
#: seconds of it (2027-01-15), so no score is ever stale by time decay.
T0: Final = 1_800_000_000.0
#: Virtual seconds between two decisions (a node taking 100,000 a second).
DT: Final = 1e-5
#: Churn statements are dated from here on, one millisecond apart.
CHURN_EPOCH: Final = T0 - 900.0
#: "expires" of the grants that have one: far in the future.
FAR_FUTURE: Final = "2099-12-31T00:00:00Z"
#: Decisions per audit commit (group commit, as a node commits per burst).
COMMIT_EVERY: Final = 1_000
#: One trust statement is added per this many decisions in the churn run.
CHURN_EVERY: Final = 100
#: Of the churn statements: the share issued by the root, and by a DID the
#: root trusts directly (both recompute the forward tables); the rest come
#: from far issuers (one cached score dropped each).
CHURN_ROOT_SHARE: Final = 0.01
CHURN_DEPTH1_SHARE: Final = 0.04
#: The policy-wide minimum trust score, and the bar of the stricter grants.
MIN_TRUST: Final = 0.45
TRUSTED: Final = 0.6
SEED: Final = "l2session membrane benchmark"

TARGETS: Final = {"decisions_per_s": (">=", 50_000.0)}

CITIES: Final = (
    "berlin",
    "paris",
    "madrid",
    "rome",
    "vienna",
    "prague",
    "warsaw",
    "lisbon",
    "dublin",
    "oslo",
    "helsinki",
    "athens",
    "zurich",
    "amsterdam",
    "brussels",
    "copenhagen",
    "stockholm",
    "budapest",
    "tallinn",
    "riga",
)

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
# The trust graph


@dataclass(slots=True)
class World:
    """The DIDs, the graph built from them, and what the set-up learnt."""

    identities: list[Identity]
    dids: list[str]
    depth1: list[int]
    depth2: list[int]
    far: list[int]
    graph: TrustGraph
    #: (issuer, subject) -> weight of every live edge, kept up to date as
    #: churn statements are signed (they are added in the same order).
    edges: dict[tuple[int, int], float]
    build_s: float
    identities_s: float
    sign_s: float
    add_s: float
    #: Scores after the build: who is distrusted, who is well trusted.
    distrusted: list[int] = field(default_factory=list)
    trusted: list[int] = field(default_factory=list)
    #: Statements signed after the build (their issued_at increases).
    signed: int = 0
    nodes_built: int = 0
    edges_built: int = 0

    @property
    def root(self) -> str:
        return self.dids[0]

    def next_time(self) -> float:
        """A fresh issued_at, later than every statement signed before."""
        self.signed += 1
        return CHURN_EPOCH + self.signed / 1000


def _layers(nodes: int) -> tuple[int, int]:
    """How many DIDs the root trusts directly, and how many sit at depth 2."""
    depth1 = max(4, nodes // 200)
    depth2 = max(4 * depth1, nodes // 5)
    return depth1, depth2


def build_world(nodes: int, rng: random.Random) -> World:
    """The root (DID 0) trusts ``depth1`` DIDs; each of those vouches for
    its share of the depth-2 DIDs (and distrusts a few far ones); each
    depth-2 DID vouches for its share of the far DIDs and one more; every
    far DID states five opinions about random DIDs (some negative), most of
    them beyond the root's 3-hop horizon.  Timed: identities, signing, and
    ``TrustGraph.add`` (which verifies every signature)."""
    started = time.perf_counter()
    identities = [Identity.generate(SeededRandom(f"{SEED} {i}")) for i in range(nodes)]
    identities_s = time.perf_counter() - started
    dids = [identity.did_text for identity in identities]
    n1, n2 = _layers(nodes)
    depth1 = list(range(1, 1 + n1))
    depth2 = list(range(1 + n1, 1 + n1 + n2))
    far = list(range(1 + n1 + n2, nodes))
    edges: dict[tuple[int, int], float] = {}

    def edge(issuer: int, subject: int, weight: float) -> None:
        if issuer != subject and subject != 0 and (issuer, subject) not in edges:
            edges[issuer, subject] = round(weight, 3)

    for subject in depth1:
        edge(0, subject, rng.uniform(0.7, 1.0))
    for position, subject in enumerate(depth2):
        edge(depth1[position % n1], subject, rng.uniform(0.6, 1.0))
    distrusts = max(1, round(0.04 * nodes / n1))
    for issuer in depth1:
        for subject in rng.sample(depth2, 2):
            edge(issuer, subject, rng.uniform(0.5, 1.0))
        for subject in rng.sample(far, distrusts):
            edge(issuer, subject, -rng.uniform(0.9, 1.0))
    for position, subject in enumerate(far):
        edge(depth2[position % n2], subject, rng.uniform(0.5, 1.0))
    for issuer in depth2:
        weight = rng.uniform(0.3, 1.0) if rng.random() < 0.9 else -rng.uniform(0.2, 0.6)
        edge(issuer, rng.randrange(1, nodes), weight)
    for issuer in far:
        for _ in range(5):
            weight = rng.uniform(0.2, 1.0) if rng.random() < 0.85 else -rng.uniform(0.2, 1.0)
            edge(issuer, rng.randrange(1, nodes), weight)

    started = time.perf_counter()
    statements = [
        TrustStatement.sign(
            identities[issuer], dids[subject], weight, T0 - rng.uniform(1.0, 60.0) * DAY
        )
        for (issuer, subject), weight in edges.items()
    ]
    sign_s = time.perf_counter() - started
    graph = TrustGraph(dids[0], TrustConfig(max_nodes=max(nodes, TrustConfig().max_nodes)))
    started = time.perf_counter()
    for statement in statements:
        graph.add(statement, T0)
    add_s = time.perf_counter() - started
    if len(graph) != len(edges) or graph.node_count != nodes:
        raise RuntimeError(f"graph holds {len(graph)} edges, {graph.node_count} DIDs")
    world = World(
        identities,
        dids,
        depth1,
        depth2,
        far,
        graph,
        edges,
        build_s=identities_s + sign_s + add_s,
        identities_s=identities_s,
        sign_s=sign_s,
        add_s=add_s,
    )
    scores = {i: graph.score(dids[i], T0) for i in range(1, nodes)}
    world.nodes_built, world.edges_built = graph.node_count, len(graph)
    world.distrusted = [i for i, score in scores.items() if score < MIN_TRUST]
    world.trusted = [i for i, score in scores.items() if score >= TRUSTED]
    return world


def warm(world: World) -> None:
    """Every DID's score cached (scores of unknown DIDs are never cached)."""
    score, graph = world.graph.score, world.graph
    for did in world.dids:
        score(did, T0)
    assert graph.epoch <= T0 + 1.0


def churn_statements(world: World, count: int, rng: random.Random) -> list[TrustStatement]:
    """``count`` signed changes, in the order they will be added: the root
    re-weighting one of its edges, a depth-1 DID re-weighting one of its
    own, or (most) a far DID stating a new opinion or revising one.  Signs
    are kept, so the set of distrusted DIDs stays about the same."""
    out: list[TrustStatement] = []
    outgoing: dict[int, list[int]] = {}
    for issuer, subject in world.edges:
        outgoing.setdefault(issuer, []).append(subject)
    issuers = world.depth2 + world.far
    for _ in range(count):
        draw = rng.random()
        if draw < CHURN_ROOT_SHARE:
            issuer = 0
            subject = rng.choice(world.depth1)
        elif draw < CHURN_ROOT_SHARE + CHURN_DEPTH1_SHARE:
            issuer = rng.choice(world.depth1)
            subject = rng.choice(outgoing[issuer])
        else:
            issuer = rng.choice(issuers)
            subject = rng.randrange(1, len(world.dids))
            if subject == issuer:
                subject = 1 + issuer % (len(world.dids) - 1)
        old = world.edges.get((issuer, subject))
        if old is None:
            weight = rng.uniform(0.2, 1.0) if rng.random() < 0.85 else -rng.uniform(0.2, 1.0)
            outgoing.setdefault(issuer, []).append(subject)
        else:
            weight = math.copysign(rng.uniform(0.6, 1.0), old)
        weight = round(weight, 3)
        world.edges[issuer, subject] = weight
        out.append(
            TrustStatement.sign(
                world.identities[issuer], world.dids[subject], weight, world.next_time()
            )
        )
    return out


# ==========================================================================
# The policy


@dataclass(slots=True)
class Shape:
    """What the request generator must know about the generated policy."""

    text: str
    #: Grants per template (template t holds grants t, t + 10, ...).
    per_template: list[int]
    cities: tuple[str, ...]
    groups: dict[str, list[int]]
    #: Template 1: the DIDs that may write each channel.
    writers: list[list[int]]
    #: Heavy callers of the premium services (template 7), and their service.
    heavy: dict[int, int]


def _quoted(text: str) -> str:
    return json.dumps(text)  # a TOML basic string for ASCII text


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_quoted(item) for item in items) + "]"


def policy_text(world: World, grants: int, rng: random.Random) -> Shape:
    """A policy of ``grants`` grants in ten templates (see the module doc),
    as the TOML a node operator would write."""
    dids = world.dids
    trusted = world.trusted or list(range(1, len(dids)))
    nodes = len(dids)
    cities = CITIES[: max(2, min(len(CITIES), grants // 50))]
    distrusted = set(world.distrusted)
    member_pool = [i for i in range(1, nodes) if i not in distrusted]
    groups: dict[str, list[int]] = {
        city: rng.sample(member_pool, max(5, nodes // 100)) for city in cities
    }
    groups["staff"] = rng.sample(world.depth1 + world.depth2, max(5, nodes // 300))
    partners = set(rng.sample(trusted, min(len(trusted), max(10, nodes // 50))))
    groups["partners"] = sorted(partners)
    per_template = [len(range(t, grants, 10)) for t in range(10)]
    outsiders = [i for i in trusted if i not in partners]
    heavy_count = min(len(outsiders), max(4, nodes // 500))
    heavy = {h: n % max(1, per_template[7]) for n, h in enumerate(outsiders[:heavy_count])}

    lines = [
        "# Generated by benchmarks/membrane.py",
        "version = 1",
        f"expires = {FAR_FUTURE}",
        "",
        "[constraints]",
        f"min_trust = {MIN_TRUST}",
        "max_units = 1000",
        "",
        "[groups]",
    ]
    lines += [f"{name} = {_list([dids[i] for i in members])}" for name, members in groups.items()]
    writers: list[list[int]] = []
    for k in range(grants):
        t, j = k % 10, k // 10
        city = cities[j % len(cities)]
        lines += ["", "[[grant]]"]
        if t == 0:
            lines += [
                f'id = "feed-{j}"',
                'peers = ["*"]',
                f'resource = "feed://channel-{j}"',
                'actions = ["read"]',
            ]
            if j % 2:
                lines.append(f"expires = {FAR_FUTURE}")
        elif t == 1:
            chosen = rng.sample(trusted, min(len(trusted), rng.randint(3, 8)))
            writers.append(chosen)
            lines += [
                f"peers = {_list([dids[i] for i in chosen])}",
                f'resource = "feed://channel-{j}/posts"',
                'actions = ["write", "delete"]',
                f"min_trust = {TRUSTED - 0.05:.2f}",
            ]
        elif t == 2:
            lines += [
                'peers = ["*"]',
                f'resource = "chapter://{city}/topic-{j}"',
                'action = "read"',
                "min_trust = 0.5",
            ]
        elif t == 3:
            lines += [
                'peers = ["*"]',
                f'resource = "chapter://{city}/topic-{j}/proposals"',
                'actions = ["write", "vote"]',
                f'member_of = "{city}"',
            ]
        elif t == 4:
            lines += [
                'peers = ["group:staff"]',
                f'resource = "chapter://{city}/topic-{j}/admin"',
                'actions = ["*"]',
            ]
        elif t == 5:
            lines += [
                f'peers = ["group:{city}"]',
                f'resource = "chapter://{city}/events/e-{j}"',
                'action = "rsvp"',
                f"expires = {FAR_FUTURE}",
            ]
        elif t == 6:
            lines += [
                f'id = "svc-{j}"',
                'peers = ["group:partners"]',
                f'resource = "service://svc-{j}"',
                'action = "call"',
                'quota = { units = 100000, window = "1h" }',
                f"min_trust = {TRUSTED - 0.05:.2f}",
            ]
        elif t == 7:
            mine = [h for h, service in heavy.items() if service == j]
            extra = rng.sample(trusted, min(len(trusted), 3))
            chosen = list(dict.fromkeys(mine + extra))
            lines += [
                f'id = "premium-{j}"',
                f"peers = {_list([dids[i] for i in chosen])}",
                f'resource = "service://svc-{j}/premium"',
                'actions = ["call"]',
                'quota = { units = 100, window = "1h" }',
            ]
        elif t == 8:
            lines += [
                'peers = ["*"]',
                f'resource = "service://svc-{j}/status"',
                'actions = ["read", "ping"]',
            ]
        else:
            extra = rng.sample(trusted, min(len(trusted), 2))
            lines += [
                f"peers = {_list([f'group:{city}', *(dids[i] for i in extra)])}",
                f'resource = "service://svc-{j}/api/v{1 + j % 3}"',
                'action = "call"',
                'quota = { units = 5000, window = "1d" }',
                f"min_trust = {TRUSTED}",
                f"expires = {FAR_FUTURE}",
            ]
    return Shape("\n".join(lines) + "\n", per_template, cities, groups, writers, heavy)


# ==========================================================================
# The request stream

#: Request categories and their shares of the stream.
MIX: Final = (
    ("feed_read", 0.30),
    ("feed_write", 0.08),
    ("chapter_read", 0.12),
    ("chapter_member", 0.10),
    ("chapter_outsider", 0.03),
    ("service_partner", 0.10),
    ("service_heavy", 0.05),
    ("service_status", 0.10),
    ("service_api", 0.05),
    ("no_grant", 0.04),
    ("distrusted", 0.03),
)


def request_stream(
    world: World, shape: Shape, count: int, rng: random.Random
) -> list[tuple[str, Request, float]]:
    """``count`` (peer DID, request, now) in arrival order; now advances
    by :data:`DT` per decision from :data:`T0`."""
    dids, nodes = world.dids, len(world.dids)
    per = shape.per_template
    names = [name for name, _ in MIX]
    weights = [share for _, share in MIX]
    heavy = list(shape.heavy.items())
    distrusted = world.distrusted or list(range(1, nodes))
    out: list[tuple[str, Request, float]] = []

    def anyone() -> int:
        return rng.randrange(1, nodes)

    def pick(template: int) -> int:
        return rng.randrange(per[template])

    def city_of(j: int) -> str:
        return shape.cities[j % len(shape.cities)]

    for i, kind in enumerate(rng.choices(names, weights, k=count)):
        n = rng.randrange(1_000_000)
        if kind == "feed_read":
            peer, req = anyone(), Request("read", f"feed://channel-{pick(0)}/posts/p-{n}")
        elif kind == "feed_write":
            j = pick(1)
            peer = rng.choice(shape.writers[j])
            req = Request(rng.choice(("write", "delete")), f"feed://channel-{j}/posts/p-{n}")
        elif kind == "chapter_read":
            j = pick(2)
            peer, req = anyone(), Request("read", f"chapter://{city_of(j)}/topic-{j}/t-{n}")
        elif kind == "chapter_member":
            if rng.random() < 0.5:
                j = pick(3)
                city = city_of(j)
                resource = f"chapter://{city}/topic-{j}/proposals/p-{n % 500}"
                req = Request(rng.choice(("write", "vote")), resource)
            else:
                j = pick(5)
                city = city_of(j)
                req = Request("rsvp", f"chapter://{city}/events/e-{j}")
            peer = rng.choice(shape.groups[city])
        elif kind == "chapter_outsider":
            j = pick(3)
            city = city_of(j)
            members = set(shape.groups[city])
            peer = anyone()
            while peer in members:
                peer = anyone()
            req = Request("write", f"chapter://{city}/topic-{j}/proposals/p-{n % 500}")
        elif kind == "service_partner":
            j = pick(6)
            peer = rng.choice(shape.groups["partners"])
            req = Request("call", f"service://svc-{j}/method-{n % 20}", rng.randint(1, 5))
        elif kind == "service_heavy" and heavy:
            peer, j = rng.choice(heavy)
            req = Request("call", f"service://svc-{j}/premium/op-{n % 8}", rng.randint(1, 3))
        elif kind == "service_status":
            j = pick(8)
            peer, req = anyone(), Request(rng.choice(("read", "ping")), f"service://svc-{j}/status")
        elif kind == "service_api":
            j = pick(9)
            peer = rng.choice(shape.groups[city_of(j)])
            req = Request("call", f"service://svc-{j}/api/v{1 + j % 3}/op-{n % 50}")
        elif kind == "no_grant":
            if rng.random() < 0.5:
                j = pick(2)
                req = Request("delete", f"chapter://{city_of(j)}/topic-{j}/t-{n}")
            else:
                req = Request("read", f"vault://secrets/s-{n}")
            peer = anyone()
        else:  # distrusted (or service_heavy without heavy callers)
            peer = rng.choice(distrusted)
            req = Request("read", f"feed://channel-{pick(0)}/posts/p-{n}")
        out.append((dids[peer], req, T0 + i * DT))
    return out


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


# ==========================================================================
# Timed runs


@contextmanager
def _collected() -> Iterator[None]:
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
    with _collected():
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
    with _collected():
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
    parts = [_chunks(chunk, CHURN_EVERY) for chunk in chunks]
    pending = iter(statements)
    allowed = 0
    with _collected():
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
    with _collected():
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
    with _collected():
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
        with _collected():
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
        chunks = _chunks(records, per_commit)
        with _collected():
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
        chunks = _chunks(rows, per_commit)
        with _collected():
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
    with _collected():
        started = time.perf_counter()
        report = store.verify_audit()
        seconds = time.perf_counter() - started
    if not report.ok or report.count != expected:
        raise RuntimeError(f"audit log of {expected} decisions: {report}")
    return report.count / seconds


def _cycle(records: list[AccessRecord], count: int) -> list[AccessRecord]:
    return [records[i % len(records)] for i in range(count)]


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
        with _collected():
            t = time.perf_counter()
            parse_policy(shape.text, "membrane-bench.toml")
            load_ms.append(1e3 * (time.perf_counter() - t))
    if len(policy.grants) != config.grants:
        raise RuntimeError(f"the policy holds {len(policy.grants)} grants")
    stream = request_stream(world, shape, config.decisions, rng)
    chunks = _chunks(stream, COMMIT_EVERY)
    warm(world)
    mix, records = _verdicts(policy, world, stream)
    single = _cycle(records, config.appends)
    fsync = _cycle(records, config.fsync_appends)
    batched = _cycle(records, config.batched_appends)

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
