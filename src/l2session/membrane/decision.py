"""Deciding a capability request against a policy: :func:`decide`, the hot
path, and :func:`explain`, the same decision narrated step by step.

The order of the checks is fixed, and each refusal names the step that
refused (the audit log and the denial frame carry it):

1. ``"trust"``: the peer's QVL trust score against the policy's
   :class:`~l2session.membrane.policy.MinTrust` constraint.  First, so that
   an untrusted peer learns nothing about which grants exist.
2. ``"grant"``: is there a grant for this peer, action and resource?
3. ``"constraint"``: the policy's expiry and constraints (``max_units``),
   then the conditions of the matching grants, most specific first.  The
   first grant whose conditions all pass allows the request; when none
   does, the reason is the first failing condition of the *most specific*
   grant, which is the one the policy's author most likely meant.
4. The caller records the decision (the audit log).

Quota units are consumed only when the whole decision allows, and only
under the allowing grant, so a refused request costs the peer nothing and
no grant is charged for a request another grant allowed.

Boundaries (tested): a trust score equal to a minimum passes; a policy or
grant expiring *at* ``now`` has expired; a quota of 100 allows exactly 100
units per window.  Comparisons are written so that NaN fails them: a NaN
trust score or clock never allows anything.

Why two functions: :func:`decide` runs for every request message, so it
reads precomputed attributes and formats a reason only when it denies.
:func:`explain` is for people (``l2session policy check POLICY DID
CAPABILITY``): it narrates every check with its values, and never consumes
quota.  Both build their reasons with the same functions below, and a
property test checks that they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from l2session.core.link.envelope import Request
from l2session.membrane.policy import (
    Grant,
    MembranePolicy,
    format_span,
    format_time,
    format_window,
)
from l2session.membrane.quota import QuotaLedger

#: The values of :attr:`Decision.step`.
TRUST: Final = "trust"
GRANT: Final = "grant"
CONSTRAINT: Final = "constraint"
ALLOWED: Final = "allowed"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request.  ``reason`` is one line for the audit
    log and the denial frame; ``step`` is ``"trust"``, ``"grant"``,
    ``"constraint"`` or ``"allowed"``; ``grant`` names the grant that
    allowed, or the grant whose condition refused (None when no grant was
    involved: trust, no match, or a policy-wide constraint)."""

    allowed: bool
    reason: str
    step: str
    grant: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One check of an explanation: what was checked, whether it passed,
    and the values involved."""

    check: str
    passed: bool
    detail: str

    def __str__(self) -> str:
        return f"{'✓' if self.passed else '✗'} {self.check}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision with the checks that led to it, in order; the last step
    is ``"decision"``."""

    decision: Decision
    steps: tuple[Step, ...]

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def reason(self) -> str:
        return self.decision.reason

    def __str__(self) -> str:
        return "\n".join(map(str, self.steps))


# --------------------------------------------------------------------------
# The hot path


def decide(
    policy: MembranePolicy,
    peer_did: str,
    request: Request,
    trust: float,
    now: float,
    ledger: QuotaLedger,
) -> Decision:
    """Decide whether ``peer_did`` (the session's authenticated DID, never a
    claim from the message) may have ``request``, given its QVL ``trust``
    score and the time ``now`` (UNIX seconds).  Consumes quota on the
    allowing grant when it allows.  A non-finite ``now`` never passes an
    expiry, and raises :class:`~l2session.errors.ConfigError` if a quota
    must be read (the clock is the caller's)."""
    minimum = policy.min_trust
    if minimum is not None and not trust >= minimum:
        return Decision(False, _trust_detail(trust, minimum), TRUST)
    candidates = policy.iter_matching(peer_did, request)
    first = next(candidates, None)
    if first is None:
        return Decision(False, _no_grant(peer_did, request), GRANT)
    ends = policy.expires_at
    limit = policy.max_units
    if (ends is not None and not now < ends) or (limit is not None and request.units > limit):
        for step in _policy_steps(policy, request, now):
            if not step.passed:
                return Decision(False, step.detail, CONSTRAINT)
    groups = policy.groups
    grant: Grant | None = first
    while grant is not None:
        # The conditions, in the order _condition_steps reports them.
        at = grant.expires
        score = grant.min_trust
        group = grant.member_of
        quota = grant.quota
        if (
            (at is None or now < at)
            and (score is None or trust >= score)
            and (group is None or peer_did in groups[group])
            and (
                quota is None
                or (
                    ledger.used(grant, peer_did, now) + request.units <= quota.units
                    and ledger.has_room(grant, peer_did, now)
                )
            )
        ):
            if quota is not None:
                ledger.consume(grant, peer_did, request.units, now)
            return Decision(True, grant.allow_reason, ALLOWED, grant.name)
        grant = next(candidates, None)
    for step in _condition_steps(policy, first, peer_did, request, trust, now, ledger):
        if not step.passed:
            return Decision(False, step.detail, CONSTRAINT, first.name)
    raise AssertionError(f"{first.label} failed without a failing condition")  # pragma: no cover


