"""The world the membrane benchmark (``benchmarks/membrane.py``) runs in:
its seeded trust graph, its 1,000-grant policy text, and its request stream.

Builders only, no clock: ``membrane.py`` describes what they build (its
docstring) and times what runs over it (:mod:`benchmarks._membrane_runs`).
Apart so that the scenario can be read, and tested
(``tests/test_benchmark_membrane.py``), without the measurements.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from l2session.core.link.envelope import Request
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.membrane.trust import DAY, TrustConfig, TrustGraph
from l2session.membrane.trust_statement import TrustStatement

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


def in_chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
