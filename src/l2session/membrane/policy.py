"""The Membrane's policy model: who may do what to which resource, and when.

A :class:`MembranePolicy` is a list of :class:`Grant` s ("anyone may
``read feed://my-channel``", "members of *berlin* may ``write
chapter://berlin/proposals``", "anyone may ``call service://payment`` up to
100 units an hour"), policy-wide *constraints* that bound every request
(:class:`MinTrust`, :class:`MaxUnits`, :class:`Expires`), an optional expiry
of the whole policy, and named *groups* of DIDs.  Everything is a frozen
value: a decision reads one consistent policy, and changing the policy
(a reload, a membership change) means swapping the value.

Why values are validated at construction: a policy is a security boundary,
so a grant that cannot be what its author meant (an unknown group, a DID
with a typo, a negative quota) must be refused when the policy is built,
never discovered while a request is being decided.  An invalid condition
or grant raises :class:`~l2session.errors.ConfigError` naming the grant; an
invalid policy raises :class:`~l2session.errors.PolicyError` (a
``ConfigError``) citing its source and the grant's line.  The TOML loader
(:mod:`l2session.membrane.policy_file`) checks the same things first, with
the line of the very key at fault.

Matching rules:

* A grant's ``resource`` is a *prefix*, matched segment by segment:
  ``chapter://berlin`` covers ``chapter://berlin`` and
  ``chapter://berlin/proposals`` but not ``chapter://berlinale``; the bare
  ``feed://`` covers every ``feed://`` resource.  Trailing slashes are
  ignored on both sides (``chapter://berlin/`` is ``chapter://berlin``).
* ``actions`` lists the actions a grant allows; ``"*"`` allows any.
* ``peers`` lists DIDs, group references ``"group:NAME"`` and ``"*"``
  (anyone).  DIDs compare as exact text, as DID Core compares them.
* Among the grants that match a request, the most specific resource comes
  first, then file order.

Why an index: the Membrane screens every request message, so matching must
not walk the whole policy.  The policy maps each grant's normalized resource
to a bucket, and a request walks only its own prefixes (``scheme://a/b``,
``scheme://a``, ``scheme://``), most specific first.  Inside a bucket,
grants that name DIDs explicitly are indexed by DID, so a thousand
per-member grants on one resource cost one dictionary lookup; grants for
groups are indexed by group, so membership is tested once per distinct
group.

Memberships change at runtime (someone joins *berlin*):
:meth:`MembranePolicy.with_members` returns a new policy that shares the
grants and the index and replaces one group, validating only that group's
DIDs.  Keeping the policy immutable, rather than holding groups in a mutable
object, means a decision and its explanation always see the same
membership, and a half-applied change cannot be observed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from l2session.core.link.envelope import Request
from l2session.errors import ConfigError, InvalidDid, PolicyError
from l2session.identity.did import Did
from l2session.identity.foreign import is_foreign
from l2session.membrane.conditions import (
    CONSTRAINT_ORDER,
    MAX_TIMESTAMP,
    MAX_WINDOW,
    MIN_WINDOW,
    NAME_RULE,
    Condition,
    Constraint,
    Expires,
    MaxUnits,
    MemberOf,
    MinTrust,
    Quota,
    format_span,
    format_time,
    format_window,
    name_problem,
)
from l2session.membrane.grant import (
    ANY,
    GROUP_PREFIX,
    MAX_ACTIONS_PER_GRANT,
    MAX_GRANTS,
    MAX_GROUP_MEMBERS,
    MAX_GROUPS,
    MAX_PEERS_PER_GRANT,
    Grant,
    canonical_foreign_problem,
    normalize_resource,
    peer_problem,
)


class _Bucket:
    """The grants whose normalized resource is one key of the index, each
    tuple in file order: ``every`` grant; per DID, the grants that list it
    (``by_peer``); the grants open to ``"*"`` (``anyone``); per group, the
    grants that name ``group:NAME`` (``by_group``).  A peer's grants are
    found by a few lookups, with one membership test per *distinct* group,
    however many grants share the resource.  ``actions`` is the union of
    the grants' actions, so a request for an action none of them allows
    skips the bucket at once."""

    __slots__ = ("actions", "any_action", "anyone", "by_group", "by_peer", "every")

    def __init__(self, every: tuple[Grant, ...]) -> None:
        self.every = every
        by_peer: dict[str, list[Grant]] = {}
        by_group: dict[str, list[Grant]] = {}
        for grant in every:
            if grant.any_peer:
                continue  # in ``anyone``; its other entries add nothing
            for did in grant.peer_dids:
                by_peer.setdefault(did, []).append(grant)
            for group in grant.peer_groups:
                by_group.setdefault(group, []).append(grant)
        self.by_peer = {did: tuple(grants) for did, grants in by_peer.items()}
        self.by_group = {group: tuple(grants) for group, grants in by_group.items()}
        self.anyone = tuple(grant for grant in every if grant.any_peer)
        self.actions: frozenset[str] = frozenset().union(*(grant.actions for grant in every))
        self.any_action = ANY in self.actions

    def admitting(self, peer_did: str, groups: Mapping[str, frozenset[str]]) -> Sequence[Grant]:
        """The grants of this bucket whose peers include ``peer_did``, in
        file order."""
        parts: list[tuple[Grant, ...]] = []
        mine = self.by_peer.get(peer_did)
        if mine:
            parts.append(mine)
        if self.anyone:
            parts.append(self.anyone)
        for group, grants in self.by_group.items():
            if peer_did in groups[group]:
                parts.append(grants)
        if len(parts) <= 1:
            return parts[0] if parts else ()
        # A grant can be reached twice (its DID and a group): merge by index.
        merged = {grant.index: grant for part in parts for grant in part}
        return [merged[index] for index in sorted(merged)]


def _build_index(grants: tuple[Grant, ...]) -> dict[str, _Bucket]:
    every: dict[str, list[Grant]] = {}
    for grant in grants:
        every.setdefault(grant.resource, []).append(grant)
    return {key: _Bucket(tuple(grants_)) for key, grants_ in every.items()}


def _fail(source: str, problem: str, *, line: int = 0, field_: str = "") -> PolicyError:
    where = f"{source}:{line}" if line else source
    return PolicyError(f"{where}: {problem}", path=source, line=line, field=field_)


def _validate_members(source: str, group: str, members: object) -> frozenset[str]:
    if name_problem(group) is not None:
        raise _fail(source, f"group name {group!r} is not {NAME_RULE}", field_="groups")
    if isinstance(members, str) or not isinstance(members, Iterable):
        raise _fail(
            source,
            f"group {group!r}: expected a collection of DIDs, got {type(members).__name__}",
            field_=f"groups.{group}",
        )
    result = frozenset(members)
    for member in sorted(result, key=str):
        if not isinstance(member, str):
            raise _fail(
                source,
                f"group {group!r}: a member must be a DID string, got {member!r}",
                field_=f"groups.{group}",
            )
        if is_foreign(member):
            problem = canonical_foreign_problem(member)
            if problem is not None:
                raise _fail(source, f"group {group!r}: {problem}", field_=f"groups.{group}")
            continue
        try:
            Did.parse(member)
        except InvalidDid as exc:
            raise _fail(source, f"group {group!r}: {exc}", field_=f"groups.{group}") from None
    return result


@dataclass(frozen=True, slots=True)
class MembranePolicy:
    """A whole policy: ``grants`` (their ``index`` is their 1-based position),
    policy-wide ``constraints`` checked on every request, the policy's
    ``expiry`` (UNIX seconds, or None), named ``groups`` of DIDs, and the
    ``source`` (file name) that messages cite.

    Construction validates everything and builds the matching index;
    invalid input raises :class:`~l2session.errors.PolicyError`.
    """

    grants: tuple[Grant, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    expiry: float | None = None
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict, hash=False)
    source: str = field(default="<policy>", compare=False)

    #: The policy-wide minimum trust score, if any.
    min_trust: float | None = field(init=False, repr=False, compare=False)
    #: The policy-wide bound on units per request, if any.
    max_units: int | None = field(init=False, repr=False, compare=False)
    #: When the policy stops allowing anything: the earlier of ``expiry`` and
    #: an :class:`Expires` constraint (None: never).
    expires_at: float | None = field(init=False, repr=False, compare=False)
    _index: dict[str, _Bucket] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        source = self.source
        if not isinstance(source, str):
            raise ConfigError(f"policy source must be a str, got {source!r}")
        set_ = object.__setattr__
        grants = tuple(self.grants)
        if len(grants) > MAX_GRANTS:
            extra = grants[MAX_GRANTS]
            raise _fail(
                source,
                f"{len(grants)} grants exceed the limit of {MAX_GRANTS}; "
                "merge grants, or use groups and resource prefixes",
                line=extra.line if isinstance(extra, Grant) else 0,
                field_=f"grant[{MAX_GRANTS + 1}]",
            )
        names: dict[str, Grant] = {}
        for position, grant in enumerate(grants, 1):
            if not isinstance(grant, Grant):
                raise _fail(source, f"grant {position} is not a Grant: {grant!r}")
            if grant.index != position:
                raise _fail(
                    source,
                    f"{grant.label} is at position {position}; a grant's index is its position",
                    line=grant.line,
                    field_=f"grant[{position}]",
                )
            if grant.name in names:
                raise _fail(
                    source,
                    f"grant #{position} id: {grant.name!r} is already the id of "
                    f"grant #{names[grant.name].index}; ids must be unique",
                    line=grant.line,
                    field_=f"grant[{position}].id",
                )
            names[grant.name] = grant
        set_(self, "grants", grants)
        self._check_constraints()
        groups = self._check_groups()
        for grant in grants:
            used = [*grant.peer_groups, *([grant.member_of] if grant.member_of else [])]
            for group in used:
                if group not in groups:
                    raise _fail(
                        source,
                        f"{grant.label} uses group {group!r}, which the policy does not define",
                        line=grant.line,
                        field_=f"grant[{grant.index}]",
                    )
        set_(self, "_index", _build_index(grants))

    def _check_constraints(self) -> None:
        set_ = object.__setattr__
        constraints = tuple(self.constraints)
        seen: set[type] = set()
        for constraint in constraints:
            kind = type(constraint)
            if kind not in CONSTRAINT_ORDER:
                raise _fail(
                    self.source,
                    f"constraint {constraint!r} is not MinTrust, Expires or MaxUnits",
                    field_="constraints",
                )
            if kind in seen:
                raise _fail(
                    self.source, f"more than one {kind.__name__} constraint", field_="constraints"
                )
            seen.add(kind)
        constraints = tuple(sorted(constraints, key=lambda c: CONSTRAINT_ORDER[type(c)]))
        set_(self, "constraints", constraints)
        expiry = self.expiry
        if expiry is not None:
            try:
                expiry = Expires(expiry).at
            except ConfigError as exc:
                raise _fail(self.source, f"policy {exc}", field_="expires") from None
            set_(self, "expiry", expiry)
        ends = [expiry] if expiry is not None else []
        set_(self, "min_trust", None)
        set_(self, "max_units", None)
        for constraint in constraints:
            if isinstance(constraint, MinTrust):
                set_(self, "min_trust", constraint.score)
            elif isinstance(constraint, MaxUnits):
                set_(self, "max_units", constraint.units)
            else:
                ends.append(constraint.at)
        set_(self, "expires_at", min(ends) if ends else None)

    def _check_groups(self) -> Mapping[str, frozenset[str]]:
        if not isinstance(self.groups, Mapping):
            raise _fail(self.source, f"groups must be a mapping, got {self.groups!r}")
        if len(self.groups) > MAX_GROUPS:
            raise _fail(
                self.source,
                f"{len(self.groups)} groups exceed the limit of {MAX_GROUPS}",
                field_="groups",
            )
        groups = {
            name: _validate_members(self.source, name, members)
            for name, members in self.groups.items()
        }
        _check_member_total(self.source, groups)
        frozen = MappingProxyType(groups)
        object.__setattr__(self, "groups", frozen)
        return frozen

    # -- matching ---------------------------------------------------------

    def iter_matching(self, peer_did: str, request: Request) -> Iterator[Grant]:
        """The grants that allow ``request``'s action on its resource to
        ``peer_did`` (conditions not evaluated), most specific resource
        first, then file order.  Lazy, so a decision stops at the first
        grant whose conditions pass."""
        index = self._index
        groups = self.groups
        action = request.action
        resource = request.resource
        head = resource.find("://") + 3
        pos = len(resource)
        while pos > head and resource[pos - 1] == "/":
            pos -= 1
        while True:
            bucket = index.get(resource[:pos])
            if bucket is not None and (bucket.any_action or action in bucket.actions):
                for grant in bucket.admitting(peer_did, groups):
                    if grant.any_action or action in grant.actions:
                        yield grant
            if pos == head:
                return
            pos = resource.rfind("/", head, pos)
            if pos < 0:
                pos = head
            while pos > head and resource[pos - 1] == "/":
                pos -= 1

    def matching(self, peer_did: str, request: Request) -> list[Grant]:
        """:meth:`iter_matching` as a list."""
        return list(self.iter_matching(peer_did, request))

    def covering(self, resource: str) -> list[Grant]:
        """Every grant whose resource prefix covers ``resource``, whatever
        its peers and actions, most specific first (for explanations)."""
        found: list[Grant] = []
        try:
            resource = normalize_resource(resource)
        except ConfigError:
            return found  # refused: no grant covers it
        head = resource.find("://") + 3
        pos = len(resource)
        while True:
            bucket = self._index.get(resource[:pos])
            if bucket is not None:
                found.extend(bucket.every)
            if pos <= head:
                return found
            pos = resource.rfind("/", head, pos)
            if pos < 0:
                pos = head
            while pos > head and resource[pos - 1] == "/":
                pos -= 1

    def admits(self, grant: Grant, peer_did: str) -> bool:
        """Whether ``grant``'s peers include ``peer_did``: ``"*"``, the DID
        itself, or a group it is a member of (in this policy)."""
        if grant.any_peer or peer_did in grant.peer_dids:
            return True
        return any(peer_did in self.groups[group] for group in grant.peer_groups)

    def is_member(self, peer_did: str, group: str) -> bool:
        """Whether ``peer_did`` is in ``group`` (False for an unknown group)."""
        return peer_did in self.groups.get(group, frozenset())

    def grant_named(self, name: str) -> Grant | None:
        """The grant whose :attr:`Grant.name` is ``name``, if any."""
        for grant in self.grants:
            if grant.name == name:
                return grant
        return None

    # -- runtime changes --------------------------------------------------

    def with_members(self, group: str, dids: Iterable[str]) -> MembranePolicy:
        """A new policy in which ``group`` has exactly the members ``dids``
        (a new group is created if need be).  Only ``dids`` are validated
        and the grants' index is shared, so a membership change costs time
        in proportion to that group, not to the policy."""
        members = _validate_members(self.source, group, dids)
        groups = dict(self.groups)
        groups[group] = members
        if len(groups) > MAX_GROUPS:
            raise _fail(
                self.source,
                f"{len(groups)} groups exceed the limit of {MAX_GROUPS}",
                field_="groups",
            )
        _check_member_total(self.source, groups)
        # Every field but ``groups`` is unchanged and already validated, so
        # copy the value rather than re-running the constructor.
        changed = copy.copy(self)
        object.__setattr__(changed, "groups", MappingProxyType(groups))
        return changed


def _check_member_total(source: str, groups: Mapping[str, frozenset[str]]) -> None:
    total = sum(len(members) for members in groups.values())
    if total > MAX_GROUP_MEMBERS:
        raise _fail(
            source,
            f"groups list {total} members in all, more than the limit of {MAX_GROUP_MEMBERS}",
            field_="groups",
        )


__all__ = [
    "ANY",
    "GROUP_PREFIX",
    "MAX_ACTIONS_PER_GRANT",
    "MAX_GRANTS",
    "MAX_GROUPS",
    "MAX_GROUP_MEMBERS",
    "MAX_PEERS_PER_GRANT",
    "MAX_TIMESTAMP",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "NAME_RULE",
    "Condition",
    "Constraint",
    "Expires",
    "Grant",
    "MaxUnits",
    "MemberOf",
    "MembranePolicy",
    "MinTrust",
    "Quota",
    "format_span",
    "format_time",
    "format_window",
    "name_problem",
    "normalize_resource",
    "peer_problem",
]
