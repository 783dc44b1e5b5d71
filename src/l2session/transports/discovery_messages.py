"""The six raw UDP discovery messages (docs/PROTOCOL.md): PROBE, REFLEX,
WHO_HAS, HERE, DIAL_BACK and DIAL_RESULT, their encodings, and
:func:`decode_message`, which turns hostile bytes into one of them or a
:class:`~l2session.errors.MalformedMessage`.

Every datagram is ``"L2DP" || version || type || nonce(16) || body``; a
field of variable length carries a one-byte length, and requests carry
zero padding so that an answer to an unvalidated source never exceeds the
request (see :mod:`l2session.transports.discovery_wire`, whose responder
applies that rule and which re-exports every public name of this module).

Values only, no state: the responder and the I/O around it are elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from l2session.codec import Reader, Writer, length_prefixed
from l2session.crypto import primitives
from l2session.errors import ConfigError, L2SessionError, MalformedMessage, MessageTooLarge
from l2session.identity.did import Did
from l2session.identity.identity import Identity
from l2session.transports.address import format_address, parse_address

MAGIC: Final = b"L2DP"
VERSION: Final = 1
HEADER_SIZE: Final = len(MAGIC) + 2
TYPE_PROBE: Final = 0x01
TYPE_REFLEX: Final = 0x02
TYPE_WHO_HAS: Final = 0x03
TYPE_HERE: Final = 0x04
TYPE_DIAL_BACK: Final = 0x05
TYPE_DIAL_RESULT: Final = 0x06
REQUEST_TYPES: Final = frozenset({TYPE_PROBE, TYPE_WHO_HAS, TYPE_DIAL_BACK})
#: DIAL_RESULT status: an l2session μTCP HELLO answered the new connection.
DIAL_REACHED: Final = 0
#: The connection was refused, timed out, or something else answered.
DIAL_UNREACHABLE: Final = 1
#: The responder had too many dial-backs in flight (ask again later).
DIAL_BUSY: Final = 2
DIAL_STATUSES: Final = frozenset({DIAL_REACHED, DIAL_UNREACHABLE, DIAL_BUSY})

#: No discovery datagram is larger (fits the IPv6 minimum MTU, as QUIC's 1200).
MAX_DATAGRAM: Final = 1200
NONCE_SIZE: Final = 16
COOKIE_SIZE: Final = 16
SIGNATURE_SIZE: Final = primitives.ED25519_SIGNATURE_SIZE
MAX_DID_BYTES: Final = 255
#: Longest address text: "[" IPv6 with a scope id "]:" port fits easily.
MAX_ADDRESS_BYTES: Final = 64
#: Largest REFLEX: what a padded PROBE must be at least.
MAX_REFLEX_SIZE: Final = HEADER_SIZE + NONCE_SIZE + 1 + MAX_ADDRESS_BYTES + 1 + COOKIE_SIZE

COOKIE_DOMAIN: Final = b"l2session discovery cookie v1"
_HERE_DOMAIN: Final = b"l2session discovery here v1"


def _check_size(value: bytes, sizes: tuple[int, ...], field_name: str) -> None:
    if len(value) not in sizes:
        raise ConfigError(f"{field_name} must be {' or '.join(map(str, sizes))} bytes")


def check_address(text: str) -> None:
    """Only the canonical text of an IP:port, so each address has one encoding."""
    if len(text.encode("utf-8")) > MAX_ADDRESS_BYTES:
        raise MessageTooLarge(f"address {text[:80]!r} exceeds {MAX_ADDRESS_BYTES} bytes")
    canonical = format_address(*parse_address(text))
    if canonical != text:
        raise ConfigError(f"address {text!r} is not canonical (write {canonical!r})")


def _check_did(text: str) -> None:
    if len(text.encode("utf-8")) > MAX_DID_BYTES:
        raise MessageTooLarge(f"DID of {len(text.encode())} bytes exceeds {MAX_DID_BYTES}")
    Did.parse(text)  # InvalidDid names what is wrong


def _header(kind: int) -> Writer:
    return Writer().raw(MAGIC).u8(VERSION).u8(kind)


def _opt(out: Writer, value: bytes) -> Writer:
    return out.u8(len(value)).raw(value)


def _finish(out: Writer) -> bytes:
    data = out.getvalue()
    if len(data) > MAX_DATAGRAM:
        raise MessageTooLarge(f"discovery datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    return data


def _check_padding(padding: int) -> None:
    if not 0 <= padding <= MAX_DATAGRAM:
        raise MessageTooLarge(f"padding {padding} outside [0, {MAX_DATAGRAM}]")


@dataclass(frozen=True, slots=True)
class Probe:
    """PROBE, "at which address do you see me?"  ``cookie`` echoes a REFLEX
    cookie (empty if none); ``padding`` zero bytes make room for the answer."""

    nonce: bytes
    cookie: bytes = b""
    padding: int = 0

    def __post_init__(self) -> None:
        _check_size(self.nonce, (NONCE_SIZE,), "nonce")
        _check_size(self.cookie, (0, COOKIE_SIZE), "cookie")
        _check_padding(self.padding)

    @classmethod
    def padded(cls, nonce: bytes, cookie: bytes = b"") -> Probe:
        """A probe exactly as large as the largest REFLEX, so that any
        responder can answer it without amplifying."""
        base = len(cls(nonce, cookie).encode())
        return cls(nonce, cookie, max(0, MAX_REFLEX_SIZE - base))

    def encode(self) -> bytes:
        out = _opt(_header(TYPE_PROBE).raw(self.nonce), self.cookie)
        return _finish(out.u16(self.padding).raw(bytes(self.padding)))


@dataclass(frozen=True, slots=True)
class Reflex:
    """REFLEX, the answer to a PROBE: the address the probe came from, as the
    responder saw it, and a cookie that validates that address for a while."""

    nonce: bytes
    observed: str
    cookie: bytes = b""

    def __post_init__(self) -> None:
        _check_size(self.nonce, (NONCE_SIZE,), "nonce")
        check_address(self.observed)
        _check_size(self.cookie, (0, COOKIE_SIZE), "cookie")

    def encode(self) -> bytes:
        out = _opt(_header(TYPE_REFLEX).raw(self.nonce), self.observed.encode())
        return _finish(_opt(out, self.cookie))


def here_size_bound(did: str) -> int:
    """The largest HERE any node can send in answer to a WHO_HAS for ``did``."""
    return HEADER_SIZE + NONCE_SIZE + 3 + len(did.encode()) + MAX_ADDRESS_BYTES + SIGNATURE_SIZE


@dataclass(frozen=True, slots=True)
class WhoHas:
    """WHO_HAS, "who has DID X?", typically broadcast on a LAN."""

    nonce: bytes
    did: str
    cookie: bytes = b""
    padding: int = 0

    def __post_init__(self) -> None:
        _check_size(self.nonce, (NONCE_SIZE,), "nonce")
        _check_did(self.did)
        _check_size(self.cookie, (0, COOKIE_SIZE), "cookie")
        _check_padding(self.padding)

    @classmethod
    def padded(cls, nonce: bytes, did: str, cookie: bytes = b"") -> WhoHas:
        """A WHO_HAS exactly as large as the largest HERE answering it."""
        base = len(cls(nonce, did, cookie).encode())
        return cls(nonce, did, cookie, max(0, here_size_bound(did) - base))

    def encode(self) -> bytes:
        out = _opt(_opt(_header(TYPE_WHO_HAS).raw(self.nonce), self.did.encode()), self.cookie)
        return _finish(out.u16(self.padding).raw(bytes(self.padding)))


@dataclass(frozen=True, slots=True)
class Here:
    """HERE, "I am DID X, listening at this address", for one WHO_HAS.

    ``signature`` (empty or 64 bytes) is Ed25519 by the DID's key over
    :meth:`signed_bytes`, which binds the WHO_HAS nonce so that an old
    answer cannot be replayed to a new question."""

    nonce: bytes
    did: str
    address: str
    signature: bytes = b""

    def __post_init__(self) -> None:
        _check_size(self.nonce, (NONCE_SIZE,), "nonce")
        _check_did(self.did)
        check_address(self.address)
        _check_size(self.signature, (0, SIGNATURE_SIZE), "signature")

    @staticmethod
    def signed_bytes(nonce: bytes, did: str, address: str) -> bytes:
        return _HERE_DOMAIN + length_prefixed(nonce, did.encode(), address.encode())

    @classmethod
    def signed(cls, identity: Identity, nonce: bytes, address: str) -> Here:
        """A HERE for ``identity``'s DID, signed with its Ed25519 key."""
        message = cls.signed_bytes(nonce, identity.did_text, address)
        signature = primitives.ed25519_sign(identity.signing, message)
        return cls(nonce, identity.did_text, address, signature)

    def verify(self, signing_key: bytes) -> None:
        """Raise :class:`~l2session.errors.AuthenticationFailed` unless signed
        by ``signing_key``, the key the DID resolves to
        (:func:`~l2session.identity.resolver.resolve_signing_key`); a missing
        signature fails too."""
        message = self.signed_bytes(self.nonce, self.did, self.address)
        primitives.ed25519_verify(signing_key, self.signature, message, what="discovery HERE")

    def encode(self) -> bytes:
        out = _opt(_header(TYPE_HERE).raw(self.nonce), self.did.encode())
        return _finish(_opt(_opt(out, self.address.encode()), self.signature))


