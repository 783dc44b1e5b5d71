"""The policy model: conditions, grants, the policy and its matching index.

The index is checked against a brute-force scan written independently of
it (segment lists, not the index's prefix walk) over random policies.
"""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.core.link.envelope import MAX_UNITS, Request
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError, PolicyError
from l2session.identity.identity import Identity
from l2session.membrane import policy as policy_module
from l2session.membrane.policy import (
    MAX_TIMESTAMP,
    Expires,
    Grant,
    MaxUnits,
    MemberOf,
    MembranePolicy,
    MinTrust,
    Quota,
    format_span,
    format_time,
    format_window,
    name_problem,
    normalize_resource,
    peer_problem,
)

ANNA, BEN, CHRIS, DANA = (Identity.generate(SeededRandom(i)).did_text for i in range(1, 5))


def grant(
    index: int,
    resource: str,
    actions: str = "read",
    peers: str = "*",
    *conditions: MemberOf | Quota | Expires | MinTrust,
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


def names(grants: list[Grant]) -> list[str]:
    return [g.name for g in grants]


# --------------------------------------------------------------------------
# Conditions


def test_conditions_hold_their_values() -> None:
    assert Quota(100, 3600).window == 3600.0
    assert isinstance(Quota(100, 3600).window, float)
    assert Expires(1_800_000_000).at == 1_800_000_000.0
    assert MinTrust(1).score == 1.0
    assert MaxUnits(MAX_UNITS).units == MAX_UNITS
    assert MemberOf("berlin").group == "berlin"
    assert str(Quota(100, 3600)) == "100 units per 1h"
    assert str(MemberOf("berlin")) == "member of group 'berlin'"
    assert str(Expires(0)) == "expires 1970-01-01T00:00:00Z"
    assert str(MinTrust(0.5)) == "trust at least 0.5"
    assert str(MaxUnits(7)) == "at most 7 units per request"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Quota(0, 60), "quota units"),
        (lambda: Quota(MAX_UNITS + 1, 60), "quota units"),
        (lambda: Quota(True, 60), "quota units"),
        (lambda: Quota(1.0, 60), "quota units"),  # type: ignore[arg-type]
        (lambda: Quota(5, 0.5), "quota window"),
        (lambda: Quota(5, math.nan), "quota window"),
        (lambda: Quota(5, 367 * 86_400), "quota window"),
        (lambda: Quota(5, "1h"), "quota window"),  # type: ignore[arg-type]
        (lambda: Expires(-1), "expiry"),
        (lambda: Expires(math.inf), "expiry"),
        (lambda: Expires(MAX_TIMESTAMP + 1), "expiry"),
        (lambda: MinTrust(-0.01), "minimum trust"),
        (lambda: MinTrust(1.01), "minimum trust"),
        (lambda: MinTrust(math.nan), "minimum trust"),
        (lambda: MinTrust(False), "minimum trust"),
        (lambda: MaxUnits(0), "max_units"),
        (lambda: MemberOf("has space"), "member_of"),
        (lambda: MemberOf(""), "member_of"),
    ],
)
def test_invalid_conditions_are_refused(build: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()  # type: ignore[operator]


def test_conditions_are_frozen() -> None:
    quota = Quota(1, 60)
    with pytest.raises(FrozenInstanceError):
        quota.units = 2  # type: ignore[misc]


# --------------------------------------------------------------------------
# Display helpers


def test_format_time_writes_utc_like_the_policy_file() -> None:
    assert format_time(1_798_761_599) == "2026-12-31T23:59:59Z"
    assert format_time(1.5) == "1970-01-01T00:00:01.500000Z"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30s"),
        (60, "1m"),
        (90, "90s"),
        (5400, "90m"),
        (3600, "1h"),
        (86_400, "1d"),
        (1.5, "1.5s"),
    ],
)
def test_format_window_is_exact(seconds: float, text: str) -> None:
    assert format_window(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "1s"),
        (45, "45s"),
        (690, "11m 30s"),
        (720, "12m"),
        (3600, "1h"),
        (3661, "1h 1m"),
        (7500, "2h 5m"),
        (3 * 86_400 + 4 * 3600 + 5, "3d 4h"),
    ],
)
def test_format_span_shows_two_units(seconds: float, text: str) -> None:
    assert format_span(seconds) == text