# --------------------------------------------------------------------------
# The narration


def explain(
    policy: MembranePolicy,
    peer_did: str,
    request: Request,
    trust: float,
    now: float,
    ledger: QuotaLedger,
) -> Explanation:
    """The decision :func:`decide` would make, with every check narrated,
    without consuming quota (a dry run)."""
    steps: list[Step] = []

    def finish(decision: Decision) -> Explanation:
        steps.append(Step("decision", decision.allowed, decision.reason))
        return Explanation(decision, tuple(steps))

    trust_step = _trust_step(policy, trust)
    steps.append(trust_step)
    if not trust_step.passed:
        return finish(Decision(False, trust_step.detail, TRUST))

    candidates = policy.matching(peer_did, request)
    if not candidates:
        reason = _no_grant(peer_did, request)
        steps.append(Step(GRANT, False, reason))
        steps.extend(_near_misses(policy, peer_did, request))
        return finish(Decision(False, reason, GRANT))
    steps.extend(Step(GRANT, True, f"{grant.summary()} matches") for grant in candidates)

    for step in _policy_steps(policy, request, now):
        steps.append(step)
        if not step.passed:
            return finish(Decision(False, step.detail, CONSTRAINT))

    refusal: str | None = None
    for grant in candidates:
        grant_steps = _condition_steps(policy, grant, peer_did, request, trust, now, ledger)
        steps.extend(grant_steps or [Step(grant.label, True, "no conditions")])
        failed = next((step for step in grant_steps if not step.passed), None)
        if failed is None:
            return finish(Decision(True, grant.allow_reason, ALLOWED, grant.name))
        if refusal is None:
            refusal = failed.detail
    assert refusal is not None
    return finish(Decision(False, refusal, CONSTRAINT, candidates[0].name))


# --------------------------------------------------------------------------
# Reasons, shared by decide() and explain()


