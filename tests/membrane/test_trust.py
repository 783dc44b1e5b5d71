"""The QVL trust graph: signed statements, transitive scores, bounds, caching.

Hand-computed values use the defaults: hop decay 0.8, so a 2-hop path is
``w1 * w2 * 0.8`` and a 3-hop path ``w1 * w2 * w3 * 0.64``; score is
``0.5 + 0.5 * t``.  Time decay is off (``half_life=None``) unless a test is
about it, so values do not depend on the clock.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    ConfigError,
    InvalidDid,
    InvalidTrustStatement,
    MalformedMessage,
    TrustError,
    TrustGraphFull,
)
from l2session.identity.identity import Identity
from l2session.membrane.trust import (
    DAY,
    TrustConfig,
    TrustGraph,
    TrustStatement,
    did_key_key_of,
)
from l2session.membrane.trust_statement import MAX_STATEMENT_SIZE

NOW = 1_800_000_000.0

#: Key generation is the slow part: build the cast once.
ROOT, ALICE, BOB, CAROL, DAVE, EVE = (
    Identity.generate(SeededRandom(f"trust-{name}"))
    for name in ("root", "alice", "bob", "carol", "dave", "eve")
)
A, B, C, D, E = (p.did_text for p in (ALICE, BOB, CAROL, DAVE, EVE))
R = ROOT.did_text
STATIC = TrustConfig(half_life=None)


def sign(issuer: Identity, subject: str, weight: float, at: float = NOW) -> TrustStatement:
    return TrustStatement.sign(issuer, subject, weight, at)


def graph(*edges: tuple[Identity, str, float], config: TrustConfig = STATIC) -> TrustGraph:
    g = TrustGraph(R, config)
    for issuer, subject, weight in edges:
        assert g.add(sign(issuer, subject, weight), NOW)
    return g


def snapshot(g: TrustGraph) -> tuple[object, ...]:
    return (sorted(s.to_bytes() for s in g.statements()), len(g), g.node_count)


# --------------------------------------------------------------------------
# Statements


def test_a_signed_statement_verifies_and_round_trips() -> None:
    statement = sign(ALICE, B, 0.75, NOW + 0.0004)
    statement.verify()
    assert statement.weight_milli == 750
    assert statement.weight == 0.75
    assert statement.issued_at_ms == 1_800_000_000_000
    assert statement.issued_at == NOW
    decoded = TrustStatement.from_bytes(statement.to_bytes())
    assert decoded == statement
    decoded.verify()
    assert statement.signed_bytes().startswith(b"l2session trust statement v1\x00")


def test_weights_are_rounded_to_thousandths() -> None:
    assert sign(ALICE, B, 0.1234).weight_milli == 123
    assert sign(ALICE, B, -1).weight_milli == -1000
    assert sign(ALICE, B, 0).is_revocation


def test_a_flipped_signature_byte_is_refused() -> None:
    statement = sign(ALICE, B, 0.5)
    bad = bytearray(statement.signature)
    bad[10] ^= 0x01
    forged = replace(statement, signature=bytes(bad))
    with pytest.raises(InvalidTrustStatement, match="does not verify"):
        forged.verify()


def test_an_altered_weight_is_refused() -> None:
    statement = sign(ALICE, B, 0.5)
    with pytest.raises(InvalidTrustStatement, match="does not verify"):
        replace(statement, weight_milli=1000).verify()


def test_a_statement_signed_by_someone_else_is_refused() -> None:
    by_bob = sign(BOB, C, 0.5)
    claimed = TrustStatement(A, C, 500, by_bob.issued_at_ms, by_bob.signature)
    with pytest.raises(InvalidTrustStatement, match="does not verify"):
        claimed.verify()
    with pytest.raises(InvalidTrustStatement, match="does not verify"):
        by_bob.verify(lambda _issuer: ALICE.signing_public)


def test_non_did_key_issuers_need_a_key_resolver() -> None:
    web = Identity.generate(SeededRandom("trust-web"), did="did:web:example.org")
    statement = sign(web, A, 0.5)
    with pytest.raises(InvalidTrustStatement, match="no key resolver for this DID method"):
        statement.verify()
    statement.verify(lambda issuer: web.signing_public)
    g = TrustGraph(R, key_of=lambda issuer: web.signing_public)
    assert g.add(statement, NOW)


def test_a_key_resolver_error_becomes_an_invalid_statement() -> None:
    def broken(issuer: str) -> bytes:
        raise InvalidDid("nobody knows")

    with pytest.raises(InvalidTrustStatement, match="nobody knows"):
        sign(ALICE, B, 0.5).verify(broken)
    with pytest.raises(InvalidTrustStatement, match="must be 32 bytes"):
        sign(ALICE, B, 0.5).verify(lambda issuer: b"\x00" * 31)


def test_the_default_key_of_decodes_did_key() -> None:
    assert did_key_key_of(A) == ALICE.signing_public
    with pytest.raises(InvalidTrustStatement, match="did:web:x: no key resolver"):
        did_key_key_of("did:web:x")
    with pytest.raises(InvalidTrustStatement):
        did_key_key_of("did:key:z6Mkbogus")
    with pytest.raises(InvalidTrustStatement):
        did_key_key_of("not a did")


def test_self_trust_is_refused() -> None:
    with pytest.raises(InvalidTrustStatement, match="in itself"):
        sign(ALICE, A, 1.0)
    statement = sign(ALICE, B, 1.0)
    with pytest.raises(InvalidTrustStatement, match="in itself"):
        replace(statement, subject=A)
    body = bytearray(statement.to_bytes())
    own = A.encode()
    other = B.encode()
    encoded = bytes(body).replace(other, own)
    with pytest.raises(MalformedMessage, match="in itself"):
        TrustStatement.from_bytes(encoded)


@pytest.mark.parametrize("weight", [1.001, -1.5, math.nan, math.inf])
def test_weights_outside_the_range_are_refused(weight: float) -> None:
    with pytest.raises(InvalidTrustStatement, match="weight"):
        sign(ALICE, B, weight)


@pytest.mark.parametrize("at", [-1.0, math.nan, math.inf, 1e16])
def test_unusable_times_are_refused(at: float) -> None:
    with pytest.raises(InvalidTrustStatement, match="issued_at"):
        sign(ALICE, B, 0.5, at)


def test_invalid_fields_are_refused_at_construction() -> None:
    good = sign(ALICE, B, 0.5)
    with pytest.raises(InvalidTrustStatement, match="subject"):
        replace(good, subject="did:key:")
    with pytest.raises(InvalidTrustStatement, match="weight_milli"):
        replace(good, weight_milli=1001)
    with pytest.raises(InvalidTrustStatement, match="issued_at_ms"):
        replace(good, issued_at_ms=-1)
    with pytest.raises(InvalidTrustStatement, match="signature"):
        replace(good, signature=b"\x00" * 63)
    with pytest.raises(InvalidTrustStatement, match="subject"):
        sign(ALICE, "did:key:has#fragment", 0.5)


def test_every_truncation_is_malformed() -> None:
    data = sign(ALICE, B, -0.25).to_bytes()
    for end in range(len(data)):
        with pytest.raises(MalformedMessage):
            TrustStatement.from_bytes(data[:end])


def test_every_bit_flip_is_refused_by_decoding_or_by_the_signature() -> None:
    data = sign(ALICE, B, -0.25).to_bytes()
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises((MalformedMessage, InvalidTrustStatement)):
            TrustStatement.from_bytes(bytes(flipped)).verify()


def test_version_trailing_bytes_and_size_are_checked() -> None:
    data = sign(ALICE, B, 0.5).to_bytes()
    with pytest.raises(MalformedMessage, match="version 2"):
        TrustStatement.from_bytes(b"\x02" + data[1:])
    with pytest.raises(MalformedMessage, match="trailing"):
        TrustStatement.from_bytes(data + b"\x00")
    with pytest.raises(MalformedMessage, match="exceeds"):
        TrustStatement.from_bytes(b"\x01" * (MAX_STATEMENT_SIZE + 1))
    with pytest.raises(MalformedMessage, match="expected bytes"):
        TrustStatement.from_bytes("text")  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Scores


def test_an_unknown_did_is_exactly_neutral_and_the_root_is_fully_trusted() -> None:
    g = graph((ROOT, A, 0.9))
    assert g.score(E, NOW) == 0.5
    assert g.score("did:web:never.seen", NOW) == 0.5
    assert g.score(R, NOW) == 1.0
    assert TrustGraph(R).score(A, NOW) == 0.5


def test_direct_edges() -> None:
    g = graph((ROOT, A, 0.8), (ROOT, B, -0.6))
    assert g.score(A, NOW) == pytest.approx(0.9)
    assert g.score(B, NOW) == pytest.approx(0.2)
    assert g.trust(B, NOW) == pytest.approx(-0.6)


def test_two_and_three_hops_decay() -> None:
    g = graph((ROOT, A, 0.9), (ALICE, B, 0.5), (BOB, C, 0.6), (CAROL, D, 1.0))
    assert g.trust(B, NOW) == pytest.approx(0.9 * 0.5 * 0.8)
    assert g.score(B, NOW) == pytest.approx(0.5 + 0.5 * 0.36)
    assert g.trust(C, NOW) == pytest.approx(0.9 * 0.5 * 0.6 * 0.64)
    assert g.score(C, NOW) == pytest.approx(0.5864)
    assert g.score(D, NOW) == 0.5  # a fourth hop is too far


def test_negative_edges_end_a_path() -> None:
    g = graph((ROOT, A, -0.9), (ALICE, B, 1.0), (ALICE, C, -1.0), (ROOT, D, 0.5), (DAVE, E, -0.5))
    assert g.score(A, NOW) == pytest.approx(0.05)
    assert g.score(B, NOW) == 0.5  # a distrusted DID's trust does not count...
    assert g.score(C, NOW) == 0.5  # ...nor its distrust
    assert g.trust(E, NOW) == pytest.approx(-0.2)  # a trusted DID's distrust does


def test_conflicting_evidence_cancels_and_the_strongest_path_wins() -> None:
    g = graph((ROOT, A, 1.0), (ROOT, B, 1.0), (ALICE, C, 0.5), (BOB, C, -0.5))
    assert g.score(C, NOW) == 0.5
    g.add(sign(BOB, C, 0.25, NOW + 1), NOW)
    assert g.trust(C, NOW) == pytest.approx(0.4)  # best path, not a sum
    g.add(sign(ROOT, C, -0.1, NOW + 1), NOW)
    assert g.trust(C, NOW) == pytest.approx(0.3)


def test_a_cycle_back_to_the_subject_is_evidence() -> None:
    g = graph((ROOT, A, 1.0), (ALICE, B, 1.0), (BOB, A, -0.5))
    assert g.trust(A, NOW) == pytest.approx(1.0 - 0.5 * 0.64)


def test_max_hops_limits_the_paths() -> None:
    edges = ((ROOT, A, 1.0), (ALICE, B, 1.0), (BOB, C, 1.0))
    one = graph(*edges, config=replace(STATIC, max_hops=1))
    two = graph(*edges, config=replace(STATIC, max_hops=2))
    assert (one.score(A, NOW), one.score(B, NOW)) == (1.0, 0.5)
    assert two.score(B, NOW) == pytest.approx(0.9)
    assert two.score(C, NOW) == 0.5
    two.add(sign(ALICE, C, 0.5), NOW)
    assert two.trust(C, NOW) == pytest.approx(0.4)


def test_the_neutral_point_is_configurable() -> None:
    g = graph((ROOT, A, 0.5), (ROOT, B, -0.5), config=replace(STATIC, neutral=0.2))
    assert g.score(C, NOW) == 0.2
    assert g.score(A, NOW) == pytest.approx(0.6)
    assert g.score(B, NOW) == pytest.approx(0.1)


def test_explain_gives_the_deciding_paths() -> None:
    g = graph((ROOT, A, 0.9), (ALICE, B, 0.5), (BOB, C, 0.6), (ROOT, D, 1.0), (DAVE, C, -0.2))
    why = g.explain(C, NOW)
    assert why.score == g.score(C, NOW)
    assert why.positive is not None
    assert why.negative is not None
    assert why.positive.dids == (R, A, B, C)
    assert why.positive.weights == pytest.approx((0.9, 0.5, 0.6))
    assert why.positive.value == pytest.approx(0.1728)
    assert why.positive.hops == 3
    assert why.negative.dids == (R, D, C)
    assert why.negative.value == pytest.approx(-0.16)
    assert why.trust == pytest.approx(0.1728 - 0.16)
    nobody = g.explain(E, NOW)
    assert (nobody.score, nobody.trust, nobody.positive, nobody.negative) == (0.5, 0.0, None, None)
    assert g.explain(R, NOW).score == 1.0


# --------------------------------------------------------------------------
# Time


def test_time_decay_halves_a_weight_every_half_life() -> None:
    config = TrustConfig(half_life=100.0, refresh=0.0)
    g = graph((ROOT, A, 1.0), (ALICE, B, 1.0), config=config)
    assert g.trust(A, NOW) == 1.0
    assert g.trust(A, NOW + 100) == pytest.approx(0.5)
    assert g.trust(A, NOW + 200) == pytest.approx(0.25)
    assert g.trust(B, NOW + 100) == pytest.approx(0.5 * 0.5 * 0.8)
    assert g.score(A, NOW + 100) == pytest.approx(0.75)


def test_the_default_half_life_is_180_days() -> None:
    g = graph((ROOT, A, 1.0), config=TrustConfig())
    assert g.trust(A, NOW + 180 * DAY) == pytest.approx(0.5)


def test_scores_lag_time_decay_by_at_most_refresh() -> None:
    g = graph((ROOT, A, 1.0), config=TrustConfig(half_life=100.0, refresh=60.0))
    assert g.score(A, NOW) == 1.0
    assert g.epoch == NOW
    assert g.score(A, NOW + 60) == 1.0  # within refresh: the cached value
    assert g.epoch == NOW
    assert g.score(A, NOW + 100) == pytest.approx(0.75)  # past it: recomputed
    assert g.epoch == NOW + 100
    assert g.score(A, NOW + 50) == pytest.approx(0.75)  # a clock stepping back a little
    assert g.score(A, NOW) == 1.0  # ...or a lot


def test_a_change_is_seen_at_once_whatever_the_refresh() -> None:
    g = graph((ROOT, A, 1.0), (ALICE, B, 1.0), config=replace(STATIC, refresh=math.inf))
    assert (g.score(A, NOW), g.score(B, NOW), g.score(C, NOW)) == (1.0, 0.9, 0.5)
    g.add(sign(BOB, C, -1.0), NOW)  # not the root's nor a direct friend's: one score
    assert g.score(C, NOW) == pytest.approx(0.5 - 0.5 * 0.64)
    g.add(sign(BOB, C, -0.5, NOW + 1), NOW)
    assert g.score(C, NOW) == pytest.approx(0.5 - 0.5 * 0.32)
    g.add(sign(BOB, C, -1.0, NOW + 2), NOW)
    g.add(sign(ALICE, B, 0.5, NOW + 1), NOW)  # a direct friend's edge: the tables
    assert g.score(C, NOW) == pytest.approx(0.5 - 0.5 * 0.32)
    assert g.score(B, NOW) == pytest.approx(0.7)
    g.add(sign(ROOT, A, 0.5, NOW + 1), NOW)  # the root's edge
    assert g.score(C, NOW) == pytest.approx(0.5 - 0.5 * 0.16)
    assert g.score(A, NOW) == pytest.approx(0.75)
    assert g.epoch == NOW


def test_future_dated_statements_are_refused_beyond_the_clock_skew() -> None:
    g = graph()
    with pytest.raises(InvalidTrustStatement, match="in the future"):
        g.add(sign(ROOT, A, 1.0, NOW + 301), NOW)
    assert len(g) == 0
    assert g.add(sign(ROOT, A, 1.0, NOW + 300), NOW)
    decaying = TrustGraph(R, TrustConfig(half_life=10.0, refresh=0.0))
    decaying.add(sign(ROOT, A, 0.5, NOW + 200), NOW)
    assert decaying.trust(A, NOW) == 0.5  # never amplified by an early clock


def test_a_non_finite_now_is_refused() -> None:
    g = graph((ROOT, A, 1.0))
    with pytest.raises(TrustError, match="finite"):
        g.score(A, math.nan)
    with pytest.raises(TrustError, match="finite"):
        g.add(sign(ROOT, B, 1.0), math.inf)


# --------------------------------------------------------------------------
# Replacing, revoking, replaying


def test_a_newer_statement_replaces_the_edge() -> None:
    g = graph((ROOT, A, 1.0))
    assert g.add(sign(ROOT, A, -1.0, NOW + 1), NOW)
    assert g.score(A, NOW) == 0.0
    assert len(g) == 1
    assert g.edges_of(R) == (sign(ROOT, A, -1.0, NOW + 1),)


def test_duplicates_and_older_statements() -> None:
    first = sign(ROOT, A, 1.0)
    g = graph()
    assert g.add(first, NOW)
    assert not g.add(first, NOW)
    assert not g.add(TrustStatement.from_bytes(first.to_bytes()), NOW)
    before = snapshot(g)
    with pytest.raises(InvalidTrustStatement, match="older than the one held"):
        g.add(sign(ROOT, A, 0.5, NOW - 1), NOW)
    with pytest.raises(InvalidTrustStatement, match="same time"):
        g.add(sign(ROOT, A, 0.5, NOW), NOW)
    assert snapshot(g) == before
    assert g.score(A, NOW) == 1.0


def test_a_bad_signature_leaves_the_graph_unchanged() -> None:
    g = graph((ROOT, A, 1.0))
    before = snapshot(g)
    good = sign(ROOT, B, 1.0)
    with pytest.raises(InvalidTrustStatement, match="does not verify"):
        g.add(replace(good, signature=bytes(64)), NOW)
    with pytest.raises(InvalidTrustStatement, match="does not verify"):
        g.add(replace(sign(ROOT, A, 1.0, NOW + 1), weight_milli=-1000), NOW)
    assert snapshot(g) == before
    assert g.score(B, NOW) == 0.5
    assert g.score(A, NOW) == 1.0


def test_revocation_returns_to_neutral_and_forgets_the_dids() -> None:
    trusted = sign(ROOT, A, 1.0)
    g = graph((ALICE, B, 1.0))
    g.add(trusted, NOW)
    assert g.score(B, NOW) == pytest.approx(0.9)
    assert (len(g), g.node_count) == (2, 3)
    assert g.add(sign(ROOT, A, 0, NOW + 1), NOW)
    assert (g.score(A, NOW), g.score(B, NOW), len(g), g.node_count) == (0.5, 0.5, 1, 2)
    assert R not in g
    assert g.add(sign(ALICE, B, 0, NOW + 1), NOW)
    assert (len(g), g.node_count) == (0, 0)
    assert g.revocation_count() == 2
    with pytest.raises(InvalidTrustStatement, match="older than the one held"):
        g.add(trusted, NOW)  # a replay of the revoked statement
    assert g.add(sign(ROOT, A, 0.5, NOW + 2), NOW)
    assert g.score(A, NOW) == pytest.approx(0.75)
    assert g.revocation_count() == 1


def test_a_revocation_of_an_unknown_edge_is_remembered() -> None:
    g = graph()
    assert g.add(sign(ROOT, A, 0, NOW), NOW)
    assert (len(g), g.node_count) == (0, 0)
    assert not g.add(sign(ROOT, A, 0, NOW), NOW)
    with pytest.raises(InvalidTrustStatement, match="older"):
        g.add(sign(ROOT, A, 1.0, NOW - 10), NOW)


def test_forgotten_revocations_still_block_older_statements() -> None:
    g = graph(config=replace(STATIC, max_revocations=1))
    g.add(sign(ROOT, A, 0, NOW), NOW)
    g.add(sign(ROOT, B, 0, NOW + 1), NOW)
    assert g.revocation_count() == 1
    with pytest.raises(InvalidTrustStatement, match="max_revocations"):
        g.add(sign(ROOT, A, 1.0, NOW - 1), NOW)
    assert g.add(sign(ROOT, A, 1.0, NOW + 2), NOW)


def test_statements_rebuild_the_same_graph() -> None:
    g = graph((ROOT, A, 0.9), (ALICE, B, 0.5), (BOB, C, -0.6), (ROOT, D, 0.3))
    g.add(sign(ROOT, D, 0, NOW + 1), NOW)
    copy = TrustGraph(R, STATIC)
    for statement in g.statements():
        copy.add(statement, NOW)
    assert snapshot(copy) == snapshot(g)
    assert copy.revocation_count() == 1
    for did in (A, B, C, D, E):
        assert copy.score(did, NOW) == g.score(did, NOW)
    assert g.held(R, D) == sign(ROOT, D, 0, NOW + 1)
    assert g.edges_to(B) == (sign(ALICE, B, 0.5),)


# --------------------------------------------------------------------------
# Bounds


def test_max_nodes_is_enforced_and_the_graph_left_unchanged() -> None:
    g = graph((ROOT, A, 1.0), config=replace(STATIC, max_nodes=3))
    g.add(sign(ALICE, B, 1.0), NOW)
    before = snapshot(g)
    with pytest.raises(TrustGraphFull, match=r"holds 3 DIDs \(max_nodes\)"):
        g.add(sign(ROOT, C, 1.0), NOW)
    with pytest.raises(TrustGraphFull, match="max_nodes"):
        g.add(sign(CAROL, DAVE.did_text, 1.0), NOW)
    assert snapshot(g) == before
    assert g.score(C, NOW) == 0.5
    assert g.add(sign(BOB, A, 0.5), NOW)  # edges between known DIDs still fit
    assert g.add(sign(ALICE, B, 0, NOW + 1), NOW)  # revocations always do
    assert g.add(sign(BOB, A, 0, NOW + 1), NOW)
    assert g.node_count == 2  # B left the graph: room for C
    assert g.add(sign(ROOT, C, 1.0), NOW)
    assert g.node_count == 3


def test_max_edges_per_node_is_enforced_and_the_graph_left_unchanged() -> None:
    g = graph((ROOT, A, 1.0), (ROOT, B, 1.0), config=replace(STATIC, max_edges_per_node=2))
    before = snapshot(g)
    with pytest.raises(TrustGraphFull, match=r"already asserts 2 edges \(max_edges_per_node\)"):
        g.add(sign(ROOT, C, 1.0), NOW)
    assert snapshot(g) == before
    assert g.add(sign(ROOT, A, 0.5, NOW + 1), NOW)  # replacing is not adding
    assert g.add(sign(ROOT, A, 0, NOW + 2), NOW)
    assert g.add(sign(ROOT, C, 1.0), NOW)  # room again


def test_a_bound_refusal_keeps_the_revocation() -> None:
    g = graph((ROOT, A, 1.0), config=replace(STATIC, max_edges_per_node=1))
    g.add(sign(ROOT, B, 0), NOW)
    with pytest.raises(TrustGraphFull):
        g.add(sign(ROOT, B, 1.0, NOW + 1), NOW)
    assert g.held(R, B) == sign(ROOT, B, 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_hops", 0),
        ("max_hops", 4),
        ("max_hops", True),
        ("hop_decay", 0.0),
        ("hop_decay", 1.5),
        ("hop_decay", math.nan),
        ("half_life", 0.0),
        ("half_life", -1.0),
        ("neutral", 1.5),
        ("max_nodes", 1),
        ("max_nodes", 2.5),
        ("max_edges_per_node", 0),
        ("refresh", -1.0),
        ("max_clock_skew", math.inf),
        ("max_revocations", -1),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"TrustConfig.{field}"):
        TrustConfig(**{field: value})  # type: ignore[arg-type]


def test_good_config_edges_are_accepted() -> None:
    assert TrustConfig(half_life=math.inf, refresh=math.inf, hop_decay=1.0, max_hops=1).max_hops
    with pytest.raises(InvalidDid):
        TrustGraph("not a did")
