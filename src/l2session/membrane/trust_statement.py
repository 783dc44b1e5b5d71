"""Signed trust statements: the only way an edge enters the QVL trust graph.

A :class:`TrustStatement` says "``issuer`` trusts ``subject`` with ``weight``
as of ``issued_at``", signed by the issuer's Ed25519 DID key.  Statements are
self-authenticating, so they may be gossiped, relayed and stored by anyone:
whoever handles them cannot change a weight or re-attribute an opinion
without breaking the signature.

Canonical numbers: the weight is signed as an integer number of thousandths
(``weight_milli``, -1000..1000) and the time as integer milliseconds, so one
statement has exactly one byte encoding and re-encoding never changes what
was signed (floats would round differently across implementations).  The
float views ``weight`` and ``issued_at`` are derived from them.

Weight 0 is a revocation: it replaces, and so removes, the issuer's earlier
edge to the subject.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from l2session.codec import Reader, Writer
from l2session.crypto import primitives
from l2session.crypto.primitives import ED25519_SIGNATURE_SIZE
from l2session.errors import (
    AuthenticationFailed,
    IdentityError,
    InvalidTrustStatement,
    MalformedMessage,
)
from l2session.identity.did import MAX_DID_LENGTH, Did, ed25519_from_did_key
from l2session.identity.identity import Identity

#: Encoding version of :meth:`TrustStatement.to_bytes`.
STATEMENT_VERSION: Final = 1
#: Longest DID accepted in a statement (DID text is ASCII, so bytes = chars).
MAX_DID_BYTES: Final = MAX_DID_LENGTH
#: Weights are thousandths: -1000 is full distrust, 1000 full trust.
WEIGHT_SCALE: Final = 1000
#: Latest representable time; 2**53 ms keeps ``issued_at`` an exact float.
MAX_ISSUED_AT_MS: Final = 2**53
#: Largest encoding: version, two DIDs, weight, time, signature.
MAX_STATEMENT_SIZE: Final = 1 + 2 * (2 + MAX_DID_BYTES) + 2 + 8 + ED25519_SIGNATURE_SIZE

#: Domain separation: a trust-statement signature can never be mistaken for
#: (or replayed as) a signature over any other l2session object.
_CONTEXT: Final = b"l2session trust statement v1\x00"
_I16: Final = struct.Struct(">h")

#: Given an issuer DID, its Ed25519 public key (raises if it cannot tell).
KeyOf = Callable[[str], bytes]


def did_key_key_of(issuer: str) -> bytes:
    """The default :data:`KeyOf`: the key a ``did:key`` issuer names.

    Other DID methods need a resolver, which lives above this pure layer (it
    does I/O), so the caller passes a ``key_of`` that looks keys up in its
    resolver's cache; without one, such statements are refused clearly.
    """
    return _did_key_public(issuer)


@functools.lru_cache(maxsize=16_384)
def _did_key_public(issuer: str) -> bytes:
    """Decoding a did:key costs as much as verifying a signature, and the
    issuers of a graph are few (at most ``max_nodes``): decode each once.
    (Refusals raise, so they are not cached.)"""
    try:
        did = Did.parse(issuer)
    except IdentityError as exc:
        raise InvalidTrustStatement(f"issuer {issuer!r}: {exc}") from None
    if did.method != "key":
        raise InvalidTrustStatement(
            f"issuer {issuer}: no key resolver for this DID method; pass key_of="
        )
    try:
        return ed25519_from_did_key(did)
    except IdentityError as exc:
        raise InvalidTrustStatement(f"issuer {issuer}: {exc}") from None


def _check_did(value: object, field_name: str) -> None:
    if not isinstance(value, str):
        raise InvalidTrustStatement(
            f"trust statement: {field_name} must be DID text (str), got {type(value).__name__}"
        )
    try:
        Did.parse(value)
    except IdentityError as exc:
        raise InvalidTrustStatement(f"trust statement: {field_name}: {exc}") from None


def quantize_weight(weight: float) -> int:
    """A weight in [-1, 1] as the thousandths that are signed (rounded)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise InvalidTrustStatement(f"trust weight must be a number, got {type(weight).__name__}")
    if not -1.0 <= weight <= 1.0:  # also refuses NaN
        raise InvalidTrustStatement(f"trust weight {weight!r} is outside [-1, 1]")
    return round(weight * WEIGHT_SCALE)


def to_millis(issued_at: float) -> int:
    """UNIX seconds as the integer milliseconds that are signed (rounded)."""
    if isinstance(issued_at, bool) or not isinstance(issued_at, (int, float)):
        raise InvalidTrustStatement(f"issued_at must be a number, got {type(issued_at).__name__}")
    if not math.isfinite(issued_at) or not 0 <= issued_at * 1000 < MAX_ISSUED_AT_MS:
        raise InvalidTrustStatement(f"issued_at {issued_at!r} is not a usable UNIX time")
    return round(issued_at * 1000)


