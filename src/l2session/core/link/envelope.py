"""What a delivered message body holds: a plain payload, or a capability
request the receiver's Membrane screens before the application sees it.

The delivery machinery (queues, acknowledgements, the store) carries opaque
*bodies*.  Most bodies are the application's payload byte for byte, so plain
messages cost nothing.  A body whose first byte is :data:`MARK` (0xFF) is an
envelope instead, and its second byte says which:

=======  =====================================================================
``00``   an escaped plain payload (a payload that itself starts with 0xFF)
``01``   a capability request: action, resource, units, then the payload
``02``   a placeholder: what the screen returns for a message it consumed (a
         refused request, or a denial notice); the receiver's stream moves
         past it and the application never sees it (never sent on the wire)
``03``   a denial notice: the receiver refused our message ``seq`` (u64) of
         our stream ``stream`` (u64), for the UTF-8 reason that follows; it
         travels on the receiver's own stream, so it is delivered exactly
         once like any message
=======  =====================================================================

An application payload can therefore never be mistaken for an envelope, and
a body from a hostile peer that does not decode is refused as malformed.
docs/PROTOCOL.md §4.2 and docs/MEMBRANE.md §5 specify the bytes.

:class:`Request` lives here, below the Membrane, because the session core
must name what a message asks for without importing the policy engine (the
layers point down only); :class:`AccessGate` is the one method the core
calls, which :class:`~l2session.membrane.membrane.Membrane` implements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Protocol

from l2session.codec import Reader, Writer
from l2session.errors import ConfigError, MalformedMessage
from l2session.wire.records import MAX_MESSAGE_BYTES, MAX_PAYLOAD_BYTES

MARK: Final = 0xFF
_ESCAPED: Final = 0x00
_REQUEST: Final = 0x01
_REFUSED: Final = 0x02
_DENIAL: Final = 0x03

#: Longest action name ("read", "write", "call", ...).
MAX_ACTION_BYTES: Final = 32
#: Longest resource URI.
MAX_RESOURCE_BYTES: Final = 1024
#: Most units one request may claim (quota accounting).
MAX_UNITS: Final = 1_000_000
#: Bytes a request envelope adds before the payload, at most: a body may
#: be this much longer than SessionConfig.max_message_size.
MAX_OVERHEAD: Final = 2 + 1 + MAX_ACTION_BYTES + 2 + MAX_RESOURCE_BYTES + 4
assert MAX_OVERHEAD <= MAX_MESSAGE_BYTES - MAX_PAYLOAD_BYTES

_ACTION: Final = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
_RESOURCE: Final = re.compile(r"[a-z][a-z0-9+.-]{0,31}://[!-~]*")


def action_problem(action: object) -> str | None:
    """Why ``action`` is not a valid action name (None when it is)."""
    if not isinstance(action, str) or not _ACTION.fullmatch(action):
        return (
            f"action {action!r} is not a lower-case name of 1..{MAX_ACTION_BYTES} characters "
            "(letters, digits, '_', '.', '-'; starting with a letter), such as 'read'"
        )
    return None


def resource_problem(resource: object) -> str | None:
    """Why ``resource`` is not a valid resource URI (None when it is).  A
    resource is ``scheme://path`` in printable ASCII without spaces, such as
    ``feed://my-channel`` or ``chapter://berlin/proposals``; see
    :func:`canonical_resource` for what else is refused."""
    return _canonical(resource)[1]


def canonical_resource(resource: str) -> str:
    """The one form in which resources are compared (docs/MEMBRANE.md §3).

    Grants match by prefix, segment by segment, and the application acts on
    the resource it is given; if the two read it differently a request can
    escape its grant (``chapter://berlin/proposals/..%2F..%2Fmunich`` under a
    grant on ``chapter://berlin/proposals``).  So every resource -- a grant's
    when the policy is built, a request's when it is made or decoded -- goes
    through this one function, and what the Membrane checked is exactly the
    string the application gets:

    1. the path (after ``scheme://``) is percent-decoded once, as UTF-8;
       a ``%`` not followed by two hex digits, or bytes that are not UTF-8,
       are refused;
    2. the decoded path is refused if it holds a backslash, a ``%`` (the
       input was encoded twice), or a control character;
    3. it is split at every ``/`` -- encoded ones too, so ``%2F`` *is* a
       separator -- and a ``.`` or ``..`` segment, or an empty segment
       inside the path (``//``), is refused; trailing slashes are dropped;
    4. it is written again with only spaces and non-ASCII characters
       percent-encoded (upper-case hex).

    The result is idempotent (canonical of canonical is itself).  Raises
    :class:`~l2session.errors.ConfigError` naming the problem.
    """
    canonical, problem = _canonical(resource)
    if problem is not None:
        raise ConfigError(problem)
    assert canonical is not None
    return canonical


_HEX: Final = frozenset("0123456789abcdefABCDEF")


def _canonical(resource: object) -> tuple[str | None, str | None]:
    if not isinstance(resource, str) or not _RESOURCE.fullmatch(resource):
        return None, (
            f"resource {resource!r} is not a URI of the form scheme://path "
            "(lower-case scheme, printable ASCII, no spaces), such as 'feed://my-channel'"
        )
    if len(resource) > MAX_RESOURCE_BYTES:
        return None, f"resource URI of {len(resource)} characters exceeds {MAX_RESOURCE_BYTES}"
    scheme, _, path = resource.partition("://")
    raw = bytearray()
    i = 0
    while i < len(path):
        char = path[i]
        if char == "%":
            digits = path[i + 1 : i + 3]
            if len(digits) != 2 or not set(digits) <= _HEX:
                return None, f"resource {resource!r} has a malformed %-escape at {i}"
            raw.append(int(digits, 16))
            i += 3
        else:
            raw.append(ord(char))
            i += 1
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"resource {resource!r} does not decode to UTF-8"
    for char in decoded:
        if char in "\\%" or ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
            return None, (
                f"resource {resource!r} holds {char!r} once decoded "
                "(backslashes, double encoding and control characters are refused)"
            )
    segments = decoded.split("/")
    while len(segments) > 1 and not segments[-1]:
        segments.pop()  # trailing slashes
    for index, segment in enumerate(segments):
        if segment in (".", ".."):
            # Matching is by prefix, segment by segment: a segment that
            # means "here" or "up" once resolved would escape its grant.
            return (
                None,
                f"resource {resource!r} has a '.' or '..' segment; name the resource itself",
            )
        if not segment and index > 0:
            return None, f"resource {resource!r} has an empty segment ('//')"
    canonical = scheme + "://" + "/".join(_encode(segment) for segment in segments)
    if len(canonical) > MAX_RESOURCE_BYTES:
        return None, f"resource URI of {len(canonical)} characters exceeds {MAX_RESOURCE_BYTES}"
    return canonical, None


def _encode(segment: str) -> str:
    if segment.isascii() and " " not in segment:
        return segment
    return "".join(
        char if char.isascii() and char != " " else "".join(f"%{b:02X}" for b in char.encode())
        for char in segment
    )


@dataclass(frozen=True, slots=True)
class Request:
    """A capability a message asks for: ``action`` on ``resource``, costing
    ``units`` against any quota (``call service://payment`` for 5 units)."""

    action: str
    resource: str
    units: int = 1

    def __post_init__(self) -> None:
        canonical, problem = _canonical(self.resource)
        problem = action_problem(self.action) or problem
        if problem is None and (type(self.units) is not int or not 1 <= self.units <= MAX_UNITS):
            problem = f"units must be an int in 1..{MAX_UNITS}, got {self.units!r}"
        if problem is not None:
            raise ConfigError(problem)
        # What the Membrane checks is exactly what the application gets.
        object.__setattr__(self, "resource", canonical)

    @classmethod
    def parse(cls, text: str) -> Request:
        """``"ACTION RESOURCE [UNITS]"``, as the CLI takes it."""
        parts = text.split()
        if len(parts) not in (2, 3):
            raise ConfigError(
                f"capability {text!r} is not 'ACTION RESOURCE [UNITS]' "
                "(for example 'call service://payment 5')"
            )
        units = 1
        if len(parts) == 3:
            if not (parts[2].isascii() and parts[2].isdecimal()):
                raise ConfigError(f"units {parts[2]!r} is not a whole number")
            units = int(parts[2])
        return cls(parts[0], parts[1], units)

    def __str__(self) -> str:
        suffix = "" if self.units == 1 else f" ({self.units} units)"
        return f"{self.action} {self.resource}{suffix}"


class AccessGate(Protocol):
    """What the session core asks before it delivers a request: ``None`` to
    deliver it, or the one-line reason it is refused.  The peer DID is the
    session's authenticated one, never a claim from the message.  The gate
    records its decision (the audit log) itself."""

    def screen(self, peer_did: str, request: Request, now: float) -> str | None: ...


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One access decision, as the audit log keeps it (next to the state
    transitions of :class:`~l2session.core.states.TransitionRecord`)."""

    #: The peer DID the decision is about (the session's authenticated one).
    subject: str
    allowed: bool
    action: str
    resource: str
    units: int
    #: The check that decided: "trust", "grant", "constraint" or "allowed".
    step: str
    reason: str
    #: The grant that allowed or refused, if one did.
    grant: str | None
    at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivered message with what it asked for (``request`` is None for
    a plain message; a request reached the application only if the
    receiver's Membrane allowed it, or the receiver has no Membrane)."""

    seq: int
    payload: bytes
    request: Request | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A placeholder (never delivered)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Denial:
    """A denial notice: the peer refused our message ``seq`` of our
    stream ``stream`` (a restarted sender's new stream is not confused
    with the old one)."""

    stream: int
    seq: int
    reason: str


def wrap(payload: bytes, request: Request | None = None) -> bytes:
    """The body that carries ``payload`` (asking for ``request``, if given)."""
    if request is None:
        if payload[:1] == b"\xff":
            return b"\xff\x00" + payload
        return payload
    out = Writer().u8(MARK).u8(_REQUEST)
    action = request.action.encode("ascii")
    out.u8(len(action)).raw(action)
    out.text16(request.resource, "resource", max_len=MAX_RESOURCE_BYTES)
    out.u32(request.units).raw(payload)
    return out.getvalue()


def refused(reason: str) -> bytes:
    """The placeholder body of a consumed message."""
    return b"\xff\x02" + reason.encode("utf-8")


def denial(stream: int, seq: int, reason: str) -> bytes:
    """The body of a denial notice for the peer's message ``seq`` of its
    stream ``stream``."""
    out = Writer().u8(MARK).u8(_DENIAL).u64(stream).u64(seq)
    return out.raw(reason.encode("utf-8")).getvalue()


def unwrap(body: bytes) -> tuple[bytes, Request | None] | Refused | Denial:
    """A body's payload and request, a placeholder, or a denial notice.
    Raises :class:`MalformedMessage` for an envelope that does not decode."""
    if body[:1] != b"\xff":
        return body, None
    kind = body[1] if len(body) > 1 else -1
    if kind == _ESCAPED:
        return body[2:], None
    if kind == _REFUSED:
        return Refused(body[2:].decode("utf-8", "replace"))
    if kind == _DENIAL:
        r = Reader(body, "denial notice")
        r.fixed(2, "mark")
        stream = r.u64("denied stream")
        seq = r.u64("denied seq")
        try:
            reason = r.rest().decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("denial notice: the reason is not UTF-8") from None
        return Denial(stream, seq, reason)
    if kind != _REQUEST:
        raise MalformedMessage(f"message envelope: unknown kind {kind:#04x}")
    r = Reader(body, "capability request")
    r.u8("mark")
    r.u8("kind")
    size = r.u8("action length")
    try:
        action = r.fixed(size, "action").decode("ascii")
        resource = r.text16("resource", max_len=MAX_RESOURCE_BYTES)
        units = r.u32("units")
        request = Request(action, resource, units)
    except (ConfigError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"capability request: {exc}") from None
    return r.rest(), request


#: The first two bytes of a placeholder body (see :func:`refused`).
PLACEHOLDER_PREFIX: Final = b"\xff\x02"


def is_placeholder(body: bytes) -> bool:
    """Whether ``body`` is a placeholder (consumed, never delivered)."""
    return body[:2] == PLACEHOLDER_PREFIX


def is_denial(body: bytes) -> bool:
    """Whether ``body`` is a denial notice (consumed on arrival: it needs
    no room in the inbox)."""
    return body[:2] == b"\xff\x03"
