"""The audit log's hash chain: how an entry is encoded, linked and verified.

Every entry (a session state transition or an access decision) is stored
with ``digest = BLAKE3(DOMAIN || previous digest || id || at || kind ||
subject || body)``, where ``body`` is the entry's fields as canonical JSON
(sorted keys, no spaces) and the first entry links to 32 zero bytes.  So an
entry edited, deleted, inserted or moved breaks the chain at that entry,
and :func:`verify` names the first bad one.  Ids are consecutive from 1: a
deleted entry leaves a gap even when the chain after it was recomputed up
to that point.

What a chain cannot show on its own is a cut *tail*: whoever can write the
file can delete the newest entries, or recompute every digest from some
point on (there is no secret in the hash).  :class:`AuditReport` therefore
gives the head (last id and digest); an operator who records it elsewhere
(``l2session audit verify`` prints it; ``--expect`` checks it) detects both.
docs/MEMBRANE.md §4 has the byte layout.

Pure: the store (``store/sqlite.py``, ``store/memory.py``) calls
:func:`chain` inside its commit, with the head it read in that transaction.
"""

from __future__ import annotations

import hmac
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from blake3 import blake3

from l2session.core.lifecycle.persistence import ROUTE_CAUSES, AuditRecord, RouteRecord
from l2session.core.link.envelope import AccessRecord
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.errors import AuditTampered, MalformedMessage

_quote = json.encoder.encode_basestring

DIGEST_SIZE: Final = 32
#: The "previous digest" of entry 1.
GENESIS: Final = bytes(DIGEST_SIZE)
DOMAIN: Final = b"l2session audit v1\x00"

#: The largest entry id (SQLite's largest rowid).
MAX_ENTRY_ID: Final = (1 << 63) - 1
#: What a checkpoint signature covers (see :func:`checkpoint_message`).
CHECKPOINT_DOMAIN: Final = b"l2session audit checkpoint v1\x00"

KIND_TRANSITION: Final = "transition"
KIND_ACCESS: Final = "access"
KIND_ROUTE: Final = "route"
#: Every kind of entry, in the order the docs list them.
KINDS: Final = (KIND_TRANSITION, KIND_ACCESS, KIND_ROUTE)

