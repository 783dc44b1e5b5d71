"""Properties of the trust graph, against a naive reference.

The reference keeps its own copy of the statements and recomputes every
score from scratch by enumerating all walks from the root, so any mistake in
the graph's incremental bookkeeping (forward tables, in-edge index, score
cache, revocations, bounds) shows up as a difference.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.crypto.rng import SeededRandom
from l2session.errors import InvalidTrustStatement, MalformedMessage, TrustGraphFull
from l2session.identity.identity import Identity
from l2session.membrane.trust import TrustConfig, TrustGraph, TrustPath, TrustStatement

NOW_MS = 1_800_000_000_000
PEOPLE = tuple(Identity.generate(SeededRandom(f"trust-property-{i}")) for i in range(6))
DIDS = tuple(p.did_text for p in PEOPLE)
ROOT = DIDS[0]
STRANGER = Identity.generate(SeededRandom("trust-property-stranger")).did_text


@dataclass
class Reference:
    """What the graph should hold, and what it should say, computed naively."""

    config: TrustConfig
    #: (issuer, subject) -> (weight_milli, issued_at_ms), revocations included.
    held: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def live(self) -> dict[tuple[str, str], tuple[int, int]]:
        return {pair: value for pair, value in self.held.items() if value[0] != 0}

    def nodes(self) -> set[str]:
        return {did for pair in self.live() for did in pair}

    def expect(self, issuer: str, subject: str, milli: int, ms: int, now_ms: int) -> str:
        """'taken', 'duplicate', 'invalid' or 'full'."""
        held = self.held.get((issuer, subject))
        if held == (milli, ms):
            return "duplicate"
        if ms > now_ms + self.config.max_clock_skew * 1000:
            return "invalid"
        if held is not None and ms <= held[1]:
            return "duplicate" if (ms, milli) == (held[1], held[0]) else "invalid"
        live = self.live()
        if milli != 0 and (issuer, subject) not in live:
            if sum(1 for i, _ in live if i == issuer) >= self.config.max_edges_per_node:
                return "full"
            nodes = self.nodes()
            if len(nodes | {issuer, subject}) > self.config.max_nodes:
                return "full"
        return "taken"

    def weight(self, milli: int, ms: int, epoch: float) -> float:
        half_life = self.config.half_life or math.inf
        age = max(0.0, epoch - ms / 1000)
        factor: float = 0.5 ** (age / half_life)
        return milli / 1000 * factor

    def trust(self, target: str, epoch: float) -> float:
        if target == ROOT:
            return 1.0
        out: dict[str, list[tuple[str, float]]] = {}
        for (issuer, subject), (milli, ms) in self.live().items():
            out.setdefault(issuer, []).append((subject, self.weight(milli, ms, epoch)))
        best = [0.0, 0.0]
        decay = self.config.hop_decay

        def walk(node: str, value: float, hops: int) -> None:
            for subject, w in out.get(node, []):
                v = w if hops == 0 else value * decay * w
                if subject == target:
                    best[0], best[1] = max(best[0], v), min(best[1], v)
                if v > 0 and hops + 1 < self.config.max_hops:
                    walk(subject, v, hops + 1)

        walk(ROOT, 1.0, 0)
        return max(-1.0, min(1.0, best[0] + best[1]))

    def score(self, target: str, epoch: float) -> float:
        t = self.trust(target, epoch)
        neutral = self.config.neutral
        return neutral + (1 - neutral) * t if t >= 0 else neutral + neutral * t


def _path_value(path: TrustPath, decay: float) -> float:
    return math.prod(path.weights) * decay ** (path.hops - 1)


configs = st.builds(
    TrustConfig,
    max_hops=st.sampled_from([1, 2, 3, 3, 3]),
    hop_decay=st.sampled_from([0.5, 0.8, 1.0]),
    half_life=st.sampled_from([None, 300.0]),
    neutral=st.sampled_from([0.5, 0.3]),
    max_nodes=st.integers(3, 7),
    max_edges_per_node=st.integers(2, 5),
    refresh=st.sampled_from([0.0, 30.0, math.inf]),
    max_clock_skew=st.just(10.0),
)
#: Issuers near the root more often, so that 2- and 3-hop paths are common.
issuers = st.sampled_from([0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 5])
adds = st.tuples(
    st.just("add"),
    issuers,
    st.integers(1, 5),  # an offset, so the subject is never the issuer
    st.sampled_from([-1000, -700, -300, 0, 250, 500, 700, 900, 1000]),
    st.integers(-600_000, 20_000).filter(lambda ms: ms != 10_000),  # issued_at - now, in ms
)
ticks = st.tuples(st.just("tick"), st.integers(0, 120_000), st.just(0), st.just(0), st.just(0))


@settings(max_examples=150, deadline=None)
@given(
    config=configs,
    operations=st.lists(st.one_of(adds, adds, adds, ticks), min_size=12, max_size=60),
)
def test_incremental_scores_equal_a_from_scratch_computation(
    config: TrustConfig, operations: list[tuple[str, int, int, int, int]]
) -> None:
    graph = TrustGraph(ROOT, config)
    reference = Reference(config)
    now_ms = NOW_MS
    for kind, who, offset, milli, when in operations:
        if kind == "tick":
            now_ms += who
        else:
            issuer, subject = PEOPLE[who], DIDS[(who + offset) % len(DIDS)]
            ms = max(0, now_ms + when)
            statement = TrustStatement.sign(issuer, subject, milli / 1000, ms / 1000)
            expected = reference.expect(issuer.did_text, subject, milli, ms, now_ms)
            try:
                outcome = "taken" if graph.add(statement, now_ms / 1000) else "duplicate"
            except InvalidTrustStatement:
                outcome = "invalid"
            except TrustGraphFull:
                outcome = "full"
            assert outcome == expected
            if outcome == "taken":
                reference.held[(issuer.did_text, subject)] = (milli, ms)
        now = now_ms / 1000
        for did in (*DIDS, STRANGER):
            got = graph.score(did, now)
            assert abs(now - graph.epoch) <= config.refresh
            assert 0.0 <= got <= 1.0
            assert math.isclose(got, reference.score(did, graph.epoch), abs_tol=1e-12)
        assert graph.score(STRANGER, now) == config.neutral
        assert len(graph) == len(reference.live())
        assert graph.node_count == len(reference.nodes())
        held = {(s.issuer, s.subject): (s.weight_milli, s.issued_at_ms) for s in graph.statements()}
        assert held == reference.held


@settings(max_examples=100, deadline=None)
@given(
    operations=st.lists(adds, min_size=1, max_size=30),
    target=st.sampled_from(DIDS),
)
def test_explain_matches_score(
    operations: list[tuple[str, int, int, int, int]], target: str
) -> None:
    config = TrustConfig(half_life=300.0, refresh=0.0)
    graph = TrustGraph(ROOT, config)
    for _, who, offset, milli, when in operations:
        subject = DIDS[(who + offset) % len(DIDS)]
        statement = TrustStatement.sign(PEOPLE[who], subject, milli / 1000, (NOW_MS + when) / 1000)
        with contextlib.suppress(InvalidTrustStatement):
            graph.add(statement, NOW_MS / 1000)
    now = NOW_MS / 1000 + 60
    why = graph.explain(target, now)
    assert why.score == graph.score(target, now)
    assert why.epoch == graph.epoch == now
    if target == ROOT:
        assert (why.score, why.trust, why.positive, why.negative) == (1.0, 1.0, None, None)
        return
    positive = why.positive.value if why.positive is not None else 0.0
    negative = why.negative.value if why.negative is not None else 0.0
    assert math.isclose(why.trust, positive + negative, abs_tol=1e-12)
    for path, sign in ((why.positive, 1), (why.negative, -1)):
        if path is None:
            continue
        assert path.dids[0] == ROOT
        assert path.dids[-1] == target
        assert path.value * sign > 0
        assert all(w > 0 for w in path.weights[:-1])
        assert 1 <= path.hops <= config.max_hops
        assert math.isclose(path.value, _path_value(path, config.hop_decay), abs_tol=1e-12)
        held = {(s.issuer, s.subject): s for s in graph.statements()}
        for issuer, subject in pairwise(path.dids):
            assert held[(issuer, subject)].weight_milli != 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_arbitrary_bytes_decode_or_are_malformed(data: bytes) -> None:
    try:
        statement = TrustStatement.from_bytes(data)
    except MalformedMessage:
        return
    assert statement.to_bytes() == data  # canonical: one encoding per statement


@settings(max_examples=200, deadline=None)
@given(
    weight=st.floats(-1, 1),
    issued_at=st.floats(0, 4e9),
    who=st.integers(0, 5),
    offset=st.integers(1, 5),
)
def test_signed_statements_round_trip_and_verify(
    weight: float, issued_at: float, who: int, offset: int
) -> None:
    statement = TrustStatement.sign(
        PEOPLE[who], DIDS[(who + offset) % len(DIDS)], weight, issued_at
    )
    assert abs(statement.weight - weight) <= 0.0005
    # Rounded to the millisecond: at most half of one off, plus the float
    # error of ms / 1000 near 4e9 (hypothesis found 0.000500023 at 2**28).
    assert abs(statement.issued_at - issued_at) <= 0.0005 + 1e-6
    decoded = TrustStatement.from_bytes(statement.to_bytes())
    assert decoded == statement
    decoded.verify()
