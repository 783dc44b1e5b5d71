"""The policy file: a realistic file end to end, the documented example, a
table of malformed files each blamed on its exact line and field, and the
line locator on the TOML subset the format uses."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from l2session.core.link.envelope import Request
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError, PolicyError
from l2session.identity.identity import Identity
from l2session.membrane import policy_file
from l2session.membrane.decision import QuotaLedger, decide
from l2session.membrane.policy import Expires, MaxUnits, MemberOf, MinTrust, Quota
from l2session.membrane.policy_file import parse_policy
from l2session.membrane.toml_lines import LineLocator, field_name

ANNA, BEN, CHRIS, STEWARD, TREASURER, GUEST = (
    Identity.generate(SeededRandom(i)).did_text for i in range(1, 7)
)
POLICIES = Path(__file__).parent / "policies"
#: 2027-01-15T08:00:00Z
NOW = 1_800_000_000.0


# --------------------------------------------------------------------------
# A realistic file, end to end


def test_the_chapter_policy_parses_end_to_end() -> None:
    p = parse_policy((POLICIES / "chapter.toml").read_text(encoding="utf-8"), "chapter.toml")
    assert p.source == "chapter.toml"
    assert p.expiry == 1_814_306_400.0  # 2027-06-30T00:00:00+02:00
    assert p.constraints == (MaxUnits(500), MinTrust(0.2))
    assert dict(p.groups) == {
        "berlin": {ANNA, BEN, CHRIS},
        "stewards": {STEWARD},
        "guests.2027": frozenset(),
    }
    assert [(g.index, g.name, g.line) for g in p.grants] == [
        (1, "public-feed", 21),
        (2, "proposals", 27),
        (3, "chapter-admin", 33),
        (4, "payments", 40),
        (5, "grant #5", 55),
    ]
    feed, proposals, admin, payments, open_call = p.grants
    assert feed.actions == {"read", "subscribe"}
    assert proposals.resource == "chapter://berlin/proposals"
    assert proposals.peer_groups == ("berlin", "stewards")
    assert admin.any_action
    assert admin.conditions == (MinTrust(0.8),)
    assert payments.peers == {"group:berlin", TREASURER}
    assert payments.conditions == (Expires(1_806_537_599), MinTrust(0.5), Quota(100, 3600))
    assert open_call.conditions == (MemberOf("guests.2027"), Quota(3, 86_400))

    ledger = QuotaLedger()

    def verdict(peer: str, capability: str, trust: float = 0.9) -> str:
        return decide(p, peer, Request.parse(capability), trust, NOW, ledger).reason

    assert verdict(GUEST, "read feed://berlin/2027/01") == "allowed by grant 'public-feed'"
    assert verdict(GUEST, "read feed://berlin", 0.1).startswith("trust 0.1 is below")
    assert verdict(BEN, "write chapter://berlin/proposals/42") == "allowed by grant 'proposals'"
    assert verdict(STEWARD, "delete chapter://berlin/x") == "allowed by grant 'chapter-admin'"
    assert verdict(STEWARD, "delete chapter://berlin/x", 0.5) == (
        "trust 0.5 is below the minimum 0.8 of grant 'chapter-admin'"
    )
    assert verdict(TREASURER, "call service://payment 100") == "allowed by grant 'payments'"
    assert verdict(TREASURER, "call service://payment 1").startswith(
        "quota of 100 units per 1h used up"
    )
    assert verdict(GUEST, "write chapter://berlin/proposals/open-call") == (
        "peer is not a member of group 'guests.2027'"
    )
    joined = p.with_members("guests.2027", [GUEST])
    allowed = decide(
        joined,
        GUEST,
        Request.parse("write chapter://berlin/proposals/open-call/1"),
        0.9,
        NOW,
        ledger,
    )
    assert allowed.grant == "grant #5"


def test_the_documented_example_parses() -> None:
    doc = policy_file.__doc__ or ""
    block = doc.split("The format, version 1::\n", 1)[1].split("\nKeys and values:", 1)[0]
    p = parse_policy(textwrap.dedent(block), "example.toml")
    assert [g.name for g in p.grants] == ["public-feed", "grant #2", "payments"]
    assert p.grants[2].quota == Quota(100, 3600)
    assert p.min_trust == 0.5


@pytest.mark.parametrize(
    ("window", "seconds"),
    [
        ('"30s"', 30),
        ('"5m"', 300),
        ('"1h"', 3600),
        ('"1d"', 86_400),
        ('"366d"', 366 * 86_400),
        ("90", 90),
        ("1", 1),
    ],
)
def test_window_forms(window: str, seconds: float) -> None:
    text = f"""version = 1