_HEAD: Final = struct.Struct(">Qd")
_LEN: Final = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored entry of the audit log."""

    id: int
    at: float
    kind: str
    #: The DID the entry is about (the session's peer).
    subject: str
    #: The entry's fields as canonical JSON (exactly the hashed text).
    body: str
    digest: bytes = field(repr=False)

    def record(self) -> AuditRecord:
        """The record this entry holds; MalformedMessage if the body does
        not decode (a damaged or hand-edited entry)."""
        return decode_record(self.kind, self.subject, self.at, self.body)

    def describe(self) -> str:
        """One line for ``l2session audit tail``."""
        try:
            record = self.record()
        except MalformedMessage as exc:
            return f"#{self.id} {self.kind} {self.subject}: unreadable body ({exc})"
        if isinstance(record, TransitionRecord):
            target = "-" if record.target is None else record.target.value
            text = f"{record.source.value} -> {target} on {record.trigger.value}"
            if record.reason:
                text += f": {record.reason}"
        elif isinstance(record, RouteRecord):
            text = (
                f"route {record.cause}: {record.previous_path} {record.previous_address} -> "
                f"{record.path} {record.address}"
            )
        else:
            verdict = "allow" if record.allowed else "deny"
            units = "" if record.units == 1 else f" x{record.units}"
            text = f"{verdict} {record.action} {record.resource}{units}: {record.reason}"
        return f"#{self.id} {self.subject} {text}"


def encode_record(record: AuditRecord) -> tuple[str, str, float, str]:
    """``(kind, subject, at, body)`` of ``record``: what is stored and hashed.

    ``body`` is exactly ``json.dumps(fields, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)``, written out by hand in
    that key order (five times faster; a test holds the two equal)."""
    q = _quote
    if isinstance(record, TransitionRecord):
        target = "null" if record.target is None else q(record.target.value)
        body = (
            f'{{"from":{q(record.source.value)},"reason":{q(record.reason)},'
            f'"to":{target},"trigger":{q(record.trigger.value)}}}'
        )
        return KIND_TRANSITION, record.subject, float(record.at), body
    if isinstance(record, RouteRecord):
        body = (
            f'{{"address":{q(record.address)},"cause":{q(record.cause)},'
            f'"path":{q(record.path)},"previous_address":{q(record.previous_address)},'
            f'"previous_path":{q(record.previous_path)}}}'
        )
        return KIND_ROUTE, record.subject, float(record.at), body
    grant = "null" if record.grant is None else q(record.grant)
    body = (
        f'{{"action":{q(record.action)},"allowed":{"true" if record.allowed else "false"},'
        f'"grant":{grant},"reason":{q(record.reason)},"resource":{q(record.resource)},'
        f'"step":{q(record.step)},"units":{int(record.units)}}}'
    )
    return KIND_ACCESS, record.subject, float(record.at), body


def decode_record(kind: str, subject: str, at: float, body: str) -> AuditRecord:
    """The inverse of :func:`encode_record`.

    Strict about types, as :func:`encode_record` writes them (a text field
    is a JSON string, ``allowed`` a boolean, ``units`` an integer): a body
    that decodes is one that encoding its record gives back.  Anything else,
    including JSON nested too deeply to read, is :class:`MalformedMessage`.
    """
    try:
        fields = json.loads(body)
        if not isinstance(fields, dict):
            raise TypeError("body is not an object")
        if kind == KIND_TRANSITION:
            target = fields["to"]
            return TransitionRecord(
                subject,
                State(_string(fields, "from")),
                None if target is None else State(_string(fields, "to")),
                Trigger(_string(fields, "trigger")),
                _string(fields, "reason"),
                at,
            )
        if kind == KIND_ROUTE:
            cause = _string(fields, "cause")
            if cause not in ROUTE_CAUSES:
                raise ValueError(f"unknown route cause {cause!r}")
            return RouteRecord(
                subject,
                _string(fields, "address"),
                _string(fields, "path"),
                _string(fields, "previous_address"),
                _string(fields, "previous_path"),
                cause,
                at,
            )
        if kind == KIND_ACCESS:
            allowed, units = fields["allowed"], fields["units"]
            if not isinstance(allowed, bool):
                raise TypeError("allowed is not a boolean")
            if type(units) is not int:
                raise TypeError("units is not an integer")
            return AccessRecord(
                subject,
                allowed,
                _string(fields, "action"),
                _string(fields, "resource"),
                units,
                _string(fields, "step"),
                _string(fields, "reason"),
                None if fields["grant"] is None else _string(fields, "grant"),
                at,
            )
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        # ValueError: not JSON, an unknown state; RecursionError: "[[[[...".
        raise MalformedMessage(f"audit entry body: {exc}") from None
    raise MalformedMessage(f"audit entry of unknown kind {kind!r}")


def _string(fields: dict[str, object], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _text(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return _LEN.pack(len(data)) + data


_KINDS: Final = {kind: _text(kind) for kind in KINDS}


def link(prev: bytes, entry_id: int, at: float, kind: str, subject: str, body: str) -> bytes:
    """The digest of an entry that follows the entry with digest ``prev``."""
    kind_bytes = _KINDS.get(kind) or _text(kind)
    data = b"".join(
        (DOMAIN, prev, _HEAD.pack(entry_id, at), kind_bytes, _text(subject), _text(body))
    )
    return blake3(data).digest()


def chain(records: Iterable[AuditRecord], head_id: int, head: bytes) -> list[AuditEntry]:
    """The entries for ``records``, appended after the entry ``head_id``
    whose digest is ``head`` (0 and :data:`GENESIS` for an empty log)."""
    out: list[AuditEntry] = []
    prev, entry_id = head, head_id
    for record in records:
        entry_id += 1
        kind, subject, at, body = encode_record(record)
        prev = link(prev, entry_id, at, kind, subject, body)
        out.append(AuditEntry(entry_id, at, kind, subject, body, prev))
    return out


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :func:`verify` found."""

    #: Entries checked.
    count: int
    #: The id and digest of the last good entry (0 and GENESIS if none).
    head_id: int
    head: bytes = field(repr=False)
    #: The first bad entry's id, and what is wrong with it; None if intact.
    first_bad: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def raise_for_problem(self) -> None:
        if self.first_bad is not None:
            raise AuditTampered(self.problem, entry=self.first_bad)