@dataclass(frozen=True, slots=True)
class DialBack:
    """DIAL_BACK, "open a new μTCP connection to my IP at ``port`` and tell
    me whether it got through".  ``cookie`` (required) is a REFLEX cookie
    of the asker's source address: only a proven source is dialled, and
    only its own IP."""

    nonce: bytes
    cookie: bytes
    port: int

    def __post_init__(self) -> None:
        _check_size(self.nonce, (NONCE_SIZE,), "nonce")
        _check_size(self.cookie, (COOKIE_SIZE,), "cookie")
        if not (isinstance(self.port, int) and 1 <= self.port <= 65535):
            raise ConfigError(f"port must be 1-65535, got {self.port!r}")

    def encode(self) -> bytes:
        out = _opt(_header(TYPE_DIAL_BACK).raw(self.nonce), self.cookie)
        return _finish(out.u16(self.port))


@dataclass(frozen=True, slots=True)
class DialResult:
    """DIAL_RESULT, the answer to a DIAL_BACK: ``status`` (one of
    :data:`DIAL_STATUSES`) and the address that was dialled."""

    nonce: bytes
    status: int
    dialled: str

    def __post_init__(self) -> None:
        _check_size(self.nonce, (NONCE_SIZE,), "nonce")
        if self.status not in DIAL_STATUSES:
            raise ConfigError(f"unknown dial-back status {self.status!r}")
        check_address(self.dialled)

    @property
    def reached(self) -> bool:
        return self.status == DIAL_REACHED

    def encode(self) -> bytes:
        out = _header(TYPE_DIAL_RESULT).raw(self.nonce).u8(self.status)
        return _finish(_opt(out, self.dialled.encode()))