[[grant]]
peers = ["*"]
resource = "service://x"
action = "call"
quota = {{ units = 1, window = {window} }}
"""
    quota = parse_policy(text).grants[0].quota
    assert quota is not None
    assert quota.window == seconds


def test_offsets_and_the_minimal_policy() -> None:
    p = parse_policy("version = 1\nexpires = 2027-01-01T01:00:00+01:00\n")
    assert p.expiry == 1_798_761_600.0  # 2027-01-01T00:00:00Z
    assert p.grants == ()
    assert p.constraints == ()
    assert dict(p.groups) == {}


def test_policy_errors_are_config_errors_with_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(
            'version = 1\n[[grant]]\npeers = ["*"]\nresource = "feed://x"\nactions = 5\n', "p.toml"
        )
    error = caught.value
    assert isinstance(error, PolicyError)
    assert str(error) == "p.toml:5: grant #1 actions: expected a list of strings, got an integer"
    assert (error.path, error.line, error.field) == ("p.toml", 5, "grant[1].actions")


def test_parse_policy_takes_text() -> None:
    with pytest.raises(ConfigError, match="takes the file's text"):
        parse_policy(b"version = 1")  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Malformed files: exact line, field and message

HEAD = "version = 1\n"
GRANT = '[[grant]]\npeers = ["*"]\nresource = "feed://x"\nactions = ["read"]\n'
GROUPS = f'[groups]\nberlin = ["{ANNA}"]\n'

BAD_FILES: list[tuple[str, str, int, str, str]] = [
    # (name, text, line, field, expected message after "bad.toml:LINE: ")
    (
        "syntax: unquoted string",
        HEAD + '[[grant]]\npeers = ["*"]\nresource = feed://x\n',
        4,
        "",
        "TOML syntax error: Invalid value (column 12); text values need quotes",
    ),
    (
        "syntax: key given twice",
        HEAD + "version = 1\n",
        2,
        "",
        "TOML syntax error: Cannot overwrite a value (column 12); a key or table is given twice",
    ),
    (
        "syntax: unterminated array at the end",
        HEAD + '[[grant]]\npeers = ["*",\n',
        3,
        "",
        "TOML syntax error: Invalid value at the end of the file",
    ),
    ("version missing", GRANT, 0, "version", "no 'version'; add 'version = 1' as the first line"),
    (
        "version 2",
        "# policy\nversion = 2\n",
        2,
        "version",
        "version: policy file version 2 is not supported; this l2session reads version 1",
    ),
    (
        "version as a string",
        'version = "1"\n',
        1,
        "version",
        "version: expected an integer, got a string",
    ),
    (
        "unknown top-level key",
        HEAD + "[[grants]]\npeers = []\n",
        2,
        "grants",
        "unknown key 'grants' at the top level; did you mean 'grant'?",
    ),
    (
        "unknown grant key with suggestion",
        HEAD + GRANT + '\n[[grant]]\npeers = ["*"]\nresource = "feed://y"\nactoins = ["read"]\n',
        10,
        "grant[2].actoins",
        "unknown key 'actoins' in grant #2; did you mean 'actions'?",
    ),
    (
        "unknown grant key without a close match",
        HEAD + GRANT + "colour = 3\n",
        6,
        "grant[1].colour",
        "unknown key 'colour' in grant #1; the keys are id, peers, resource, actions, action, "
        "member_of, quota, min_trust, expires",
    ),
    (
        "actions of the wrong type",
        HEAD + GRANT + '[[grant]]\npeers = ["*"]\nresource = "feed://y"\nactions = 5\n',
        9,
        "grant[2].actions",
        "grant #2 actions: expected a list of strings, got an integer",
    ),
    (
        "actions as one string",
        HEAD + '[[grant]]\npeers = ["*"]\nresource = "feed://y"\nactions = "read"\n',
        5,
        "grant[1].actions",
        'grant #1 actions: expected a list of strings, got a string; write actions = ["read"] '
        'or action = "read"',
    ),
    (
        "peers as one string",
        HEAD + '[[grant]]\npeers = "*"\nresource = "feed://y"\naction = "read"\n',
        3,
        "grant[1].peers",
        'grant #1 peers: expected a list of strings, got a string (write ["*"])',
    ),
    (
        "a number among the peers",
        HEAD + '[[grant]]\npeers = [\n  "*",\n  7,\n]\nresource = "feed://y"\naction = "read"\n',
        5,
        "grant[1].peers[2]",
        "grant #1 peers[2]: expected a string, got an integer",
    ),
    (
        "bad DID among the peers, on its own line",
        HEAD
        + f'[[grant]]\npeers = [\n  "{ANNA}",\n  "did:key:",\n]\n'
        + 'resource = "feed://y"\naction = "read"\n',
        5,
        "grant[1].peers[2]",
        "grant #1 peers[2]: 'did:key:': the method-specific identifier is empty; "
        'a peer is "*", a DID, "nostr:npub1…" or "group:NAME"',
    ),
    (
        "a group name without its prefix",
        HEAD + GROUPS + '[[grant]]\npeers = ["berlin"]\nresource = "feed://y"\naction = "read"\n',
        5,
        "grant[1].peers[1]",
        "grant #1 peers[1]: 'berlin' is not a DID: a DID starts with 'did:'; to name the group, "
        "write 'group:berlin'",
    ),
    (
        "undefined group in peers",
        HEAD + GROUPS + '\n[[grant]]\npeers = ["*", "group:berlni"]\nresource = "feed://y"\n'
        'action = "read"\n',
        6,
        "grant[1].peers[2]",
        "grant #1 peers[2]: group 'berlni' is not defined in [groups]; "
        "did you mean 'group:berlin'?",
    ),
    (
        "undefined group in member_of",
        HEAD + GRANT + 'member_of = "chapter"\n',
        6,
        "grant[1].member_of",
        "grant #1 member_of: group 'chapter' is not defined in [groups]; define it under [groups]",
    ),
    (
        "member_of with the group: prefix",
        HEAD + GROUPS + GRANT + 'member_of = "group:berlin"\n',
        8,
        "grant[1].member_of",
        "grant #1 member_of: write the group name without 'group:': member_of = \"berlin\"",
    ),
    (
        "bad DID in a group",
        HEAD + f'[groups]\nberlin = [\n    "{ANNA}",\n    "did:Key:abc",\n]\n',
        5,
        "groups.berlin[2]",
        "groups.berlin[2]: 'did:Key:abc': character 'K' at position 4 is not allowed in the DID "
        "method name; method names are lowercase (did:key:…)",
    ),
    (
        "a wildcard in a group",
        HEAD + '[groups]\nall = ["*"]\n',
        3,
        "groups.all[1]",
        "groups.all[1]: '*' is not a DID; a group lists DIDs only ('*' and groups of groups are "
        "for a grant's peers)",
    ),
    (
        "a bad group name",
        HEAD + '[groups]\n"two words" = []\n',
        3,
        'groups."two words"',
        "groups.\"two words\": group name 'two words' is not 1..64 letters, digits, '_', '.' "
        "or '-', starting with a letter or digit (such as 'berlin')",
    ),
    (
        "naive date-time for the policy",
        HEAD + "expires = 2027-01-01T00:00:00\n",
        2,
        "expires",
        "expires: date-time 2027-01-01T00:00:00 has no UTC offset, so its instant would depend "
        "on the machine's time zone; give an offset such as Z (2027-01-01T00:00:00Z) or +01:00",
    ),
    (
        "naive date-time for a grant",
        HEAD + GRANT + "expires = 2026-12-31 23:59:59\n",
        6,
        "grant[1].expires",
        "grant #1 expires: date-time 2026-12-31T23:59:59 has no UTC offset",
    ),
    (
        "a date without a time",
        HEAD + "expires = 2027-01-01\n",
        2,
        "expires",
        "expires: 2027-01-01 is a date without a time; write a date-time with an offset, such as "
        "2027-01-01T00:00:00Z",
    ),
    (
        "a quoted date-time",
        HEAD + 'expires = "2027-01-01T00:00:00Z"\n',
        2,
        "expires",
        "expires: expected a date-time such as 2027-01-01T00:00:00Z, got a string; write the "
        "date-time without quotes",
    ),
    (
        "a date-time before 1970",
        HEAD + GRANT + "expires = 1969-12-31T00:00:00Z\n",
        6,
        "grant[1].expires",
        "grant #1 expires: 1969-12-31T00:00:00+00:00 is before 1970; give a later date",
    ),
    (
        "a window that is no duration",
        HEAD + GRANT + 'quota = { units = 100, window = "1hour" }\n',
        6,
        "grant[1].quota.window",
        "grant #1 quota.window: '1hour' is not a duration; write a whole number followed by s, "
        "m, h or d (such as '30s', '5m', '1h', '1d'), or a whole number of seconds",
    ),
    (
        "a zero window",
        HEAD + GRANT + 'quota = { units = 100, window = "0s" }\n',
        6,
        "grant[1].quota.window",
        "grant #1 quota.window: '0s' is out of range; a window is from 1s to 366d",
    ),
    (
        "a window in float seconds",
        HEAD + GRANT + "quota = { units = 100, window = 1.5 }\n",
        6,
        "grant[1].quota.window",
        "grant #1 quota.window: expected a duration, got a float",
    ),
    (
        "a window in a quota sub-table",
        HEAD + GRANT + '\n[grant.quota]\nunits = 5\nwindow = "1w"\n',
        9,
        "grant[1].quota.window",
        "grant #1 quota.window: '1w' is not a duration",
    ),
    (
        "zero quota units",
        HEAD + GRANT + 'quota = { units = 0, window = "1h" }\n',
        6,
        "grant[1].quota.units",
        "grant #1 quota.units: 0 is out of range; give a whole number 1..1000000",
    ),
    (
        "an unknown quota key",
        HEAD + GRANT + 'quota = { unit = 5, window = "1h" }\n',
        6,
        "grant[1].quota.unit",
        "unknown key 'unit' in grant #1 quota; did you mean 'units'?",
    ),
    (
        "a quota without a window",
        HEAD + GRANT + "quota = { units = 5 }\n",
        6,
        "grant[1].quota.window",
        "grant #1 quota has no 'window'; add both units and window: "
        '{ units = 100, window = "1h" }',
    ),
    (
        "a quota that is a number",
        HEAD + GRANT + "quota = 100\n",
        6,
        "grant[1].quota",
        'grant #1 quota: expected a table such as { units = 100, window = "1h" }, got an integer',
    ),
    (
        "a trust minimum above 1",
        HEAD + GRANT + "min_trust = 1.5\n",
        6,
        "grant[1].min_trust",
        "grant #1 min_trust: 1.5 is out of range; a trust score is from 0 to 1, such as 0.5",
    ),
    (
        "a trust minimum in words",
        HEAD + '[constraints]\nmin_trust = "high"\n',
        3,
        "constraints.min_trust",
        "constraints.min_trust: expected a number from 0 to 1, got a string",
    ),
    (
        "max_units of zero",
        HEAD + "[constraints]\nmin_trust = 0.5\nmax_units = 0\n",
        4,
        "constraints.max_units",
        "constraints.max_units: 0 is out of range; give a whole number 1..1000000",
    ),
    (
        "max_units as a float",
        HEAD + "[constraints]\nmax_units = 100.0\n",
        3,
        "constraints.max_units",
        "constraints.max_units: expected an integer, got a float; write 100",
    ),
    (
        "expires among the constraints",
        HEAD + "[constraints]\nexpires = 2027-01-01T00:00:00Z\n",
        3,
        "constraints.expires",
        "unknown key 'expires' in [constraints]; the policy's expiry is the top-level "
        "'expires' key",
    ),
    (
        "an unknown constraint",
        HEAD + "[constraints]\nmin_trsut = 0.5\n",
        3,
        "constraints.min_trsut",
        "unknown key 'min_trsut' in [constraints]; did you mean 'min_trust'?",
    ),
    (
        "duplicate grant ids",
        HEAD + '[[grant]]\nid = "feed"\n' + GRANT[10:] + '\n[[grant]]\nid = "feed"\n' + GRANT[10:],
        9,
        "grant[2].id",
        "grant #2 id: 'feed' is already the id of grant #1; ids must be unique",
    ),
    (
        "a grant id with a space",
        HEAD + '[[grant]]\nid = "my feed"\n',
        3,
        "grant[1].id",
        "grant #1 id: name 'my feed' is not 1..64 letters",
    ),
    (
        "a grant without a resource",
        HEAD + GRANT + '\n[[grant]]\npeers = ["*"]\naction = "read"\n',
        7,
        "grant[2].resource",
        "grant #2 has no 'resource'; add resource = \"scheme://path\", the prefix it covers",
    ),
    (
        "a grant without peers",
        HEAD + '[[grant]]\nresource = "feed://x"\naction = "read"\n',
        2,
        "grant[1].peers",
        'grant #1 has no \'peers\'; add peers = ["*"] (anyone), DIDs or "group:NAME"',
    ),
    (
        "a grant without actions",
        HEAD + '[[grant]]\npeers = ["*"]\nresource = "feed://x"\n',
        2,
        "grant[1].actions",
        'grant #1 has no \'actions\'; add actions = ["read"] (or action = "read")',
    ),
    (
        "both action and actions",
        HEAD + GRANT + 'action = "write"\n',
        6,
        "grant[1].action",
        "grant #1 action: give either 'action' or 'actions', not both",
    ),
    (
        "empty peers",
        HEAD + '[[grant]]\npeers = []\nresource = "feed://x"\naction = "read"\n',
        3,
        "grant[1].peers",
        'grant #1 peers: empty list; name at least one peer: "*" (anyone), a DID, or "group:NAME"',
    ),
    (
        "empty actions",
        HEAD + '[[grant]]\npeers = ["*"]\nresource = "feed://x"\nactions = []\n',
        5,
        "grant[1].actions",
        'grant #1 actions: empty list; name an action such as "read", or "*"',
    ),
    (
        "an upper-case action",
        HEAD + '[[grant]]\npeers = ["*"]\nresource = "feed://x"\nactions = ["read", "Write"]\n',
        5,
        "grant[1].actions[2]",
        "grant #1 actions[2]: action 'Write' is not a lower-case name",
    ),
    (
        "a resource without a scheme",
        HEAD + '[[grant]]\npeers = ["*"]\nresource = "feed:/x"\naction = "read"\n',
        4,
        "grant[1].resource",
        "grant #1 resource: resource 'feed:/x' is not a URI of the form scheme://path",
    ),
    (
        "[grant] instead of [[grant]]",
        HEAD + "\n[grant]\npeers = []\n",
        3,
        "grant",
        "grant: expected an array of tables, got a table; write each grant under [[grant]] "
        "(two brackets)",
    ),
    (
        "groups that are not a table",
        HEAD + 'groups = ["berlin"]\n',
        2,
        "groups",
        'groups: expected a table such as [groups] with berlin = ["did:key:..."], got a list',
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
def test_malformed_policy_files(text: str, line: int, field: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "bad.toml")
    error = caught.value
    head = f"bad.toml:{line}: " if line else "bad.toml: "
    assert str(error).startswith(head + message), str(error)
    assert "\n" not in str(error)
    assert (error.path, error.line, error.field) == ("bad.toml", line, field)


def test_bounds_are_reported_at_the_line_past_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_file, "MAX_GRANTS", 2)
    monkeypatch.setattr(policy_file, "MAX_GROUPS", 2)
    monkeypatch.setattr(policy_file, "MAX_GROUP_MEMBERS", 2)
    monkeypatch.setattr(policy_file, "MAX_PEERS_PER_GRANT", 1)
    with pytest.raises(PolicyError) as caught:
        parse_policy(HEAD + GRANT * 3, "p.toml")
    assert str(caught.value).startswith("p.toml:10: more than 2 grants")
    with pytest.raises(PolicyError) as caught:
        parse_policy(HEAD + "[groups]\na = []\nb = []\nc = []\n", "p.toml")
    assert str(caught.value).startswith("p.toml:5: groups.c: more than 2 groups")
    with pytest.raises(PolicyError) as caught:
        parse_policy(HEAD + f'[groups]\na = ["{ANNA}"]\nb = ["{BEN}", "{CHRIS}"]\n', "p.toml")
    assert str(caught.value).startswith("p.toml:4: groups.b: groups list more than 2 members")
    with pytest.raises(PolicyError) as caught:
        parse_policy(
            HEAD + f'[[grant]]\npeers = ["{ANNA}", "{BEN}"]\nresource = "a://"\naction = "x"\n'
        )
    assert "2 peers exceed 1; use a group instead" in str(caught.value)


# --------------------------------------------------------------------------
# The line locator

LOCATOR_TEXT = '''\
# a comment with [brackets] and key = "value"
version = 1
expires = 2027-01-01T00:00:00Z   # trailing comment

[constraints]
min_trust = 0.5
"max_units" = 10

[groups]
berlin = [
  "did:key:a",   # first
  # a comment line inside the array
  "did:key:b", "did:key:c",
]
'quoted.name' = []

[[grant]]
id = "x#y[z]"
peers = ["*"]
resource = """multi
line"""
quota = { units = 1, window = "1h" }
min_trust.nested = 1

[[grant]]
peers = ['group:berlin']
description = \'\'\'literal
with ] and "quotes"
\'\'\'
expires = 2026-12-31 23:59:59Z

[grant.quota]
units = 5
window = "1d"

[[grant]]
actions = [
  [1, 2],
  { a = 1 },
  "x",
]
'''


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("version",), 2),
        (("expires",), 3),
        (("constraints",), 5),
        (("constraints", "min_trust"), 6),
        (("constraints", "max_units"), 7),
        (("groups",), 9),
        (("groups", "berlin"), 10),
        (("groups", "berlin", 1), 11),
        (("groups", "berlin", 2), 13),
        (("groups", "berlin", 3), 13),
        (("groups", "quoted.name"), 15),
        (("grant",), 17),
        (("grant", 1), 17),
        (("grant", 1, "id"), 18),
        (("grant", 1, "peers"), 19),
        (("grant", 1, "peers", 1), 19),
        (("grant", 1, "resource"), 20),
        (("grant", 1, "quota"), 22),
        (("grant", 1, "quota", "window"), 22),
        (("grant", 1, "min_trust"), 23),
        (("grant", 1, "min_trust", "nested"), 23),
        (("grant", 2), 25),
        (("grant", 2, "peers", 1), 26),
        (("grant", 2, "description"), 27),
        (("grant", 2, "expires"), 30),
        (("grant", 2, "quota"), 32),
        (("grant", 2, "quota", "units"), 33),
        (("grant", 2, "quota", "window"), 34),
        (("grant", 3), 36),
        (("grant", 3, "actions", 1), 38),
        (("grant", 3, "actions", 1, 2), 38),
        (("grant", 3, "actions", 2, "a"), 39),
        (("grant", 3, "actions", 3), 40),
        # Not written: the nearest enclosing entry.
        (("grant", 1, "member_of"), 17),
        (("grant", 2, "quota", "nope"), 32),
        (("constraints", "nope"), 5),
        (("nowhere",), 0),
        ((), 0),
    ],
)
def test_the_locator_finds_each_line(path: tuple[str | int, ...], line: int) -> None:
    assert LineLocator(LOCATOR_TEXT).line(path) == line


def test_the_locator_text_is_valid_toml() -> None:
    import tomllib

    data = tomllib.loads(LOCATOR_TEXT)
    assert data["groups"]["berlin"] == ["did:key:a", "did:key:b", "did:key:c"]
    assert data["grant"][1]["quota"] == {"units": 5, "window": "1d"}


def test_the_locator_handles_crlf_and_escapes() -> None:
    text = 'a = "say \\"hi\\" # not a comment"\r\n"k\\u0065y" = 1\r\n[t]\r\nb = 2\r\n'
    locator = LineLocator(text)
    assert (locator.line(("a",)), locator.line(("key",)), locator.line(("t", "b"))) == (1, 2, 4)
    assert locator.known()[("t",)] == 3


def test_field_names() -> None:
    assert field_name(("grant", 3, "quota", "window")) == "grant[3].quota.window"
    assert field_name(("groups", "berlin", 2)) == "groups.berlin[2]"
    assert field_name(("groups", "two words")) == 'groups."two words"'
    assert field_name(()) == ""