def _numbers(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` formatted briefly, but never as the same text when
    they differ ("trust 0.5 is below the minimum 0.5" would be a riddle)."""
    for digits in (3, 6, 17):
        shown = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if shown[0] != shown[1] or a == b:
            return shown
    return repr(a), repr(b)  # pragma: no cover - 17 digits tell floats apart


def _trust_detail(trust: float, minimum: float, grant: Grant | None = None) -> str:
    shown, least = _numbers(trust, minimum)
    whose = f"the minimum {least} of {grant.label}" if grant else f"the policy's minimum {least}"
    if trust >= minimum:
        return f"trust {shown} meets {whose}"
    return f"trust {shown} is below {whose}"


def _trust_step(policy: MembranePolicy, trust: float) -> Step:
    minimum = policy.min_trust
    if minimum is None:
        return Step(TRUST, True, f"trust {trust:.3g}; the policy sets no minimum")
    return Step(TRUST, trust >= minimum, _trust_detail(trust, minimum))


def _no_grant(peer_did: str, request: Request) -> str:
    return f"no grant allows {request.action} {request.resource} to {peer_did}"


def _near_misses(policy: MembranePolicy, peer_did: str, request: Request) -> list[Step]:
    """Grants on the resource that do not apply, and why: the usual mistake
    is a wrong action or a peer missing from a group."""
    covering = policy.covering(request.resource)
    steps: list[Step] = []
    for grant in covering[:10]:
        if not grant.allows_action(request.action):
            actions = ", ".join(sorted(grant.actions))
            detail = f"{grant.label} on {grant.resource} allows {actions}, not {request.action}"
        else:
            detail = (
                f"{grant.label} on {grant.resource} is for "
                f"{_peers_text(grant)}, which does not include this peer"
            )
        steps.append(Step(GRANT, False, detail))
    if len(covering) > 10:
        steps.append(Step(GRANT, False, f"and {len(covering) - 10} more grants on the resource"))
    return steps


def _peers_text(grant: Grant) -> str:
    peers = sorted(grant.peers)
    text = ", ".join(peers[:3])
    return text if len(peers) <= 3 else f"{text} and {len(peers) - 3} more"


def _policy_steps(policy: MembranePolicy, request: Request, now: float) -> list[Step]:
    steps: list[Step] = []
    ends = policy.expires_at
    if ends is not None:
        if now < ends:
            detail = f"policy valid until {format_time(ends)} ({format_span(ends - now)} left)"
            steps.append(Step("policy expires", True, detail))
        else:
            steps.append(Step("policy expires", False, f"policy expired at {format_time(ends)}"))
    limit = policy.max_units
    if limit is not None:
        units = request.units
        if units <= limit:
            detail = f"{units} units within the policy's maximum of {limit} per request"
            steps.append(Step("policy max_units", True, detail))
        else:
            detail = f"request asks {units} units, more than the policy's maximum of {limit}"
            steps.append(Step("policy max_units", False, detail))
    return steps


def _condition_steps(
    policy: MembranePolicy,
    grant: Grant,
    peer_did: str,
    request: Request,
    trust: float,
    now: float,
    ledger: QuotaLedger,
) -> list[Step]:
    """Each condition of ``grant`` checked and described, in the order
    :func:`decide` checks them (expires, min_trust, member_of, quota)."""
    label = grant.label
    steps: list[Step] = []
    at = grant.expires
    if at is not None:
        if now < at:
            detail = f"{label} valid until {format_time(at)} ({format_span(at - now)} left)"
            steps.append(Step(f"{label} expires", True, detail))
        else:
            steps.append(Step(f"{label} expires", False, f"{label} expired at {format_time(at)}"))
    score = grant.min_trust
    if score is not None:
        detail = _trust_detail(trust, score, grant)
        steps.append(Step(f"{label} min_trust", trust >= score, detail))
    group = grant.member_of
    if group is not None:
        member = peer_did in policy.groups[group]
        detail = f"peer is {'' if member else 'not '}a member of group {group!r}"
        steps.append(Step(f"{label} member_of", member, detail))
    quota = grant.quota
    if quota is not None:
        used = ledger.used(grant, peer_did, now)
        asked = request.units
        per = f"{quota.units} units per {format_window(quota.window)}"
        resets = format_span(ledger.resets_at(grant, now) - now)
        if asked > quota.units:
            passed, detail = False, f"{asked} units asked exceed the quota of {per}"
        elif used + asked > quota.units:
            state = "used up" if used >= quota.units else "would be exceeded"
            detail = f"quota of {per} {state} ({used} used, {asked} asked; resets in {resets})"
            passed = False
        elif not ledger.has_room(grant, peer_did, now):
            passed = False
            detail = (
                f"quota ledger full ({ledger.size} counters); "
                "new peers are refused until a quota window ends"
            )
        else:
            passed = True
            left = quota.units - used - asked
            detail = (
                f"quota of {per}: {used} used, {asked} asked, "
                f"{left} left after this (resets in {resets})"
            )
        steps.append(Step(f"{label} quota", passed, detail))
    return steps


__all__ = [
    "ALLOWED",
    "CONSTRAINT",
    "GRANT",
    "TRUST",
    "Decision",
    "Explanation",
    "QuotaLedger",
    "Step",
    "decide",
    "explain",
]