@pytest.mark.parametrize(
    ("resource", "normal"),
    [
        ("chapter://berlin", "chapter://berlin"),
        ("chapter://berlin/", "chapter://berlin"),
        ("chapter://berlin//", "chapter://berlin"),
        ("feed://", "feed://"),
        ("feed:///", "feed://"),
        ("chapter://berlin%2Fproposals", "chapter://berlin/proposals"),
    ],
)
def test_normalize_resource(resource: str, normal: str) -> None:
    assert normalize_resource(resource) == normal


def test_normalize_resource_refuses_what_resource_problem_refuses() -> None:
    with pytest.raises(ConfigError, match="empty segment"):
        normalize_resource("a://x//y")


def test_name_and_peer_rules() -> None:
    assert name_problem("guests.2027") is None
    assert name_problem("a b") is not None
    assert name_problem("-x") is not None
    assert name_problem("x" * 65) is not None
    assert peer_problem("*") is None
    assert peer_problem("group:berlin") is None
    assert peer_problem(ANNA) is None
    assert "group name" in (peer_problem("group:") or "")
    assert "not a DID" in (peer_problem("anna") or "")
    assert "string" in (peer_problem(7) or "")


# --------------------------------------------------------------------------
# Grants


def test_grant_names_and_labels() -> None:
    unnamed = grant(3, "feed://x")
    named = grant(4, "feed://x", id="public-feed")
    assert (unnamed.name, unnamed.label) == ("grant #3", "grant #3")
    assert (named.name, named.label) == ("public-feed", "grant 'public-feed'")
    assert unnamed.allow_reason == "allowed by grant #3"
    assert named.summary() == "grant 'public-feed': read feed://x for *"


def test_grant_normalizes_and_derives() -> None:
    g = grant(
        1,
        "chapter://berlin/",
        "read *",
        f"{ANNA} group:berlin",
        Quota(5, 60),
        MemberOf("berlin"),
        Expires(10),
        MinTrust(0.5),
    )
    assert g.resource == "chapter://berlin"
    assert g.any_action
    assert not g.any_peer
    assert g.peer_dids == {ANNA}
    assert g.peer_groups == ("berlin",)
    # Conditions are kept in the order they are checked: stateful quota last.
    assert [type(c) for c in g.conditions] == [Expires, MinTrust, MemberOf, Quota]
    assert (g.expires, g.min_trust, g.member_of, g.quota) == (10.0, 0.5, "berlin", Quota(5, 60))


def test_grants_compare_by_meaning_not_provenance() -> None:
    a = Grant(1, frozenset({"*"}), "feed://x/", frozenset({"read"}), line=3)
    b = Grant(1, frozenset({"*"}), "feed://x", frozenset({"read"}), line=9)
    assert a == b
    assert hash(a) == hash(b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": 0}, "index"),
        ({"peers": frozenset()}, "peers: empty"),
        ({"peers": "*"}, "peers: expected a set"),
        ({"peers": frozenset({"anna"})}, "not a DID"),
        ({"peers": frozenset({"group:bad name"})}, "group name"),
        ({"actions": frozenset()}, "actions: empty"),
        ({"actions": frozenset({"Read"})}, "action 'Read'"),
        ({"resource": "no-scheme"}, "resource"),
        ({"resource": "Feed://x"}, "resource"),
        ({"id": "has space"}, "id"),
        ({"conditions": (Quota(1, 60), Quota(2, 60))}, "more than one Quota"),
        ({"conditions": (MaxUnits(3),)}, "is not MemberOf"),
    ],
)
def test_invalid_grants_are_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "index": 1,
        "peers": frozenset({"*"}),
        "resource": "feed://x",
        "actions": frozenset({"read"}),
    }
    fields.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        Grant(**fields)  # type: ignore[arg-type]


def test_too_many_peers_point_to_groups() -> None:
    peers = frozenset(f"did:example:{i}" for i in range(policy_module.MAX_PEERS_PER_GRANT + 1))
    with pytest.raises(ConfigError, match="use a group"):
        Grant(1, peers, "feed://x", frozenset({"read"}))