@dataclass(frozen=True, slots=True)
class DialJob:
    """What a responder's caller must do for an admitted DIAL_BACK: connect
    to ``address`` (the asker's IP, its port) over μTCP within
    ``DiscoveryLimits.dialback_timeout`` and send :meth:`answer` back."""

    nonce: bytes
    address: str

    def answer(self, status: int) -> bytes:
        return DialResult(self.nonce, status, self.address).encode()


Message = Probe | Reflex | WhoHas | Here | DialBack | DialResult


def _read_opt(r: Reader, sizes: tuple[int, ...], field_name: str) -> bytes:
    n = r.u8(f"{field_name} length")
    if n not in sizes:
        raise MalformedMessage(f"discovery: {field_name} length {n} not in {sizes}")
    return r.fixed(n, field_name)


def _read_text(r: Reader, max_len: int, field_name: str) -> str:
    n = r.u8(f"{field_name} length")
    if not 1 <= n <= max_len:
        raise MalformedMessage(f"discovery: {field_name} length {n} outside [1, {max_len}]")
    try:
        return r.fixed(n, field_name).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage(f"discovery: {field_name} is not UTF-8") from None


def _read_padding(r: Reader) -> int:
    n = r.u16("padding length")
    if any(r.fixed(n, "padding")):
        raise MalformedMessage("discovery: padding bytes must be zero")
    return n


def _decode(data: bytes) -> Message:
    r = Reader(data, "discovery")
    if len(data) > MAX_DATAGRAM:
        raise MalformedMessage(f"discovery: datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    if r.fixed(len(MAGIC), "magic") != MAGIC:
        raise MalformedMessage("discovery: bad magic (not an l2session discovery datagram)")
    version, kind = r.u8("version"), r.u8("type")
    if version != VERSION:
        raise MalformedMessage(f"discovery: unsupported version {version} (expected {VERSION})")
    nonce = r.fixed(NONCE_SIZE, "nonce")
    message: Message
    if kind == TYPE_PROBE:
        cookie = _read_opt(r, (0, COOKIE_SIZE), "cookie")
        message = Probe(nonce, cookie, _read_padding(r))
    elif kind == TYPE_REFLEX:
        observed = _read_text(r, MAX_ADDRESS_BYTES, "observed address")
        message = Reflex(nonce, observed, _read_opt(r, (0, COOKIE_SIZE), "cookie"))
    elif kind == TYPE_WHO_HAS:
        did = _read_text(r, MAX_DID_BYTES, "did")
        cookie = _read_opt(r, (0, COOKIE_SIZE), "cookie")
        message = WhoHas(nonce, did, cookie, _read_padding(r))
    elif kind == TYPE_HERE:
        did = _read_text(r, MAX_DID_BYTES, "did")
        address = _read_text(r, MAX_ADDRESS_BYTES, "address")
        message = Here(nonce, did, address, _read_opt(r, (0, SIGNATURE_SIZE), "signature"))
    elif kind == TYPE_DIAL_BACK:
        cookie = _read_opt(r, (COOKIE_SIZE,), "cookie")
        port = r.u16("port")
        if port == 0:
            raise MalformedMessage("discovery: DIAL_BACK port 0")
        message = DialBack(nonce, cookie, port)
    elif kind == TYPE_DIAL_RESULT:
        status = r.u8("status")
        if status not in DIAL_STATUSES:
            raise MalformedMessage(f"discovery: unknown dial-back status {status}")
        message = DialResult(nonce, status, _read_text(r, MAX_ADDRESS_BYTES, "dialled address"))
    else:
        raise MalformedMessage(f"discovery: unknown message type {kind}")
    r.finish()
    return message


def decode_message(data: bytes) -> Message:
    """Decode one datagram.  Hostile bytes raise :class:`MalformedMessage`
    and nothing else: a field check of the message classes (a DID or address
    that is not canonical) is converted at this boundary."""
    try:
        return _decode(data)
    except MalformedMessage:
        raise
    except (L2SessionError, ValueError) as exc:  # ValueError: belt and braces
        raise MalformedMessage(f"discovery: {exc}") from None