def verify(entries: Iterable[AuditEntry]) -> AuditReport:
    """Walk ``entries`` in id order and check every link; stops at the
    first bad entry (everything after it is unproven)."""
    prev, expected, count = GENESIS, 1, 0
    for entry in entries:
        if entry.id != expected:
            problem = (
                f"entry #{expected} is missing: #{entry.id} follows #{expected - 1} "
                "(entries deleted?)"
                if entry.id > expected
                else f"entry #{entry.id} is out of order after #{expected - 1}"
            )
            return AuditReport(count, expected - 1, prev, expected, problem)
        digest = link(prev, entry.id, entry.at, entry.kind, entry.subject, entry.body)
        if len(entry.digest) != DIGEST_SIZE or not hmac.compare_digest(digest, entry.digest):
            problem = (
                f"entry #{entry.id} does not match its digest: it was edited, inserted, or "
                f"moved, or the entry before it was changed"
            )
            return AuditReport(count, expected - 1, prev, entry.id, problem)
        prev, expected, count = digest, expected + 1, count + 1
    return AuditReport(count, expected - 1, prev)


# --------------------------------------------------------------------------
# checkpoints


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An audit entry's id and digest, as an operator keeps it outside the
    database (``#ID HEX``): later, the entry must still have that digest
    and the chain must verify through it (docs/MEMBRANE.md §4.3)."""

    entry_id: int
    digest: bytes

    def __str__(self) -> str:
        return f"#{self.entry_id} {self.digest.hex()}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """``#ID HEX`` (or ``ID:HEX``, as ``audit verify`` printed it before)."""
        cleaned = text.strip()
        if cleaned.startswith("#"):
            head, _, rest = cleaned[1:].partition(" ")
        else:
            head, _, rest = cleaned.partition(":")
        rest = rest.strip().lower()
        if not (head.isascii() and head.isdecimal() and 1 <= int(head) <= MAX_ENTRY_ID):
            raise MalformedMessage(
                f"checkpoint {text!r} is not '#ID HEX' (ID a number from 1 to {MAX_ENTRY_ID})"
            )
        if len(rest) != 2 * DIGEST_SIZE or not all(c in "0123456789abcdef" for c in rest):
            raise MalformedMessage(
                f"checkpoint {text!r}: the digest must be {2 * DIGEST_SIZE} hex digits"
            )
        return cls(int(head), bytes.fromhex(rest))

    def matches(self, digest: bytes | None) -> bool:
        """Whether the entry's digest (None: the entry is gone) is this one."""
        return digest is not None and hmac.compare_digest(digest, self.digest)


def checkpoint_message(did: str, checkpoint: Checkpoint) -> bytes:
    """The bytes a node signs with its DID key for a checkpoint:
    ``CHECKPOINT_DOMAIN || u16 len || DID || u64 id || digest``.  The DID is
    inside, so a signature cannot be presented as another node's."""
    raw = did.encode()
    return (
        CHECKPOINT_DOMAIN
        + struct.pack(">H", len(raw))
        + raw
        + struct.pack(">Q", checkpoint.entry_id)
        + checkpoint.digest
    )
