"""The Membrane policy file: TOML text to a :class:`MembranePolicy`.

This module parses *text* (the layer is pure: the caller reads the file and
passes its name as ``source`` for messages).  Every mistake is refused with a
:class:`~l2session.errors.PolicyError` whose message starts with
``file:line:``, names the field (``grant #3 quota.window``), says what is
wrong and how to fix it; its ``path``, ``line`` and ``field``
(``grant[3].quota.window``) attributes carry the same for programs.  A policy
is a security boundary, so nothing is guessed: unknown keys, naive
date-times, a DID with a typo or an undefined group are errors, never
ignored.

The format, version 1::

    version = 1                              # required, must be 1
    expires = 2027-01-01T00:00:00Z           # optional: the whole policy stops
                                             # at this instant (offset required)

    [constraints]                            # optional, checked on every request
    min_trust = 0.5                          # QVL trust score 0..1 a peer needs
    max_units = 1000                         # most units one request may claim

    [groups]                                 # optional: named sets of DIDs
    berlin = [
        "did:key:z6MkoGkqLKJdo9UuTQixJrQZrt5PLLQuD9rsGNEbFjp8a7MP",
        "did:key:z6MksdGaijQZ2MeJ7gCfHoa8T5JBgx8aWQRSWiuZWTiHHEx7",
    ]
    observers = []                           # may be empty (filled at runtime)

    [[grant]]                                # one table per grant, in order
    id = "public-feed"                       # optional name for messages and logs
    peers = ["*"]                            # required: "*", DIDs, "group:NAME"
    resource = "feed://my-channel"           # required: a resource prefix
    actions = ["read"]                       # required: names, or ["*"];
                                             # or the single form action = "read"

    [[grant]]
    peers = ["*"]
    resource = "chapter://berlin/proposals"
    action = "write"
    member_of = "berlin"                     # condition: the peer is in the group

    [[grant]]
    id = "payments"
    peers = ["group:berlin", "did:key:z6MkoGkqLKJdo9UuTQixJrQZrt5PLLQuD9rsGNEbFjp8a7MP"]
    resource = "service://payment"
    actions = ["call"]
    quota = { units = 100, window = "1h" }   # condition: units per peer per window
    min_trust = 0.6                          # condition: a higher bar than the policy's
    expires = 2026-12-31T23:59:59Z           # condition: the grant stops at this instant

Keys and values:

* ``version`` (integer, required): 1.
* ``expires`` (offset date-time): ``2027-01-01T00:00:00Z`` or
  ``2027-01-01T01:00:00+01:00``.  A date-time without an offset is refused
  (its instant would depend on the machine's time zone), and so is a quoted
  string.  An expiry is exclusive: at that instant the policy (or grant)
  has expired.
* ``[constraints]``: ``min_trust`` (number 0..1; a peer whose trust score is
  below it is refused before any grant is considered) and ``max_units``
  (integer 1..1,000,000).
* ``[groups]``: ``NAME = [DIDs]``.  A name is 1..64 letters, digits, ``_``,
  ``.`` or ``-``.  At most 1,000 groups and 100,000 members in all.
* ``[[grant]]`` (at most 10,000):

  - ``id``: optional, unique, same rule as group names; else the grant is
    called "grant #N" after its position.
  - ``peers``: non-empty list of ``"*"`` (anyone), DIDs, and
    ``"group:NAME"`` (a group defined in ``[groups]``); at most 1,000.
  - ``resource``: ``scheme://path``, matched as a prefix segment by segment:
    ``chapter://berlin`` covers ``chapter://berlin/proposals`` but not
    ``chapter://berlinale``; ``feed://`` covers all of ``feed://``.
  - ``actions`` (non-empty list) or ``action`` (one): lower-case names such
    as ``read``, ``write``, ``call``, or ``"*"`` for any.
  - conditions, all optional, all must hold: ``member_of = "GROUP"``,
    ``quota = { units = N, window = W }`` (at most N units per peer in each
    fixed window; W is ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or whole
    seconds, 1 second to 366 days), ``min_trust = 0..1``, ``expires =
    DATE-TIME``.

  When several grants match a request the most specific resource is tried
  first, then file order; the first whose conditions hold allows it.

Line numbers: ``tomllib`` reports none for values, so
:class:`~l2session.membrane.toml_lines.LineLocator` scans the text again
and maps each key and array element to its line; a field it cannot place
is blamed on its table's header line, or the file (line 0).

The readers of single values (types, ranges, date-times, windows, and the
messages that point at a field) are
:class:`~l2session.membrane.policy_fields.FieldReader`; this module holds
the schema: which tables and keys a policy has, and what they become.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Final

from l2session.core.link.envelope import MAX_UNITS, action_problem, resource_problem
from l2session.errors import ConfigError, InvalidDid, PolicyError
from l2session.identity.did import Did
from l2session.identity.foreign import is_foreign
from l2session.membrane.grant import canonical_foreign_problem
from l2session.membrane.policy import (
    ANY,
    GROUP_PREFIX,
    MAX_GRANTS,
    MAX_GROUP_MEMBERS,
    MAX_GROUPS,
    MAX_PEERS_PER_GRANT,
    Condition,
    Constraint,
    Expires,
    Grant,
    MaxUnits,
    MemberOf,
    MembranePolicy,
    MinTrust,
    Quota,
    name_problem,
)
from l2session.membrane.policy_fields import (
    FieldReader,
    kind_of,
    toml_quoted,
)
from l2session.membrane.toml_lines import KeyPath, LineLocator, field_name

#: The policy file format version this module reads.
VERSION: Final = 1

_TOP_KEYS: Final = ("version", "expires", "constraints", "groups", "grant")
_CONSTRAINT_KEYS: Final = ("min_trust", "max_units")
_GRANT_KEYS: Final = (
    "id",
    "peers",
    "resource",
    "actions",
    "action",
    "member_of",
    "quota",
    "min_trust",
    "expires",
)
_QUOTA_KEYS: Final = ("units", "window")

_TOML_POSITION: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END: Final = re.compile(r"\s*\(at end of document\)$")


# --------------------------------------------------------------------------
# The loader


def parse_policy(text: str, source: str = "<policy>") -> MembranePolicy:
    """Parse a policy file's ``text``; ``source`` (its file name) starts
    every error message.  Raises :class:`~l2session.errors.PolicyError`."""
    if not isinstance(text, str) or not isinstance(source, str):
        raise ConfigError("parse_policy(text, source) takes the file's text and name as str")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(str(exc), text, source) from None
    except RecursionError:
        raise PolicyError(
            f"{source}: arrays or tables are nested too deeply to read; a policy needs "
            "at most three levels",
            path=source,
        ) from None
    return _Loader(text, source).policy(data)


def _syntax_error(message: str, text: str, source: str) -> PolicyError:
    line, where = 0, ""
    position = _TOML_POSITION.search(message)
    if position is not None:
        line = int(position.group(1))
        where = f" (column {position.group(2)})"
        message = message[: position.start()]
    else:
        at_end = _TOML_AT_END.search(message)
        if at_end is not None:
            line = max(1, len(text.splitlines()))
            where = " at the end of the file"
            message = message[: at_end.start()]
    hint = ""
    if message.startswith("Invalid value"):
        hint = '; text values need quotes, such as resource = "feed://my-channel"'
    elif message.startswith(("Cannot overwrite", "Cannot declare")):
        hint = "; a key or table is given twice"
    head = f"{source}:{line}" if line else source
    return PolicyError(
        f"{head}: TOML syntax error: {message}{where}{hint}", path=source, line=line, field=""
    )


class _Loader(FieldReader):
    """Checks a parsed document table by table (the value readers are
    :class:`~l2session.membrane.policy_fields.FieldReader`'s)."""

    __slots__ = ()

    def policy(self, data: dict[str, object]) -> MembranePolicy:
        if "version" not in data:
            raise self.error(
                ("version",), "no 'version'; add 'version = 1' as the first line", named=False
            )
        version = self.integer(("version",), data["version"], -(2**63), 2**63 - 1)
        if version != VERSION:
            raise self.error(
                ("version",),
                f"policy file version {version} is not supported; this l2session reads "
                f"version {VERSION}",
            )
        self.check_keys(data, (), _TOP_KEYS)
        expiry = self.timestamp(("expires",), data["expires"]) if "expires" in data else None
        constraints = self.constraints(data.get("constraints"))
        groups = self.groups(data.get("groups", {}))
        grants = self.grants(data.get("grant", []), groups)
        try:
            return MembranePolicy(grants, constraints, expiry, groups, self.source)
        except PolicyError:
            raise
        except ConfigError as exc:  # pragma: no cover - the checks above come first
            raise self.error((), str(exc)) from None

    def constraints(self, value: object) -> tuple[Constraint, ...]:
        if value is None:
            return ()
        path: KeyPath = ("constraints",)
        table = self.table(path, value, "[constraints] with min_trust = 0.5")
        if "expires" in table:
            raise self.error(
                (*path, "expires"),
                "unknown key 'expires' in [constraints]; the policy's expiry is the "
                "top-level 'expires' key",
                named=False,
            )
        self.check_keys(table, path, _CONSTRAINT_KEYS)
        found: list[Constraint] = []
        if "min_trust" in table:
            found.append(MinTrust(self.score((*path, "min_trust"), table["min_trust"])))
        if "max_units" in table:
            units = self.integer((*path, "max_units"), table["max_units"], 1, MAX_UNITS)
            found.append(MaxUnits(units))
        return tuple(found)

    def groups(self, value: object) -> dict[str, frozenset[str]]:
        path: KeyPath = ("groups",)
        table = self.table(path, value, '[groups] with berlin = ["did:key:..."]')
        if len(table) > MAX_GROUPS:
            extra = list(table)[MAX_GROUPS]
            raise self.error(
                (*path, extra), f"more than {MAX_GROUPS} groups; merge groups", named=True
            )
        groups: dict[str, frozenset[str]] = {}
        total = 0
        for name, members in table.items():
            where: KeyPath = (*path, name)
            problem = name_problem(name)
            if problem is not None:
                raise self.error(where, f"group {problem}")
            dids = self.strings(where, members)
            for index, did in enumerate(dids, 1):
                if did == ANY or did.startswith(GROUP_PREFIX):
                    raise self.error(
                        (*where, index),
                        f"{did!r} is not a DID; a group lists DIDs only "
                        "('*' and groups of groups are for a grant's peers)",
                    )
                if is_foreign(did):
                    foreign = canonical_foreign_problem(did)
                    if foreign is not None:
                        raise self.error((*where, index), foreign)
                    continue
                try:
                    Did.parse(did)
                except InvalidDid as exc:
                    raise self.error((*where, index), str(exc)) from None
            groups[name] = frozenset(dids)
            total += len(groups[name])
            if total > MAX_GROUP_MEMBERS:
                raise self.error(
                    where,
                    f"groups list more than {MAX_GROUP_MEMBERS} members in all; split the policy",
                )
        return groups

    def grants(self, value: object, groups: Mapping[str, frozenset[str]]) -> tuple[Grant, ...]:
        path: KeyPath = ("grant",)
        if isinstance(value, dict):
            raise self.error(
                path,
                "expected an array of tables, got a table; write each grant under "
                "[[grant]] (two brackets)",
            )
        if not isinstance(value, list):
            raise self.error(path, f"expected an array of [[grant]] tables, got {kind_of(value)}")
        if len(value) > MAX_GRANTS:
            raise self.error(
                (*path, MAX_GRANTS + 1),
                f"more than {MAX_GRANTS} grants; merge grants, or use groups and resource prefixes",
                named=False,
            )
        ids: dict[str, int] = {}
        grants: list[Grant] = []
        for index, table in enumerate(value, 1):
            if not isinstance(table, dict):
                raise self.error((*path, index), f"expected a table, got {kind_of(table)}")
            grants.append(self.grant(index, table, groups, ids))
        return tuple(grants)

    def grant(
        self,
        index: int,
        table: dict[str, object],
        groups: Mapping[str, frozenset[str]],
        ids: dict[str, int],
    ) -> Grant:
        path: KeyPath = ("grant", index)
        self.check_keys(table, path, _GRANT_KEYS)

        grant_id: str | None = None
        if "id" in table:
            grant_id = self.string((*path, "id"), table["id"])
            problem = name_problem(grant_id)
            if problem is not None:
                raise self.error((*path, "id"), problem)
            if grant_id in ids:
                raise self.error(
                    (*path, "id"),
                    f"{grant_id!r} is already the id of grant #{ids[grant_id]}; ids must be unique",
                )
            ids[grant_id] = index

        peers = self.peers(path, table, groups)

        if "resource" not in table:
            raise self.missing(path, "resource", 'resource = "scheme://path", the prefix it covers')
        resource = self.string((*path, "resource"), table["resource"])
        problem = resource_problem(resource)
        if problem is not None:
            raise self.error((*path, "resource"), problem)

        actions = self.actions(path, table)
        conditions = self.conditions(path, table, groups)
        try:
            return Grant(
                index,
                frozenset(peers),
                resource,
                frozenset(actions),
                conditions,
                id=grant_id,
                line=self.lines.line(path),
            )
        except ConfigError as exc:  # pragma: no cover - checked above
            raise self.error(path, str(exc)) from None

    def peers(
        self, path: KeyPath, table: Mapping[str, object], groups: Mapping[str, frozenset[str]]
    ) -> list[str]:
        if "peers" not in table:
            raise self.missing(path, "peers", 'peers = ["*"] (anyone), DIDs or "group:NAME"')
        where: KeyPath = (*path, "peers")
        peers = self.strings(where, table["peers"])
        if not peers:
            raise self.error(
                where, 'empty list; name at least one peer: "*" (anyone), a DID, or "group:NAME"'
            )
        if len(peers) > MAX_PEERS_PER_GRANT:
            raise self.error(
                where, f"{len(peers)} peers exceed {MAX_PEERS_PER_GRANT}; use a group instead"
            )
        for number, peer in enumerate(peers, 1):
            if peer == ANY:
                continue
            if peer.startswith(GROUP_PREFIX):
                name = peer[len(GROUP_PREFIX) :]
                self.group_name((*where, number), name, groups, prefixed=True)
                continue
            if is_foreign(peer):
                foreign = canonical_foreign_problem(peer)
                if foreign is not None:
                    raise self.error((*where, number), foreign)
                continue
            try:
                Did.parse(peer)
            except InvalidDid as exc:
                hint = 'a peer is "*", a DID, "nostr:npub1…" or "group:NAME"'
                if peer in groups:
                    hint = f"to name the group, write {GROUP_PREFIX + peer!r}"
                raise self.error((*where, number), f"{exc}; {hint}") from None
        return peers

    def actions(self, path: KeyPath, table: Mapping[str, object]) -> list[str]:
        if "actions" in table and "action" in table:
            raise self.error((*path, "action"), "give either 'action' or 'actions', not both")
        if "action" in table:
            where: KeyPath = (*path, "action")
            actions = [self.string(where, table["action"])]
            numbered = False
        elif "actions" in table:
            where = (*path, "actions")
            value = table["actions"]
            if isinstance(value, str):
                raise self.error(
                    where,
                    f"expected a list of strings, got a string; write actions = "
                    f"[{toml_quoted(value)}] or action = {toml_quoted(value)}",
                )
            actions = self.strings(where, value)
            numbered = True
            if not actions:
                raise self.error(where, 'empty list; name an action such as "read", or "*"')
        else:
            raise self.missing(path, "actions", 'actions = ["read"] (or action = "read")')
        for number, action in enumerate(actions, 1):
            problem = None if action == ANY else action_problem(action)
            if problem is not None:
                raise self.error((*where, number) if numbered else where, problem)
        return actions

    def conditions(
        self, path: KeyPath, table: Mapping[str, object], groups: Mapping[str, frozenset[str]]
    ) -> tuple[Condition, ...]:
        found: list[Condition] = []
        if "expires" in table:
            found.append(Expires(self.timestamp((*path, "expires"), table["expires"])))
        if "min_trust" in table:
            found.append(MinTrust(self.score((*path, "min_trust"), table["min_trust"])))
        if "member_of" in table:
            where: KeyPath = (*path, "member_of")
            name = self.string(where, table["member_of"])
            if name.startswith(GROUP_PREFIX):
                raise self.error(
                    where,
                    f"write the group name without {GROUP_PREFIX!r}: "
                    f"member_of = {toml_quoted(name[len(GROUP_PREFIX) :])}",
                )
            found.append(MemberOf(self.group_name(where, name, groups, prefixed=False)))
        if "quota" in table:
            where = (*path, "quota")
            quota = self.table(where, table["quota"], '{ units = 100, window = "1h" }')
            self.check_keys(quota, where, _QUOTA_KEYS)
            for key in _QUOTA_KEYS:
                if key not in quota:
                    raise self.missing(
                        where, key, 'both units and window: { units = 100, window = "1h" }'
                    )
            units = self.integer((*where, "units"), quota["units"], 1, MAX_UNITS)
            window = self.window((*where, "window"), quota["window"])
            found.append(Quota(units, window))
        return tuple(found)


__all__ = ["VERSION", "KeyPath", "LineLocator", "field_name", "parse_policy"]
