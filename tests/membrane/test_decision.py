"""Deciding requests: every check allows and denies, boundaries are
defined, quota is consumed only on allow, and explain() agrees with
decide() on random policies and request sequences."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.core.link.envelope import Request
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError
from l2session.identity.identity import Identity
from l2session.membrane.decision import (
    ALLOWED,
    CONSTRAINT,
    GRANT,
    TRUST,
    Decision,
    Explanation,
    QuotaLedger,
    Step,
    decide,
    explain,
)
from l2session.membrane.policy import (
    Condition,
    Expires,
    Grant,
    MaxUnits,
    MemberOf,
    MembranePolicy,
    MinTrust,
    Quota,
)

ANNA, BEN, CHRIS = (Identity.generate(SeededRandom(i)).did_text for i in range(1, 4))
#: 2027-01-15T08:00:00Z, a whole hour (so hourly windows start here).
NOW = 1_800_000_000.0
HOUR = 3600.0


def grant(
    index: int,
    resource: str = "service://payment",
    actions: str = "call",
    peers: str = "*",
    *conditions: Condition,
    id: str | None = None,
) -> Grant:
    return Grant(
        index,
        frozenset(peers.split()),
        resource,
        frozenset(actions.split()),
        tuple(conditions),
        id=id,
    )


def policy(*grants: Grant, **kwargs: object) -> MembranePolicy:
    return MembranePolicy(grants, **kwargs)  # type: ignore[arg-type]


CALL = Request("call", "service://payment")


def call(units: int) -> Request:
    return Request("call", "service://payment", units)


def both(
    p: MembranePolicy,
    request: Request = CALL,
    *,
    peer: str = ANNA,
    trust: float = 0.9,
    now: float = NOW,
    ledger: QuotaLedger | None = None,
) -> Decision:
    """decide(), after checking that explain() predicts it exactly."""
    ledger = QuotaLedger() if ledger is None else ledger
    predicted = explain(p, peer, request, trust, now, ledger)
    decided = decide(p, peer, request, trust, now, ledger)
    assert predicted.decision == decided
    assert predicted.steps[-1] == Step("decision", decided.allowed, decided.reason)
    return decided


# --------------------------------------------------------------------------
# 1. Trust


def test_policy_trust_minimum_denies_first_with_step_trust() -> None:
    p = policy(grant(1), constraints=(MinTrust(0.5),))
    denied = both(p, trust=0.31)
    assert denied == Decision(False, "trust 0.31 is below the policy's minimum 0.5", TRUST)
    assert both(p, trust=0.5).allowed  # exactly the minimum passes
    assert both(p, trust=0.51).allowed


def test_trust_is_checked_before_anything_else() -> None:
    # No grant at all, yet the refusal is about trust: an untrusted peer
    # learns nothing about which grants exist.
    p = policy(constraints=(MinTrust(0.5),))
    assert both(p, trust=0.1).step == TRUST


def test_nan_trust_never_passes() -> None:
    p = policy(grant(1, "service://payment", "call", "*", MinTrust(0.1)))
    assert not both(p, trust=math.nan).allowed
    q = policy(grant(1), constraints=(MinTrust(0.1),))
    assert both(q, trust=math.nan).step == TRUST


def test_close_trust_values_are_shown_apart() -> None:
    p = policy(grant(1), constraints=(MinTrust(0.5),))
    reason = both(p, trust=0.4999999).reason
    assert reason == "trust 0.4999999 is below the policy's minimum 0.5"


# --------------------------------------------------------------------------
# 2. The grant


def test_no_grant_names_request_and_peer() -> None:
    p = policy(grant(1, "chapter://berlin", "read"))
    denied = both(p, Request("write", "chapter://x"))
    assert denied == Decision(False, f"no grant allows write chapter://x to {ANNA}", GRANT)


def test_allowed_by_names_the_grant() -> None:
    p = policy(grant(1, "feed://my-channel", "read", id="public-feed"), grant(2))
    assert both(p, Request("read", "feed://my-channel/x")) == Decision(
        True, "allowed by grant 'public-feed'", ALLOWED, "public-feed"
    )
    assert both(p) == Decision(True, "allowed by grant #2", ALLOWED, "grant #2")


# --------------------------------------------------------------------------
# 3. Policy-wide constraints


def test_policy_expiry_is_exclusive() -> None:
    p = policy(grant(1), expiry=NOW)
    assert both(p, now=NOW - 0.001).allowed
    denied = both(p, now=NOW)
    assert denied == Decision(False, "policy expired at 2027-01-15T08:00:00Z", CONSTRAINT)
    assert not both(p, now=NOW + 1).allowed


def test_expires_constraint_acts_like_the_policy_expiry() -> None:
    p = policy(grant(1), constraints=(Expires(NOW),), expiry=NOW + 100)
    assert both(p, now=NOW).reason == "policy expired at 2027-01-15T08:00:00Z"
    assert both(p, now=NOW - 1).allowed


def test_policy_max_units() -> None:
    p = policy(grant(1), constraints=(MaxUnits(10),))
    assert both(p, call(10)).allowed
    denied = both(p, call(11))
    assert denied == Decision(
        False, "request asks 11 units, more than the policy's maximum of 10", CONSTRAINT
    )


def test_policy_constraints_come_after_the_grant_match() -> None:
    p = policy(grant(1), expiry=NOW - 1)
    assert both(p, Request("read", "feed://x")).step == GRANT
    assert both(p).step == CONSTRAINT


def test_nan_clock_never_passes_an_expiry() -> None:
    assert not both(policy(grant(1), expiry=NOW), now=math.nan).allowed
    assert not both(
        policy(grant(1, "service://payment", "call", "*", Expires(NOW))), now=math.nan
    ).allowed


# --------------------------------------------------------------------------
# 3. Grant conditions


def test_member_of_allows_members_only() -> None:
    p = policy(
        grant(1, "chapter://berlin/proposals", "write", "*", MemberOf("berlin")),
        groups={"berlin": [ANNA]},
    )
    write = Request("write", "chapter://berlin/proposals")
    assert both(p, write, peer=ANNA).allowed
    assert both(p, write, peer=BEN) == Decision(
        False, "peer is not a member of group 'berlin'", CONSTRAINT, "grant #1"
    )
    assert both(p.with_members("berlin", [BEN]), write, peer=BEN).allowed


def test_grant_expiry_is_exclusive() -> None:
    expires = 1_798_761_599.0  # 2026-12-31T23:59:59Z
    p = policy(
        grant(1, "service://other"),
        grant(2, "feed://x", "read"),
        grant(3, "service://payment", "call", "*", Expires(expires)),
    )
    assert both(p, now=expires - 0.5) == Decision(True, "allowed by grant #3", ALLOWED, "grant #3")
    assert both(p, now=expires) == Decision(
        False, "grant #3 expired at 2026-12-31T23:59:59Z", CONSTRAINT, "grant #3"
    )


def test_grant_min_trust_boundary() -> None:
    p = policy(grant(1, "service://payment", "call", "*", MinTrust(0.6), id="pay"))
    assert both(p, trust=0.6).allowed
    assert both(p, trust=0.59) == Decision(
        False, "trust 0.59 is below the minimum 0.6 of grant 'pay'", CONSTRAINT, "pay"
    )


def test_conditions_are_reported_in_check_order() -> None:
    # Expired and below trust and not a member: the expiry is reported.
    p = policy(
        grant(1, "service://payment", "call", "*", MemberOf("g"), MinTrust(0.9), Expires(NOW)),
        groups={"g": []},
    )
    assert both(p, trust=0.1).reason.startswith("grant #1 expired")


# --------------------------------------------------------------------------
# Quota


def quota_policy(units: int = 100, window: float = HOUR) -> MembranePolicy:
    return policy(grant(1, "service://payment", "call", "*", Quota(units, window), id="pay"))


def test_quota_is_exhausted_then_resets_at_the_next_window() -> None:
    p = quota_policy()
    ledger = QuotaLedger()
    assert both(p, call(60), ledger=ledger).allowed
    assert both(p, call(40), now=NOW + 10, ledger=ledger).allowed  # exactly 100
    denied = both(p, call(5), now=NOW + 48 * 60, ledger=ledger)
    assert denied == Decision(
        False,
        "quota of 100 units per 1h used up (100 used, 5 asked; resets in 12m)",
        CONSTRAINT,
        "pay",
    )
    assert not both(p, call(1), now=NOW + HOUR - 0.001, ledger=ledger).allowed
    assert both(p, call(100), now=NOW + HOUR, ledger=ledger).allowed  # a fresh window
    assert ledger.used(p.grants[0], ANNA, NOW + HOUR) == 100


def test_quota_that_would_be_exceeded_says_so() -> None:
    ledger = QuotaLedger()
    p = quota_policy()
    both(p, call(98), ledger=ledger)
    assert both(p, call(5), ledger=ledger).reason == (
        "quota of 100 units per 1h would be exceeded (98 used, 5 asked; resets in 1h)"
    )
    assert both(p, call(2), ledger=ledger).allowed


def test_a_request_larger_than_the_quota() -> None:
    assert both(quota_policy(10), call(11)).reason == (
        "11 units asked exceed the quota of 10 units per 1h"
    )


def test_quota_is_per_peer() -> None:
    p = quota_policy(3)
    ledger = QuotaLedger()
    assert both(p, call(3), peer=ANNA, ledger=ledger).allowed
    assert not both(p, call(1), peer=ANNA, ledger=ledger).allowed
    assert both(p, call(3), peer=BEN, ledger=ledger).allowed
    assert ledger.used(p.grants[0], ANNA, NOW) == 3
    assert ledger.used(p.grants[0], BEN, NOW) == 3


def test_quota_is_consumed_only_when_the_decision_allows() -> None:
    p = policy(
        grant(1, "service://payment", "call", "*", Quota(10, HOUR), MemberOf("g")),
        groups={"g": []},
    )
    ledger = QuotaLedger()
    assert not both(p, call(5), ledger=ledger).allowed
    assert ledger.size == 0
    limited = policy(
        grant(1, "service://payment", "call", "*", Quota(10, HOUR)), constraints=(MaxUnits(4),)
    )
    assert not both(limited, call(5), ledger=ledger).allowed
    assert ledger.size == 0


def test_quota_is_consumed_only_on_the_allowing_grant() -> None:
    general = grant(1, "service://", "call", "*", Quota(100, HOUR), id="general")
    specific = grant(2, "service://payment", "call", "*", Quota(5, HOUR), id="specific")
    p = policy(general, specific)
    ledger = QuotaLedger()
    assert both(p, call(5), ledger=ledger).grant == "specific"
    # The specific grant's quota is used up; the general grant allows, and
    # only its counter moves.
    assert both(p, call(3), ledger=ledger).grant == "general"
    assert ledger.used(specific, ANNA, NOW) == 5
    assert ledger.used(general, ANNA, NOW) == 3


def test_explain_consumes_nothing() -> None:
    p = quota_policy(10)
    ledger = QuotaLedger()
    decide(p, ANNA, call(4), 0.9, NOW, ledger)
    for _ in range(5):
        assert explain(p, ANNA, call(4), 0.9, NOW, ledger).allowed
    assert ledger.used(p.grants[0], ANNA, NOW) == 4


# --------------------------------------------------------------------------
# Several grants


def test_most_specific_grant_that_passes_allows() -> None:
    p = policy(
        grant(1, "chapter://berlin", "write", "*", id="open"),
        grant(2, "chapter://berlin/proposals", "write", "*", MemberOf("berlin"), id="members"),
        groups={"berlin": [ANNA]},
    )
    write = Request("write", "chapter://berlin/proposals/1")
    assert both(p, write, peer=ANNA).grant == "members"
    assert both(p, write, peer=BEN).grant == "open"


def test_when_no_grant_passes_the_most_specific_explains_why() -> None:
    p = policy(
        grant(1, "chapter://berlin", "write", "*", MinTrust(0.95), id="trusted"),
        grant(2, "chapter://berlin/proposals", "write", "*", MemberOf("berlin"), id="members"),
        groups={"berlin": [ANNA]},
    )
    denied = both(p, Request("write", "chapter://berlin/proposals/1"), peer=BEN, trust=0.5)
    assert denied == Decision(
        False, "peer is not a member of group 'berlin'", CONSTRAINT, "members"
    )


def test_conditions_read_the_current_membership() -> None:
    p = policy(
        grant(1, "chapter://berlin", "write", "group:berlin"),
        groups={"berlin": []},
    )
    write = Request("write", "chapter://berlin")
    assert both(p, write).step == GRANT
    assert both(p.with_members("berlin", [ANNA]), write).allowed


# --------------------------------------------------------------------------
# The ledger


def test_a_full_ledger_refuses_new_peers_but_serves_known_ones() -> None:
    p = quota_policy(10, 60)
    ledger = QuotaLedger(max_entries=2)
    assert both(p, call(1), peer=ANNA, ledger=ledger).allowed
    assert both(p, call(1), peer=BEN, ledger=ledger).allowed
    full = both(p, call(1), peer=CHRIS, now=NOW + 30, ledger=ledger)
    assert not full.allowed
    assert full.reason.startswith("quota ledger full (2 counters)")
    assert both(p, call(1), peer=ANNA, now=NOW + 30, ledger=ledger).allowed
    assert ledger.size == 2
    # Once the window ends the old counters are forgotten to make room.
    assert both(p, call(1), peer=CHRIS, now=NOW + 60, ledger=ledger).allowed
    assert ledger.size == 1


def test_ledger_api() -> None:
    p = quota_policy(10, 60)
    pay = p.grants[0]
    free = grant(2)
    ledger = QuotaLedger()
    assert ledger.max_entries == 100_000
    assert ledger  # truthy even when empty: safe with `ledger or QuotaLedger()`
    assert ledger.remaining(pay, ANNA, NOW) == 10
    ledger.consume(pay, ANNA, 4, NOW + 1)
    assert (ledger.used(pay, ANNA, NOW + 59), ledger.remaining(pay, ANNA, NOW + 59)) == (4, 6)
    assert ledger.used(pay, ANNA, NOW + 60) == 0
    assert ledger.resets_at(pay, NOW + 1) == NOW + 60
    assert ledger.used(free, ANNA, NOW) == 0
    assert ledger.remaining(free, ANNA, NOW) == 1_000_000
    ledger.consume(pay, ANNA, 10, NOW + 60)  # a new window: counted afresh
    assert ledger.used(pay, ANNA, NOW + 61) == 10
    ledger.clear()
    assert ledger.size == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((2, ANNA, 1, NOW), "has no quota"),
        ((1, ANNA, 0, NOW), "units must be"),
        ((1, ANNA, 11, NOW), "exceed"),
        ((1, ANNA, 1, math.nan), "finite"),
        ((1, ANNA, 1, math.inf), "finite"),
    ],
)
def test_ledger_refuses_misuse(args: tuple[int, str, int, float], message: str) -> None:
    p = policy(grant(1, "service://payment", "call", "*", Quota(10, 60)), grant(2, "feed://x"))
    index, peer, units, now = args
    ledger = QuotaLedger()
    with pytest.raises(ConfigError, match=message):
        ledger.consume(p.grants[index - 1], peer, units, now)
    assert ledger.size == 0


def test_ledger_refuses_overuse_and_a_full_ledger() -> None:
    pay = quota_policy(10).grants[0]
    ledger = QuotaLedger(max_entries=1)
    ledger.consume(pay, ANNA, 8, NOW)
    with pytest.raises(ConfigError, match="8 \\+ 3 units exceed"):
        ledger.consume(pay, ANNA, 3, NOW)
    with pytest.raises(ConfigError, match="quota ledger full"):
        ledger.consume(pay, BEN, 1, NOW)
    with pytest.raises(ConfigError, match="max_entries"):
        QuotaLedger(0)
    with pytest.raises(ConfigError, match="has no quota"):
        QuotaLedger.resets_at(grant(1), NOW)


def test_a_changed_window_starts_a_fresh_count() -> None:
    ledger = QuotaLedger()
    hourly = quota_policy(10, HOUR).grants[0]
    daily = quota_policy(10, 86_400).grants[0]  # same name "pay", reloaded
    ledger.consume(hourly, ANNA, 10, NOW)
    assert ledger.used(daily, ANNA, NOW) == 0
    ledger.consume(daily, ANNA, 10, NOW)
    assert ledger.used(daily, ANNA, NOW) == 10


def test_ledger_keys_by_grant_name_so_reloads_keep_counts() -> None:
    ledger = QuotaLedger()
    before = policy(grant(1, "service://payment", "call", "*", Quota(10, HOUR), id="pay"))
    after = policy(
        grant(1, "feed://x", "read", id="feed"),
        grant(2, "service://payment", "call", "*", Quota(10, HOUR), id="pay"),
    )
    assert both(before, call(10), ledger=ledger).allowed
    assert not both(after, call(1), ledger=ledger).allowed


# --------------------------------------------------------------------------
# explain()


def test_explain_narrates_every_check() -> None:
    p = policy(
        grant(1, "service://", "call", "*", id="any-service"),
        grant(
            2,
            "service://payment",
            "call",
            "*",
            Quota(100, HOUR),
            MinTrust(0.6),
            Expires(1_798_761_599),
            id="pay",
        ),
        constraints=(MinTrust(0.5), MaxUnits(1000)),
        expiry=NOW + 86_400,
    )
    ledger = QuotaLedger()
    decide(p, ANNA, call(37), 0.72, NOW - 12 * 60, ledger)
    explanation = explain(p, ANNA, call(5), 0.72, NOW - 12 * 60, ledger)
    assert isinstance(explanation, Explanation)
    lines = str(explanation).splitlines()
    assert lines == [
        "✓ trust: trust 0.72 meets the policy's minimum 0.5",
        "✓ grant: grant 'pay': call service://payment for * matches",
        "✓ grant: grant 'any-service': call service:// for * matches",
        "✓ policy expires: policy valid until 2027-01-16T08:00:00Z (1d 12m left)",
        "✓ policy max_units: 5 units within the policy's maximum of 1000 per request",
        "✗ grant 'pay' expires: grant 'pay' expired at 2026-12-31T23:59:59Z",
        "✓ grant 'pay' min_trust: trust 0.72 meets the minimum 0.6 of grant 'pay'",
        "✓ grant 'pay' quota: quota of 100 units per 1h: 0 used, 5 asked, 95 left after this "
        "(resets in 12m)",
        "✓ grant 'any-service': no conditions",
        "✓ decision: allowed by grant 'any-service'",
    ]
    assert explanation.allowed
    assert explanation.reason == "allowed by grant 'any-service'"


def test_explain_points_at_near_misses() -> None:
    p = policy(
        grant(1, "chapter://berlin", "read"),
        grant(2, "chapter://berlin/proposals", "write", "group:berlin"),
        groups={"berlin": [BEN]},
    )
    explanation = explain(
        p, ANNA, Request("write", "chapter://berlin/proposals"), 1.0, NOW, QuotaLedger()
    )
    assert [str(step) for step in explanation.steps[1:]] == [
        f"✗ grant: no grant allows write chapter://berlin/proposals to {ANNA}",
        "✗ grant: grant #2 on chapter://berlin/proposals is for group:berlin, "
        "which does not include this peer",
        "✗ grant: grant #1 on chapter://berlin allows read, not write",
        f"✗ decision: no grant allows write chapter://berlin/proposals to {ANNA}",
    ]


def test_explain_without_a_trust_minimum() -> None:
    explanation = explain(policy(grant(1)), ANNA, CALL, 0.25, NOW, QuotaLedger())
    assert explanation.steps[0] == Step("trust", True, "trust 0.25; the policy sets no minimum")


# --------------------------------------------------------------------------
# decide() == explain(), on random policies and request sequences

DIDS = (ANNA, BEN, CHRIS)
resources = st.builds(
    lambda scheme, segments: f"{scheme}://" + "/".join(segments),
    st.sampled_from(("a", "b")),
    st.lists(st.sampled_from(("x", "y")), max_size=3),
)
conditions = st.lists(
    st.one_of(
        st.builds(MemberOf, st.sampled_from(("g1", "g2"))),
        st.builds(Quota, st.integers(1, 6), st.sampled_from((1.0, 5.0, 10.0))),
        st.builds(Expires, st.floats(NOW, NOW + 20)),
        st.builds(MinTrust, st.sampled_from((0.0, 0.3, 0.5, 0.7, 1.0))),
    ),
    max_size=4,
    unique_by=type,
)


@st.composite
def policies(draw: st.DrawFn) -> MembranePolicy:
    count = draw(st.integers(0, 8))
    grants = [
        Grant(
            i,
            frozenset(
                draw(
                    st.lists(
                        st.sampled_from((*DIDS, "*", "group:g1", "group:g2")),
                        min_size=1,
                        max_size=2,
                    )
                )
            ),
            draw(resources),
            frozenset(
                draw(st.lists(st.sampled_from(("read", "call", "*")), min_size=1, max_size=2))
            ),
            tuple(draw(conditions)),
        )
        for i in range(1, count + 1)
    ]
    constraints = draw(
        st.lists(
            st.one_of(
                st.builds(MinTrust, st.sampled_from((0.2, 0.5))),
                st.builds(MaxUnits, st.integers(1, 4)),
                st.builds(Expires, st.floats(NOW + 10, NOW + 30)),
            ),
            max_size=3,
            unique_by=type,
        )
    )
    groups = {name: draw(st.frozensets(st.sampled_from(DIDS))) for name in ("g1", "g2")}
    expiry = draw(st.none() | st.floats(NOW + 5, NOW + 30))
    return MembranePolicy(tuple(grants), tuple(constraints), expiry, groups)


requests = st.tuples(
    st.sampled_from(DIDS),
    st.builds(Request, st.sampled_from(("read", "call", "write")), resources, st.integers(1, 5)),
    st.sampled_from((0.0, 0.2, 0.3, 0.5, 0.7, 1.0, math.nan)),
    st.floats(0, 3),  # seconds since the previous request
)


@settings(max_examples=300, deadline=None)
@given(policies(), st.lists(requests, max_size=25), st.integers(1, 4))
def test_explain_always_agrees_with_decide(
    p: MembranePolicy,
    sequence: list[tuple[str, Request, float, float]],
    max_entries: int,
) -> None:
    ledger = QuotaLedger(max_entries=max_entries)
    now = NOW
    for peer, request, trust, step in sequence:
        now += step
        before = {(g.name, d): ledger.used(g, d, now) for g in p.grants for d in DIDS}
        predicted = explain(p, peer, request, trust, now, ledger)
        assert {(g.name, d): ledger.used(g, d, now) for g in p.grants for d in DIDS} == before
        decided = decide(p, peer, request, trust, now, ledger)
        assert predicted.decision == decided
        assert decided.step in (TRUST, GRANT, CONSTRAINT, ALLOWED)
        assert (decided.step == ALLOWED) is decided.allowed
        assert "\n" not in decided.reason
        after = {(g.name, d): ledger.used(g, d, now) for g in p.grants for d in DIDS}
        changed = {key for key in before if after[key] != before[key]}
        allowing = p.grant_named(decided.grant) if decided.allowed and decided.grant else None
        if allowing is not None and allowing.quota is not None:
            key = (allowing.name, peer)
            assert changed == {key}
            assert after[key] == before[key] + request.units
        else:
            assert changed == set()