@pytest.mark.parametrize(
    ("prefix", "resource", "covered"),
    [
        ("chapter://berlin", "chapter://berlin", True),
        ("chapter://berlin", "chapter://berlin/", True),
        ("chapter://berlin", "chapter://berlin/proposals", True),
        ("chapter://berlin", "chapter://berlin/proposals/7", True),
        ("chapter://berlin", "chapter://berlinale", False),
        ("chapter://berlin", "chapter://berlinale/x", False),
        ("chapter://berlin", "chapter://", False),
        ("chapter://berlin/", "chapter://berlin/x", True),
        ("chapter://berlin/proposals", "chapter://berlin", False),
        ("feed://", "feed://anything/at/all", True),
        ("feed://", "feed://", True),
        ("feed://", "feedx://a", False),
        ("feed://a", "feedx://a", False),
    ],
)
def test_prefixes_are_segment_aware(prefix: str, resource: str, covered: bool) -> None:
    g = grant(1, prefix)
    assert g.covers(resource) is covered
    matched = policy(g).matching(ANNA, Request("read", resource))
    assert (matched == [g]) is covered


def test_action_star_allows_any_action() -> None:
    p = policy(grant(1, "feed://x", "*"), grant(2, "feed://x", "read write"))
    assert names(p.matching(ANNA, Request("delete", "feed://x"))) == ["grant #1"]
    assert names(p.matching(ANNA, Request("write", "feed://x"))) == ["grant #1", "grant #2"]
    assert p.grants[0].allows_action("anything")


def test_peers_star_did_list_and_groups() -> None:
    p = policy(
        grant(1, "feed://x", "read", "*"),
        grant(2, "feed://x", "read", f"{ANNA} {BEN}"),
        grant(3, "feed://x", "read", "group:berlin"),
        grant(4, "feed://x", "read", f"{ANNA} group:berlin"),
        groups={"berlin": [BEN, CHRIS]},
    )
    read = Request("read", "feed://x")
    assert names(p.matching(ANNA, read)) == ["grant #1", "grant #2", "grant #4"]
    assert names(p.matching(BEN, read)) == ["grant #1", "grant #2", "grant #3", "grant #4"]
    assert names(p.matching(CHRIS, read)) == ["grant #1", "grant #3", "grant #4"]
    assert names(p.matching(DANA, read)) == ["grant #1"]
    assert p.admits(p.grants[3], BEN)
    assert not p.admits(p.grants[1], CHRIS)


def test_a_grant_reached_several_ways_comes_once() -> None:
    p = policy(
        grant(1, "feed://x", "read", f"{ANNA} group:a group:b"),
        grant(2, "feed://x", "read", "group:b"),
        grant(3, "feed://x", "read", f"* {ANNA}"),
        groups={"a": [ANNA], "b": [ANNA, BEN]},
    )
    read = Request("read", "feed://x")
    assert names(p.matching(ANNA, read)) == ["grant #1", "grant #2", "grant #3"]
    assert names(p.matching(BEN, read)) == ["grant #1", "grant #2", "grant #3"]
    assert names(p.matching(CHRIS, read)) == ["grant #3"]


def test_most_specific_first_then_file_order() -> None:
    p = policy(
        grant(1, "chapter://"),
        grant(2, "chapter://berlin/proposals"),
        grant(3, "chapter://berlin"),
        grant(4, "chapter://berlin/proposals/"),
        grant(5, "chapter://berlin/proposals/7/comments"),
        grant(6, "chapter://hamburg"),
    )
    found = p.matching(ANNA, Request("read", "chapter://berlin/proposals/7"))
    assert names(found) == ["grant #2", "grant #4", "grant #3", "grant #1"]
    assert names(p.covering("chapter://berlin/x")) == ["grant #3", "grant #1"]


def test_trailing_slashes_match_and_doubled_or_dot_segments_are_refused() -> None:
    p = policy(grant(1, "a://x"), grant(2, "a://x/y"), grant(3, "a://"))
    assert names(p.matching(ANNA, Request("read", "a://x/"))) == ["grant #1", "grant #3"]
    assert names(p.matching(ANNA, Request("read", "a://x/y/z"))) == [
        "grant #2",
        "grant #1",
        "grant #3",
    ]
    # A segment that resolves to "here" or "up" would escape a grant's
    # prefix (a://x/y/../secret is under a://x/y as text): refused outright.
    for escape in ("a://x/y/../z", "a://x/./y", "a://x/y/%2e%2E/z", "a://x/%2E", "a://x//y"):
        with pytest.raises(ConfigError, match="segment"):
            Request("read", escape)
    with pytest.raises(ConfigError, match="segment"):
        grant(4, "a://x/../y")