@dataclass(frozen=True, slots=True)
class TrustStatement:
    """``issuer`` trusts ``subject`` with ``weight_milli``/1000, signed.

    Construction validates every field (:class:`InvalidTrustStatement`) but
    not the signature: call :meth:`verify`, or let
    :meth:`~l2session.membrane.trust.TrustGraph.add` do it.
    """

    issuer: str
    subject: str
    weight_milli: int
    issued_at_ms: int
    signature: bytes = field(repr=False)
    #: ``weight_milli / 1000``, in [-1, 1]; computed once (the graph reads it
    #: on every uncached score).
    weight: float = field(init=False, compare=False)
    #: ``issued_at_ms / 1000``, UNIX seconds.
    issued_at: float = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _check_did(self.issuer, "issuer")
        _check_did(self.subject, "subject")
        if self.issuer == self.subject:
            raise InvalidTrustStatement(
                f"trust statement: {self.issuer} cannot assert trust in itself"
            )
        milli = self.weight_milli
        if isinstance(milli, bool) or not isinstance(milli, int):
            raise InvalidTrustStatement("trust statement: weight_milli must be an int")
        if not -WEIGHT_SCALE <= milli <= WEIGHT_SCALE:
            raise InvalidTrustStatement(
                f"trust statement: weight_milli {milli} is outside [-1000, 1000]"
            )
        ms = self.issued_at_ms
        if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms < MAX_ISSUED_AT_MS:
            raise InvalidTrustStatement(f"trust statement: issued_at_ms {ms!r} is out of range")
        if not isinstance(self.signature, bytes) or len(self.signature) != ED25519_SIGNATURE_SIZE:
            raise InvalidTrustStatement(
                f"trust statement: the signature must be {ED25519_SIGNATURE_SIZE} bytes"
            )
        object.__setattr__(self, "weight", milli / WEIGHT_SCALE)
        object.__setattr__(self, "issued_at", ms / 1000)

    # ----------------------------------------------------------------------

    @classmethod
    def sign(
        cls, identity: Identity, subject: str, weight: float, issued_at: float
    ) -> TrustStatement:
        """A statement by ``identity`` about ``subject``; ``weight`` in
        [-1, 1] is rounded to thousandths (0 revokes), ``issued_at`` to
        milliseconds."""
        issuer = identity.did_text
        milli = quantize_weight(weight)
        ms = to_millis(issued_at)
        _check_did(subject, "subject")
        if subject == issuer:
            raise InvalidTrustStatement(f"trust statement: {issuer} cannot assert trust in itself")
        body = _signed_bytes(issuer, subject, milli, ms)
        return cls(issuer, subject, milli, ms, primitives.ed25519_sign(identity.signing, body))

    def signed_bytes(self) -> bytes:
        """What the issuer signs: a context label, then the canonical fields."""
        return _signed_bytes(self.issuer, self.subject, self.weight_milli, self.issued_at_ms)

    def verify(self, key_of: KeyOf = did_key_key_of) -> None:
        """Raise :class:`InvalidTrustStatement` unless the issuer's key (from
        ``key_of``) signed this statement."""
        try:
            public = key_of(self.issuer)
        except InvalidTrustStatement:
            raise
        except (IdentityError, MalformedMessage) as exc:
            raise InvalidTrustStatement(
                f"trust statement from {self.issuer}: no usable key: {exc}"
            ) from exc
        try:
            primitives.ed25519_verify(
                public, self.signature, self.signed_bytes(), what="trust statement"
            )
        except AuthenticationFailed as exc:
            raise InvalidTrustStatement(
                f"trust statement from {self.issuer} about {self.subject}: {exc}"
            ) from exc

    @property
    def is_revocation(self) -> bool:
        """Weight 0: the issuer withdraws its edge to the subject."""
        return self.weight_milli == 0

    # ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        out = Writer().u8(STATEMENT_VERSION)
        out.text16(self.issuer, "issuer", max_len=MAX_DID_BYTES)
        out.text16(self.subject, "subject", max_len=MAX_DID_BYTES)
        out.raw(_I16.pack(self.weight_milli))
        out.u64(self.issued_at_ms)
        out.fixed(self.signature, ED25519_SIGNATURE_SIZE, "signature")
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustStatement:
        """Decode strictly; anything wrong raises :class:`MalformedMessage`
        (the signature is *not* checked here)."""
        if isinstance(data, (bytes, bytearray, memoryview)) and len(data) > MAX_STATEMENT_SIZE:
            raise MalformedMessage(
                f"trust statement of {len(data)} bytes exceeds {MAX_STATEMENT_SIZE}"
            )
        r = Reader(data, "trust statement")
        version = r.u8("version")
        if version != STATEMENT_VERSION:
            raise MalformedMessage(f"trust statement version {version} is not supported")
        issuer = r.text16("issuer", max_len=MAX_DID_BYTES)
        subject = r.text16("subject", max_len=MAX_DID_BYTES)
        (milli,) = r.struct(_I16, "weight")
        ms = r.u64("issued_at")
        signature = r.fixed(ED25519_SIGNATURE_SIZE, "signature")
        r.finish()
        try:
            return cls(issuer, subject, milli, ms, signature)
        except InvalidTrustStatement as exc:
            raise MalformedMessage(str(exc)) from None


def _signed_bytes(issuer: str, subject: str, milli: int, ms: int) -> bytes:
    out = Writer().raw(_CONTEXT)
    out.text16(issuer, "issuer", max_len=MAX_DID_BYTES)
    out.text16(subject, "subject", max_len=MAX_DID_BYTES)
    out.raw(_I16.pack(milli))
    out.u64(ms)
    return out.getvalue()


__all__ = [
    "MAX_DID_BYTES",
    "MAX_STATEMENT_SIZE",
    "STATEMENT_VERSION",
    "KeyOf",
    "TrustStatement",
    "did_key_key_of",
    "quantize_weight",
    "to_millis",
]
