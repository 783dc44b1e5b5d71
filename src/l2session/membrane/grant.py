"""One grant of a Membrane policy: who may do which actions on which
resources, under which conditions (the policy and its index are in
:mod:`l2session.membrane.policy`, which re-exports everything here)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from l2session.core.link.envelope import action_problem, canonical_resource, resource_problem
from l2session.errors import ConfigError, InvalidDid, InvalidForeignIdentity
from l2session.identity.did import Did
from l2session.identity.foreign import ForeignIdentity, is_foreign
from l2session.membrane.conditions import (
    CONDITION_ORDER,
    NAME_RULE,
    Condition,
    Expires,
    MemberOf,
    MinTrust,
    Quota,
    name_problem,
)

#: In ``peers``: any peer.  In ``actions``: any action.
ANY: Final = "*"
#: In ``peers``: ``"group:NAME"`` names the members of group NAME.
GROUP_PREFIX: Final = "group:"

#: Most grants one policy may hold.
MAX_GRANTS: Final = 10_000
#: Most groups one policy may define.
MAX_GROUPS: Final = 1_000
#: Most group members one policy may list, all groups together.
MAX_GROUP_MEMBERS: Final = 100_000
#: Most entries in one grant's ``peers`` (use a group for more).
MAX_PEERS_PER_GRANT: Final = 1_000
#: Most entries in one grant's ``actions``.
MAX_ACTIONS_PER_GRANT: Final = 64


def normalize_resource(resource: str) -> str:
    """The canonical form of ``resource`` (:func:`canonical_resource`: the
    one place grants and requests are canonicalised): percent-decoded once,
    dot segments, ``//``, backslashes and double encoding refused, trailing
    slashes dropped -- ``chapter://berlin/`` -> ``chapter://berlin``,
    ``feed:///`` -> ``feed://``, ``chapter://berlin%2Fx`` -> ``chapter://berlin/x``.
    Raises :class:`~l2session.errors.ConfigError` for a resource it refuses."""
    return canonical_resource(resource)


# --------------------------------------------------------------------------
# Grants


def peer_problem(peer: object) -> str | None:
    """Why ``peer`` cannot be a ``peers`` entry (None when it can): ``"*"``,
    ``"group:NAME"``, a DID or a foreign peer (``nostr:npub1…``)."""
    if not isinstance(peer, str):
        return f"a peer must be a string, got {type(peer).__name__}"
    if peer == ANY:
        return None
    if peer.startswith(GROUP_PREFIX):
        name = peer[len(GROUP_PREFIX) :]
        if name_problem(name) is not None:
            return f"group name {name!r} in {peer!r} is not {NAME_RULE}"
        return None
    if is_foreign(peer):
        return canonical_foreign_problem(peer)
    try:
        Did.parse(peer)
    except InvalidDid as exc:
        return f"{exc} (a peer is '*', a DID, 'nostr:npub1…' or 'group:NAME')"
    return None


def canonical_foreign_problem(peer: str) -> str | None:
    """Why ``peer`` is not a foreign peer's canonical name (``nostr:npub1…``):
    sessions, the audit chain and the store use that one form, so a policy
    must too, or it would never match."""
    try:
        canonical = ForeignIdentity.parse(peer).text
    except InvalidForeignIdentity as exc:
        return str(exc)
    if canonical != peer:
        return f"write the foreign peer {peer!r} as {canonical!r}"
    return None


@dataclass(frozen=True, slots=True)
class Grant:
    """One capability: ``actions`` on ``resource`` (a prefix) for ``peers``,
    under ``conditions``.

    ``index`` is the grant's 1-based position in the policy (messages say
    "grant #3"; the quota ledger counts per index); ``id`` is the optional
    name the file gives it; ``line`` is where its ``[[grant]]`` header is.
    The fields after ``line`` are derived at construction so the decision
    hot path reads attributes instead of scanning ``conditions``.
    """

    index: int
    peers: frozenset[str]
    resource: str
    actions: frozenset[str]
    conditions: tuple[Condition, ...] = ()
    id: str | None = None
    line: int = field(default=0, compare=False)

    #: The id, or ``"grant #INDEX"``.
    name: str = field(init=False, compare=False)
    #: How reasons name the grant: ``"grant 'public-feed'"`` or ``"grant #3"``.
    label: str = field(init=False, repr=False, compare=False)
    any_peer: bool = field(init=False, repr=False, compare=False)
    peer_dids: frozenset[str] = field(init=False, repr=False, compare=False)
    peer_groups: tuple[str, ...] = field(init=False, repr=False, compare=False)
    any_action: bool = field(init=False, repr=False, compare=False)
    expires: float | None = field(init=False, repr=False, compare=False)
    min_trust: float | None = field(init=False, repr=False, compare=False)
    member_of: str | None = field(init=False, repr=False, compare=False)
    quota: Quota | None = field(init=False, repr=False, compare=False)
    #: The reason an allowed decision gives, built once.
    allow_reason: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.index) is not int or self.index < 1:
            raise ConfigError(f"grant index must be an int >= 1, got {self.index!r}")
        label = f"grant #{self.index}"
        if self.id is not None:
            if not isinstance(self.id, str) or name_problem(self.id) is not None:
                raise ConfigError(f"{label} id {self.id!r} is not {NAME_RULE}")
            label = f"grant {self.id!r}"
        set_ = object.__setattr__
        set_(self, "name", self.id if self.id is not None else f"grant #{self.index}")
        set_(self, "label", label)
        self._check_peers(label)
        self._check_actions(label)
        problem = resource_problem(self.resource)
        if problem is not None:
            raise ConfigError(f"{label} resource: {problem}")
        set_(self, "resource", normalize_resource(self.resource))
        self._check_conditions(label)

    def _check_peers(self, label: str) -> None:
        peers = _string_set(
            f"{label} peers",
            self.peers,
            MAX_PEERS_PER_GRANT,
            empty="name '*', a DID or 'group:NAME'",
            over="; use a group",
            problem_of=peer_problem,
        )
        object.__setattr__(self, "peers", peers)
        object.__setattr__(self, "any_peer", ANY in peers)
        dids = frozenset(p for p in peers if p != ANY and not p.startswith(GROUP_PREFIX))
        object.__setattr__(self, "peer_dids", dids)
        groups = sorted(p[len(GROUP_PREFIX) :] for p in peers if p.startswith(GROUP_PREFIX))
        object.__setattr__(self, "peer_groups", tuple(groups))

    def _check_actions(self, label: str) -> None:
        actions = _string_set(
            f"{label} actions",
            self.actions,
            MAX_ACTIONS_PER_GRANT,
            empty="name an action such as 'read', or '*'",
            over="",
            problem_of=lambda action: None if action == ANY else action_problem(action),
        )
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "any_action", ANY in actions)

    def _check_conditions(self, label: str) -> None:
        conditions = tuple(self.conditions)
        seen: set[type] = set()
        for condition in conditions:
            kind = type(condition)
            if kind not in CONDITION_ORDER:
                raise ConfigError(
                    f"{label} conditions: {condition!r} is not MemberOf, Quota, Expires or MinTrust"
                )
            if kind in seen:
                raise ConfigError(f"{label} conditions: more than one {kind.__name__}")
            seen.add(kind)
        conditions = tuple(sorted(conditions, key=lambda c: CONDITION_ORDER[type(c)]))
        set_ = object.__setattr__
        set_(self, "conditions", conditions)
        set_(self, "expires", None)
        set_(self, "min_trust", None)
        set_(self, "member_of", None)
        set_(self, "quota", None)
        for condition in conditions:
            if isinstance(condition, Expires):
                set_(self, "expires", condition.at)
            elif isinstance(condition, MinTrust):
                set_(self, "min_trust", condition.score)
            elif isinstance(condition, MemberOf):
                set_(self, "member_of", condition.group)
            else:
                set_(self, "quota", condition)
        set_(self, "allow_reason", f"allowed by {label}")

    def covers(self, resource: str) -> bool:
        """Whether this grant's resource prefix covers ``resource``
        (segment-aware: ``chapter://berlin`` does not cover ``chapter://berlinale``)."""
        try:
            target = canonical_resource(resource)
        except ConfigError:
            return False  # a resource that is refused is covered by nothing
        mine = self.resource
        if target == mine:
            return True
        if mine.endswith("://"):
            return target.startswith(mine)
        return target.startswith(mine + "/")

    def allows_action(self, action: str) -> bool:
        """Whether ``action`` is one of this grant's actions (or it allows any)."""
        return self.any_action or action in self.actions

    def summary(self) -> str:
        """``"grant 'x': read, write feed://my-channel for *"`` (for explanations)."""
        actions = ", ".join(sorted(self.actions))
        return f"{self.label}: {actions} {self.resource} for {_show_peers(self.peers)}"


def _show_peers(peers: frozenset[str], limit: int = 3) -> str:
    ordered = sorted(peers)
    shown = ", ".join(ordered[:limit])
    if len(ordered) > limit:
        shown += f" and {len(ordered) - limit} more"
    return shown


# --------------------------------------------------------------------------
# The policy and its index


def _string_set(
    what: str,
    value: object,
    limit: int,
    *,
    empty: str,
    over: str,
    problem_of: Callable[[object], str | None],
) -> frozenset[str]:
    """``value`` as a non-empty frozenset of valid strings, at most ``limit``
    of them (the first problem, in sorted order, is the error)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{what}: expected a set of strings, got {value!r}")
    items = frozenset(value)
    if not items:
        raise ConfigError(f"{what}: empty; {empty}")
    if len(items) > limit:
        raise ConfigError(f"{what}: {len(items)} entries exceed {limit}{over}")
    for item in sorted(items, key=str):
        problem = problem_of(item)
        if problem is not None:
            raise ConfigError(f"{what}: {problem}")
    return items