# --------------------------------------------------------------------------
# The policy


def test_policy_derives_its_constraints() -> None:
    p = policy(
        constraints=(MaxUnits(10), Expires(2_000), MinTrust(0.4)),
        expiry=1_000,
    )
    assert (p.min_trust, p.max_units, p.expires_at) == (0.4, 10, 1_000.0)
    assert [type(c) for c in p.constraints] == [Expires, MaxUnits, MinTrust]
    later = policy(constraints=(Expires(500),), expiry=1_000)
    assert later.expires_at == 500.0
    assert policy().expires_at is None
    assert policy().min_trust is None


def test_policies_compare_and_hash_by_value() -> None:
    a = policy(grant(1, "feed://x"), groups={"g": [ANNA]}, source="a.toml")
    b = policy(grant(1, "feed://x/"), groups={"g": frozenset({ANNA})}, source="b.toml")
    assert a == b
    assert hash(a) == hash(b)
    assert a != policy(grant(1, "feed://x"), groups={"g": [BEN]})


def test_policy_groups_are_read_only() -> None:
    p = policy(groups={"g": [ANNA]})
    with pytest.raises(TypeError):
        p.groups["h"] = frozenset()  # type: ignore[index]
    assert p.is_member(ANNA, "g")
    assert not p.is_member(ANNA, "nope")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: policy(grant(2, "feed://x")), "at position 1"),
        (
            lambda: policy(grant(1, "feed://x", id="dup"), grant(2, "feed://y", id="dup")),
            "already the id of grant #1",
        ),
        (lambda: policy(grant(1, "feed://x", "read", "group:nope")), "group 'nope'"),
        (lambda: policy(grant(1, "feed://x", "read", "*", MemberOf("nope"))), "group 'nope'"),
        (lambda: policy(groups={"g": ["not-a-did"]}), "group 'g'"),
        (lambda: policy(groups={"g": ANNA}), "expected a collection"),
        (lambda: policy(groups={"bad name": []}), "group name"),
        (lambda: policy(constraints=(MinTrust(0.1), MinTrust(0.2))), "more than one MinTrust"),
        (lambda: policy(constraints=(MemberOf("g"),), groups={"g": []}), "is not MinTrust"),
        (lambda: policy(expiry=-5), "policy expiry"),
        (lambda: policy("not a grant"), "is not a Grant"),  # type: ignore[arg-type]
    ],
)
def test_invalid_policies_are_refused(build: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        build()  # type: ignore[operator]
    assert caught.value.path == "<policy>"
    assert str(caught.value).startswith("<policy>")


def test_policy_errors_cite_the_grant_line() -> None:
    bad = Grant(1, frozenset({"group:nope"}), "feed://x", frozenset({"read"}), line=12)
    with pytest.raises(PolicyError) as caught:
        MembranePolicy((bad,), source="p.toml")
    assert str(caught.value).startswith("p.toml:12: grant #1 uses group 'nope'")
    assert (caught.value.line, caught.value.field) == (12, "grant[1]")


def test_bounds_are_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_module, "MAX_GRANTS", 3)
    monkeypatch.setattr(policy_module, "MAX_GROUPS", 2)
    monkeypatch.setattr(policy_module, "MAX_GROUP_MEMBERS", 3)
    four = [grant(i, "feed://x") for i in range(1, 5)]
    with pytest.raises(PolicyError, match="4 grants exceed the limit of 3"):
        MembranePolicy(tuple(four))
    with pytest.raises(PolicyError, match="3 groups exceed the limit of 2"):
        policy(groups={"a": [], "b": [], "c": []})
    with pytest.raises(PolicyError, match="4 members in all"):
        policy(groups={"a": [ANNA, BEN], "b": [CHRIS, DANA]})
    p = policy(groups={"a": [ANNA, BEN], "b": [CHRIS]})
    with pytest.raises(PolicyError, match="4 members in all"):
        p.with_members("b", [CHRIS, DANA])
    with pytest.raises(PolicyError, match="3 groups exceed"):
        p.with_members("c", [])


