"""The Membrane: one object that answers "may this peer do this?".

``check_access(peer, request, now)`` follows the overview's four steps:
the peer's trust via QVL, the grant, every constraint, then the decision
(allow or deny) recorded in the audit log.  The peer is always a DID the
caller authenticated (the session path passes the session's peer DID),
never a claim from a message.

:class:`Membrane` is the session core's
:class:`~l2session.core.link.envelope.AccessGate` (``screen``), so a node that has
one refuses a capability request before its application sees it.  It is
pure: ``now`` is passed in; the audit sink and the trust sink are callables
the runtime wires to the store (runtime/policyfile.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from l2session.core.link.envelope import AccessRecord, Request
from l2session.errors import AccessDenied
from l2session.membrane import decision
from l2session.membrane.decision import Decision, Step
from l2session.membrane.policy import MembranePolicy
from l2session.membrane.quota import QuotaLedger
from l2session.membrane.trust import TrustExplanation, TrustGraph, TrustPath
from l2session.membrane.trust_statement import TrustStatement

AuditSink = Callable[[AccessRecord], None]
#: What a peer refused at the trust step is told.
UNTRUSTED = "this node does not trust the sender enough for any request"
TrustSink = Callable[[TrustStatement], None]


@dataclass(frozen=True, slots=True)
class Report:
    """What :meth:`Membrane.explain` found: the verdict and every step."""

    allowed: bool
    reason: str
    trust: float
    steps: tuple[Step, ...]


class Membrane:
    """Policy + trust graph + quota ledger + audit sink (see module doc)."""

    __slots__ = ("_audit", "_ledger", "_on_trust", "_policy", "trust")

    def __init__(
        self,
        policy: MembranePolicy,
        trust: TrustGraph,
        *,
        audit: AuditSink | None = None,
        on_trust: TrustSink | None = None,
        ledger: QuotaLedger | None = None,
    ) -> None:
        self._policy = policy
        self.trust = trust
        self._audit = audit
        self._on_trust = on_trust
        self._ledger = ledger if ledger is not None else QuotaLedger()

    @property
    def policy(self) -> MembranePolicy:
        return self._policy

    def set_policy(self, policy: MembranePolicy) -> None:
        """Adopt a new policy (a reload).  Quota use is kept per grant name,
        so a grant that keeps its ``id`` keeps what its peers used."""
        self._policy = policy

    @property
    def ledger(self) -> QuotaLedger:
        return self._ledger

    # ------------------------------------------------------------------

    def decide(self, peer_did: str, request: Request, now: float) -> Decision:
        """The decision, recorded in the audit log; quota is consumed when
        it allows."""
        score = self.trust.score(peer_did, now)
        verdict = decision.decide(self._policy, peer_did, request, score, now, self._ledger)
        if self._audit is not None:
            self._audit(
                AccessRecord(
                    peer_did,
                    verdict.allowed,
                    request.action,
                    request.resource,
                    request.units,
                    verdict.step,
                    verdict.reason,
                    verdict.grant,
                    now,
                )
            )
        return verdict

    def check_access(self, peer_did: str, request: Request, now: float) -> Decision:
        """:meth:`decide`, raising :class:`AccessDenied` (with the reason and
        the step that refused) when it denies."""
        verdict = self.decide(peer_did, request, now)
        if not verdict.allowed:
            raise AccessDenied(
                f"{peer_did} may not {request}: {verdict.reason}",
                reason=verdict.reason,
                step=verdict.step,
            )
        return verdict

    def screen(self, peer_did: str, request: Request, now: float) -> str | None:
        """The session core's gate: None to deliver, else the reason the
        peer is told.  A peer refused for its trust learns only that (the
        audit log keeps the score and the threshold): the check comes
        first so that an untrusted peer learns nothing about the policy."""
        verdict = self.decide(peer_did, request, now)
        if verdict.allowed:
            return None
        return UNTRUSTED if verdict.step == "trust" else verdict.reason

    def explain(self, peer_did: str, request: Request, now: float) -> Report:
        """Every check, step by step, without recording anything or
        consuming quota (``l2session policy check``)."""
        why = self.trust.explain(peer_did, now)
        steps: list[Step] = [Step("QVL trust", True, describe_trust(why))]
        result = decision.explain(self._policy, peer_did, request, why.score, now, self._ledger)
        steps.extend(result.steps)
        return Report(result.allowed, result.reason, why.score, tuple(steps))

    # ------------------------------------------------------------------

    def add_trust(self, statement: TrustStatement, now: float) -> bool:
        """Add a signed trust statement (verified; see TrustGraph.add) and
        hand it to the trust sink to be kept; True if the graph changed."""
        changed = self.trust.add(statement, now)
        if changed and self._on_trust is not None:
            self._on_trust(statement)
        return changed


def _short(did: str) -> str:
    return did if len(did) <= 24 else f"{did[:16]}…{did[-6:]}"


def describe_path(path: TrustPath) -> str:
    """``root -(+0.900)-> a -(-0.500)-> b = -0.360``: each hop's decayed weight."""
    parts = [_short(path.dids[0])]
    for did, weight in zip(path.dids[1:], path.weights, strict=True):
        parts.append(f"-({weight:+.3f})-> {_short(did)}")
    return f"{' '.join(parts)} = {path.value:+.3f}"


def describe_trust(why: TrustExplanation) -> str:
    """One line: the score and the paths that made it."""
    if why.positive is None and why.negative is None:
        if why.score == 1.0:
            return "score 1.000 (this node itself)"
        return f"score {why.score:.3f}: unknown within 3 hops, neutral"
    paths = [describe_path(p) for p in (why.positive, why.negative) if p is not None]
    return f"score {why.score:.3f} from trust {why.trust:+.3f}: " + "; ".join(paths)
