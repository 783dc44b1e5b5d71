"""The QVL trust graph: signed, weighted edges between DIDs, and scores.

An edge ``issuer -> subject`` has a weight in [-1, 1] (negative is distrust)
and enters the graph only as a :class:`TrustStatement` signed by its issuer.
The local node's own DID is the *root*; every score is the root's view.

The model
---------
A *path* is a walk of 1 to ``max_hops`` edges starting at the root (a DID
may appear twice: "x vouches for a, and a distrusts x" is evidence about x).
Every edge but the last must be positive: the root listens to the opinions of
those it trusts, not of those it distrusts, so a negative edge neither passes
trust on nor passes distrust on.  With ``w(e, at) = weight * 0.5 **
(max(0, at - issued_at) / half_life)`` (time decay), the value of a path of
``h`` edges is ``w(e1) * ... * w(eh) * hop_decay ** (h - 1)``.

For a DID ``x`` other than the root, with ``P`` the largest positive path
value ending at ``x`` (or 0) and ``N`` the most negative one (or 0)::

    t(x) = clamp(P + N, -1, 1)        # conflicting evidence cancels
    score(x) = neutral + (1 - neutral) * t   if t >= 0
               neutral + neutral * t         if t < 0

so with the default ``neutral = 0.5``, ``score = 0.5 + 0.5 * t``.  A DID
without such a path (unknown, or reached only through distrust) scores
exactly ``neutral``; the root scores 1.0.  Taking the strongest path rather
than a sum means that no number of sybils vouching for each other can raise a
score above that of their best single link to the root.

Cost
----
Scores are read on every access decision, so they are cached per DID, and
the cache is kept right incrementally.  Two forward tables hold the best
positive path value from the root to each DID within 1 hop (``P1``) and
within ``max_hops - 1`` hops (the *prefix* table).  The score of ``x`` then
combines ``x``'s incoming edges only: from the root directly, or from a DID
``u`` in the prefix table (value ``prefix(u) * hop_decay * w(u, x)``), which
costs O(in-degree of x).  When an edge changes, only what depends on it is
dropped: an edge of the root (or, with 3 hops, of a DID in ``P1``) changes
the tables, which are rebuilt (at most ``100 + 100 * 100`` edges) and the
cache cleared; any other edge changes the score of its subject alone.

Time decay is evaluated at the graph's *epoch*: the tables and every cached
score are exact as of :attr:`TrustGraph.epoch`, and are recomputed when a
call's ``now`` is more than ``config.refresh`` seconds away from it.  Scores
therefore lag time decay by at most ``refresh`` seconds (a minute by default,
against a half-life of months).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from l2session.errors import ConfigError, InvalidTrustStatement, TrustError, TrustGraphFull
from l2session.identity.did import Did
from l2session.membrane.trust_statement import KeyOf, TrustStatement, did_key_key_of

DAY: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """How trust propagates and how large the graph may grow."""

    #: Longest path considered, 1 to 3 edges.
    max_hops: int = 3
    #: Factor per hop beyond the first, in (0, 1].
    hop_decay: float = 0.8
    #: Seconds after which an edge's weight has halved; ``None`` (or inf)
    #: disables time decay.
    half_life: float | None = 180 * DAY
    #: Score of a DID the root has no opinion on, in [0, 1].
    neutral: float = 0.5
    #: Most DIDs in the graph (DIDs with at least one live edge).
    max_nodes: int = 10_000
    #: Most outgoing edges one issuer may assert.
    max_edges_per_node: int = 100
    #: How stale scores may get with respect to time decay, in seconds.
    refresh: float = 60.0
    #: Statements dated more than this many seconds ahead of ``now`` are refused.
    max_clock_skew: float = 300.0
    #: Revocations remembered so that older statements cannot be replayed;
    #: past this many, the oldest are forgotten (see :meth:`TrustGraph.add`).
    max_revocations: int = 10_000

    def __post_init__(self) -> None:
        _check_int(self.max_hops, "max_hops", 1, 3)
        _check_float(self.hop_decay, "hop_decay", low=0.0, high=1.0, low_open=True)
        if self.half_life is not None:
            _check_float(self.half_life, "half_life", low=0.0, low_open=True, finite=False)
        _check_float(self.neutral, "neutral", low=0.0, high=1.0)
        _check_int(self.max_nodes, "max_nodes", 2)
        _check_int(self.max_edges_per_node, "max_edges_per_node", 1)
        _check_float(self.refresh, "refresh", low=0.0, finite=False)
        _check_float(self.max_clock_skew, "max_clock_skew", low=0.0)
        _check_int(self.max_revocations, "max_revocations", 0)


def _check_int(value: object, name: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"TrustConfig.{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f"at least {low}"
        raise ConfigError(f"TrustConfig.{name} must be {bounds}, got {value}")


def _check_float(
    value: object,
    name: str,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    finite: bool = True,
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"TrustConfig.{name} must be a number, got {type(value).__name__}")
    number = float(value)
    below = number <= low if low_open else number < low
    if math.isnan(number) or below or (high is not None and number > high):
        interval = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"
        raise ConfigError(f"TrustConfig.{name} must be in {interval}, got {value!r}")
    if finite and math.isinf(number):
        raise ConfigError(f"TrustConfig.{name} must be finite, got {value!r}")


# --------------------------------------------------------------------------
# Explanations


@dataclass(frozen=True, slots=True)
class TrustPath:
    """One path from the root: ``dids[0]`` is the root, ``dids[-1]`` the
    subject; ``weights[i]`` is the time-decayed weight of the edge from
    ``dids[i]`` to ``dids[i + 1]``."""

    dids: tuple[str, ...]
    weights: tuple[float, ...]
    #: Product of the weights times ``hop_decay ** (hops - 1)``.
    value: float

    @property
    def hops(self) -> int:
        return len(self.weights)


@dataclass(frozen=True, slots=True)
class TrustExplanation:
    """Why ``subject`` has its score: the two paths that decide it."""

    subject: str
    score: float
    #: Transitive trust in [-1, 1]: ``positive.value + negative.value``.
    trust: float
    #: Strongest path with a positive value, if any.
    positive: TrustPath | None
    #: Most negative path, if any.
    negative: TrustPath | None
    #: Time at which weights were decayed (:attr:`TrustGraph.epoch`).
    epoch: float


# --------------------------------------------------------------------------
# The graph


class TrustGraph:
    """The root's trust graph.  Not thread-safe (like the rest of the core).

    ``key_of`` returns an issuer's Ed25519 key; the default decodes
    ``did:key`` DIDs, other methods need the caller's resolver cache.
    """

    __slots__ = (
        "_cache",
        "_config",
        "_decay",
        "_degree",
        "_edges",
        "_epoch",
        "_floor_ms",
        "_half_life",
        "_hi",
        "_in",
        "_key_of",
        "_lo",
        "_out",
        "_p1",
        "_prefix",
        "_revoked",
        "_root",
        "_via",
    )

    def __init__(
        self, root: str, config: TrustConfig | None = None, key_of: KeyOf = did_key_key_of
    ) -> None:
        Did.parse(root)  # raises InvalidDid
        self._root = root
        self._config = config if config is not None else TrustConfig()
        self._key_of = key_of
        self._decay = self._config.hop_decay
        half_life = self._config.half_life
        self._half_life = math.inf if half_life is None else float(half_life)
        #: issuer -> subject -> live statement, and the mirror index.
        self._out: dict[str, dict[str, TrustStatement]] = {}
        self._in: dict[str, dict[str, TrustStatement]] = {}
        #: Live edges touching each DID; its keys are the graph's nodes.
        self._degree: dict[str, int] = {}
        self._edges = 0
        #: Revocations held (weight-0 statements), oldest first.
        self._revoked: dict[tuple[str, str], TrustStatement] = {}
        #: Statements for pairs not held and issued at or before this are
        #: refused: a forgotten revocation may have superseded them.
        self._floor_ms = -1
        # Derived state, valid for times in [_lo, _hi] (empty until first use).
        self._epoch = math.nan
        self._lo = math.inf
        self._hi = -math.inf
        self._p1: dict[str, float] = {}
        self._prefix: dict[str, float] = {}
        self._via: dict[str, str] = {}
        self._cache: dict[str, float] = {}

    # ----------------------------------------------------------------------
    # Reading

    @property
    def root(self) -> str:
        return self._root

    @property
    def config(self) -> TrustConfig:
        return self._config

    @property
    def epoch(self) -> float:
        """The time at which scores are exact (NaN before the first score)."""
        return self._epoch

    @property
    def node_count(self) -> int:
        """DIDs with at least one live edge (in or out)."""
        return len(self._degree)

    def __len__(self) -> int:
        """Number of live (non-zero) edges."""
        return self._edges

    def __contains__(self, did: object) -> bool:
        return did in self._degree

    def edges_of(self, did: str) -> tuple[TrustStatement, ...]:
        """The live edges ``did`` asserts."""
        return tuple(self._out.get(did, {}).values())

    def edges_to(self, did: str) -> tuple[TrustStatement, ...]:
        """The live edges that others assert about ``did``."""
        return tuple(self._in.get(did, {}).values())

    def held(self, issuer: str, subject: str) -> TrustStatement | None:
        """The latest statement held for the pair (a revocation included)."""
        edge = self._out.get(issuer, {}).get(subject)
        return edge if edge is not None else self._revoked.get((issuer, subject))

    def statements(self) -> Iterator[TrustStatement]:
        """Everything to persist: the live edges, then the revocations held
        (oldest first).  Adding them to a fresh graph rebuilds this one."""
        for edges in self._out.values():
            yield from edges.values()
        yield from self._revoked.values()

    def revocation_count(self) -> int:
        return len(self._revoked)

    # ----------------------------------------------------------------------
    # Changing

    def add(self, statement: TrustStatement, now: float) -> bool:
        """Verify ``statement`` and let it replace what is held for its pair.

        Returns ``True`` when it was taken (persist it), ``False`` when it is
        exactly the statement already held.  Refusals leave the graph
        unchanged and raise :class:`InvalidTrustStatement` (bad signature,
        dated more than ``max_clock_skew`` ahead of ``now``, older than the
        statement held for the pair or as old with another weight, or older
        than a revocation the graph had to forget) or :class:`TrustGraphFull`
        (``max_nodes`` or ``max_edges_per_node``).

        Weight 0 revokes: the edge goes, DIDs left without an edge are
        forgotten, and the revocation itself is remembered (up to
        ``max_revocations``, oldest forgotten first) so that replaying the
        revoked statement fails.  Revocations never raise TrustGraphFull.
        """
        if not isinstance(statement, TrustStatement):
            raise InvalidTrustStatement(
                f"expected a TrustStatement, got {type(statement).__name__}"
            )
        if not isinstance(now, (int, float)) or not math.isfinite(now):
            raise TrustError(f"now must be a finite UNIX time, got {now!r}")
        issuer, subject = statement.issuer, statement.subject
        held = self.held(issuer, subject)
        if held == statement:
            return False
        if statement.issued_at > now + self._config.max_clock_skew:
            raise InvalidTrustStatement(
                f"trust statement from {issuer} is dated {statement.issued_at - now:.0f} s "
                f"in the future (max_clock_skew is {self._config.max_clock_skew:g} s)"
            )
        if held is not None:
            if statement.issued_at_ms < held.issued_at_ms:
                raise InvalidTrustStatement(
                    f"trust statement from {issuer} about {subject} is older than the one held"
                )
            if statement.issued_at_ms == held.issued_at_ms:
                if statement.weight_milli == held.weight_milli:
                    return False  # the same statement, signed again
                raise InvalidTrustStatement(
                    f"trust statement from {issuer} about {subject} has the same time as "
                    "the one held but says something else"
                )
        elif statement.issued_at_ms <= self._floor_ms:
            raise InvalidTrustStatement(
                f"trust statement from {issuer} about {subject} predates revocations this "
                "graph has forgotten (max_revocations); the issuer must sign it again"
            )
        statement.verify(self._key_of)
        live = self._out.get(issuer, {}).get(subject)
        if statement.weight_milli == 0:
            if live is not None:
                self._remove(live)
            self._remember_revocation(statement)
        else:
            if live is None:
                self._check_bounds(issuer, subject)
                self._revoked.pop((issuer, subject), None)
            self._put(statement, live)
        if live is not None or statement.weight_milli != 0:
            self._invalidate(issuer, subject)
        return True

    def _check_bounds(self, issuer: str, subject: str) -> None:
        config = self._config
        out = self._out.get(issuer)
        if out is not None and len(out) >= config.max_edges_per_node:
            raise TrustGraphFull(
                f"{issuer} already asserts {len(out)} edges (max_edges_per_node); "
                "it must revoke one before trusting another DID"
            )
        new = (issuer not in self._degree) + (subject not in self._degree)
        if len(self._degree) + new > config.max_nodes:
            raise TrustGraphFull(
                f"trust graph holds {len(self._degree)} DIDs (max_nodes); "
                f"the edge {issuer} -> {subject} would add {new} more"
            )

    def _put(self, statement: TrustStatement, replaced: TrustStatement | None) -> None:
        issuer, subject = statement.issuer, statement.subject
        self._out.setdefault(issuer, {})[subject] = statement
        self._in.setdefault(subject, {})[issuer] = statement
        if replaced is None:
            self._edges += 1
            degree = self._degree
            degree[issuer] = degree.get(issuer, 0) + 1
            degree[subject] = degree.get(subject, 0) + 1

    def _remove(self, statement: TrustStatement) -> None:
        issuer, subject = statement.issuer, statement.subject
        out = self._out[issuer]
        del out[subject]
        if not out:
            del self._out[issuer]
        incoming = self._in[subject]
        del incoming[issuer]
        if not incoming:
            del self._in[subject]
        self._edges -= 1
        for did in (issuer, subject):
            left = self._degree[did] - 1
            if left:
                self._degree[did] = left
            else:
                del self._degree[did]

    def _remember_revocation(self, statement: TrustStatement) -> None:
        key = (statement.issuer, statement.subject)
        revoked = self._revoked
        revoked.pop(key, None)  # re-insert at the end: oldest first
        revoked[key] = statement
        while len(revoked) > self._config.max_revocations:
            oldest = revoked.pop(next(iter(revoked)))
            self._floor_ms = max(self._floor_ms, oldest.issued_at_ms)

    def _invalidate(self, issuer: str, subject: str) -> None:
        """Drop exactly what the changed edge ``issuer -> subject`` can affect."""
        hops = self._config.max_hops
        if (hops >= 2 and issuer == self._root) or (hops >= 3 and issuer in self._p1):
            self._hi = -math.inf  # the tables change: rebuild on the next read
        elif subject != self._root:  # the root's score is 1.0 whatever others say
            self._cache.pop(subject, None)

    # ----------------------------------------------------------------------
    # Scores

    def score(self, did: str, now: float) -> float:
        """The root's trust in ``did``, in [0, 1]; ``neutral`` when unknown.

        A dictionary lookup when cached; otherwise O(in-degree of ``did``).
        """
        if not self._lo <= now <= self._hi:
            self._rebuild(now)
        cached = self._cache.get(did)
        if cached is not None:
            return cached
        if did not in self._in:
            return self._config.neutral  # not cached: the cache stays bounded
        pos, _, neg, _ = self._combine(did)
        value = self._to_score(max(-1.0, min(1.0, pos + neg)))
        self._cache[did] = value
        return value

    def trust(self, did: str, now: float) -> float:
        """The transitive trust ``t`` in [-1, 1] behind :meth:`score`."""
        return self.explain(did, now).trust

    def explain(self, did: str, now: float) -> TrustExplanation:
        """The score of ``did`` with the paths that decide it."""
        if not self._lo <= now <= self._hi:
            self._rebuild(now)
        if did == self._root:
            return TrustExplanation(did, 1.0, 1.0, None, None, self._epoch)
        pos, pos_from, neg, neg_from = self._combine(did)
        t = max(-1.0, min(1.0, pos + neg))
        return TrustExplanation(
            did,
            self._to_score(t),
            t,
            None if pos_from is None else self._path(pos_from, did, pos),
            None if neg_from is None else self._path(neg_from, did, neg),
            self._epoch,
        )

    def _to_score(self, t: float) -> float:
        neutral = self._config.neutral
        if t >= 0.0:
            return min(1.0, neutral + (1.0 - neutral) * t)
        return max(0.0, neutral + neutral * t)

    def _weight(self, statement: TrustStatement) -> float:
        """The statement's weight decayed to the epoch (never amplified by a
        statement dated after it)."""
        age = self._epoch - statement.issued_at
        if age <= 0.0:
            return statement.weight
        factor: float = 0.5 ** (age / self._half_life)
        return statement.weight * factor

    def _combine(self, did: str) -> tuple[float, str | None, float, str | None]:
        """Best positive and most negative path values to ``did`` (never the
        root), each with the DID its last edge comes from."""
        pos = neg = 0.0
        pos_from: str | None = None
        neg_from: str | None = None
        incoming = self._in.get(did)
        if not incoming:
            return pos, pos_from, neg, neg_from
        root, prefix, decay, weight = self._root, self._prefix, self._decay, self._weight
        for issuer, statement in incoming.items():
            if issuer == root:
                base = 1.0
            else:
                found = prefix.get(issuer)
                if found is None:
                    continue
                base = found * decay
            value = base * weight(statement)
            if value > pos:
                pos, pos_from = value, issuer
            elif value < neg:
                neg, neg_from = value, issuer
        return pos, pos_from, neg, neg_from

    def _rebuild(self, now: float) -> None:
        """Recompute the forward tables at ``now`` and drop every cached score."""
        if not isinstance(now, (int, float)) or not math.isfinite(now):
            raise TrustError(f"now must be a finite UNIX time, got {now!r}")
        self._epoch = float(now)
        refresh = self._config.refresh
        self._lo, self._hi = self._epoch - refresh, self._epoch + refresh
        hops, decay, weight = self._config.max_hops, self._decay, self._weight
        p1: dict[str, float] = {}
        if hops >= 2:
            for subject, statement in self._out.get(self._root, {}).items():
                value = weight(statement)
                if value > 0.0:
                    p1[subject] = value
        prefix = dict(p1)
        via: dict[str, str] = {}
        if hops >= 3:
            for middle, first in p1.items():
                base = first * decay
                for subject, statement in self._out.get(middle, {}).items():
                    value = base * weight(statement)
                    if value > 0.0 and value > prefix.get(subject, 0.0):
                        prefix[subject] = value
                        via[subject] = middle
        self._p1, self._prefix, self._via = p1, prefix, via
        self._cache = {self._root: 1.0}

    def _path(self, last_issuer: str, subject: str, value: float) -> TrustPath:
        if last_issuer == self._root:
            dids: tuple[str, ...] = (self._root, subject)
        elif last_issuer in self._via:
            dids = (self._root, self._via[last_issuer], last_issuer, subject)
        else:
            dids = (self._root, last_issuer, subject)
        weights = tuple(self._weight(self._out[a][b]) for a, b in pairwise(dids))
        return TrustPath(dids, weights, value)


__all__ = [
    "DAY",
    "KeyOf",
    "TrustConfig",
    "TrustExplanation",
    "TrustGraph",
    "TrustPath",
    "TrustStatement",
    "did_key_key_of",
]