def test_grant_named() -> None:
    p = policy(grant(1, "feed://x", id="feed"), grant(2, "feed://y"))
    assert p.grant_named("feed") is p.grants[0]
    assert p.grant_named("grant #2") is p.grants[1]
    assert p.grant_named("nope") is None


# --------------------------------------------------------------------------
# Membership changes


def test_with_members_returns_a_new_policy_sharing_the_index() -> None:
    p = policy(
        grant(1, "chapter://berlin", "write", "group:berlin"),
        groups={"berlin": [ANNA], "other": [BEN]},
    )
    write = Request("write", "chapter://berlin/x")
    q = p.with_members("berlin", [ANNA, CHRIS])
    assert p.matching(CHRIS, write) == []
    assert names(q.matching(CHRIS, write)) == ["grant #1"]
    assert q.groups["other"] is p.groups["other"]
    assert q.grants is p.grants
    assert q._index is p._index
    assert q.with_members("berlin", []).matching(ANNA, write) == []
    assert q.with_members("new", [DANA]).groups["new"] == {DANA}


def test_with_members_validates_the_dids() -> None:
    p = policy(groups={"berlin": [ANNA]})
    with pytest.raises(PolicyError, match="group 'berlin'"):
        p.with_members("berlin", [ANNA, "did:bad"])
    with pytest.raises(PolicyError, match="group name"):
        p.with_members("bad name", [ANNA])


# --------------------------------------------------------------------------
# The index against a brute-force scan

SCHEMES = ("a", "b")
SEGMENTS = ("x", "y", "xy")
DIDS = (ANNA, BEN, CHRIS)


def brute_covers(prefix: str, resource: str) -> bool:
    """Independent of the index: compare scheme, then path segments."""
    p_scheme, _, p_path = prefix.partition("://")
    r_scheme, _, r_path = resource.partition("://")
    if p_scheme != r_scheme:
        return False
    p_path, r_path = p_path.rstrip("/"), r_path.rstrip("/")
    if not p_path:
        return True
    return r_path == p_path or r_path.startswith(p_path + "/")


def brute_matching(p: MembranePolicy, peer: str, request: Request) -> list[Grant]:
    def admitted(g: Grant) -> bool:
        return any(
            entry in ("*", peer) or (entry.startswith("group:") and peer in p.groups[entry[6:]])
            for entry in g.peers
        )

    found = [
        g
        for g in p.grants
        if brute_covers(g.resource, request.resource)
        and ("*" in g.actions or request.action in g.actions)
        and admitted(g)
    ]
    # Covering prefixes of one resource are nested: longer is more specific.
    return sorted(found, key=lambda g: (-len(g.resource), g.index))


resources = st.builds(
    lambda scheme, segments: f"{scheme}://" + "/".join(segments),
    st.sampled_from(SCHEMES),
    st.lists(st.sampled_from(SEGMENTS), max_size=4),
)
peer_entries = st.sampled_from((*DIDS, "*", "group:g1", "group:g2"))


@st.composite
def policies(draw: st.DrawFn) -> MembranePolicy:
    count = draw(st.integers(0, 12))
    grants = [
        Grant(
            i,
            frozenset(draw(st.lists(peer_entries, min_size=1, max_size=3))),
            draw(resources),
            frozenset(draw(st.lists(st.sampled_from(("read", "write", "*")), min_size=1))),
        )
        for i in range(1, count + 1)
    ]
    groups = {name: draw(st.frozensets(st.sampled_from(DIDS))) for name in ("g1", "g2")}
    return MembranePolicy(tuple(grants), groups=groups)


@settings(max_examples=300, deadline=None)
@given(
    policies(),
    st.sampled_from((*DIDS, DANA)),
    st.sampled_from(("read", "write", "call")),
    resources,
)
def test_index_matches_a_brute_force_scan(
    p: MembranePolicy, peer: str, action: str, resource: str
) -> None:
    request = Request(action, resource)
    assert p.matching(peer, request) == brute_matching(p, peer, request)
    covering = p.covering(resource)
    assert covering == sorted(
        (g for g in p.grants if brute_covers(g.resource, resource)),
        key=lambda g: (-len(g.resource), g.index),
    )
    for g in p.grants:
        assert g.covers(resource) is brute_covers(g.resource, resource)
