"""Raw UDP discovery, the pure part: six messages and a stateless responder.

Discovery answers three questions before any session exists: *at which
address does the network see me?* (PROBE -> REFLEX, the reflexive address a
NAT gives us), *who on this LAN is DID X?* (WHO_HAS -> HERE, sent to a
broadcast or multicast address) and *can the network reach me where I
listen?* (DIAL_BACK -> DIAL_RESULT, in the spirit of libp2p's AutoNAT: the
responder opens a brand-new μTCP connection to the asker's own IP at the
port it names, and says whether an l2session HELLO answered).  Answers
are hints, never proof: HERE is signed with the answering node's Ed25519
DID key so that a LAN listener cannot forge *who* answered, but the
session's PQXDH handshake proves the peer's DID anyway, so a lie here
costs a failed handshake, not a breach.

UDP source addresses can be spoofed, so a responder must not become an
amplifier that turns small spoofed requests into large replies at a victim:

* Until a source is validated, a response is never larger than the request
  that caused it.  Requests are padded (:meth:`Probe.padded`,
  :meth:`WhoHas.padded`) so that the largest possible answer fits; a REFLEX
  that does not fit drops its cookie, anything else that does not fit is
  refused (before any signature is computed).
* A source is validated by a stateless cookie: REFLEX carries
  ``BLAKE3-MAC(secret, address, time bucket)``; a request echoing a cookie
  that is valid for its source address proves the sender receives traffic
  at that address, and may then be answered up to :data:`MAX_DATAGRAM`.
* DIAL_BACK is answered only for a source its cookie proves (so its IP is
  not spoofed), and only that IP is ever dialled: a responder cannot be
  made to connect to a third party.  The dial itself is the caller's I/O
  (:class:`DialJob`), bounded in number and time by :class:`DiscoveryLimits`.
* Every datagram spends a token of its source's bucket and of a global
  bucket (the per-source check comes first, so one flooder drains only its
  own share of the global budget).  The source table is bounded, least
  recently seen evicted.

Sans-I/O: the cookie secret and ``now`` are passed in; no sockets here.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from l2session.codec import Reader, Writer, length_prefixed
from l2session.crypto import primitives
from l2session.crypto.kdf import mac
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

_COOKIE_DOMAIN: Final = b"l2session discovery cookie v1"
_HERE_DOMAIN: Final = b"l2session discovery here v1"


def _check_size(value: bytes, sizes: tuple[int, ...], field_name: str) -> None:
    if len(value) not in sizes:
        raise ConfigError(f"{field_name} must be {' or '.join(map(str, sizes))} bytes")


def _check_address(text: str) -> None:
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
        _check_address(self.observed)
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
        _check_address(self.address)
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
        _check_address(self.dialled)

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


# --------------------------------------------------------------------------
# The responder


@dataclass(frozen=True, slots=True)
class DiscoveryLimits:
    """Token buckets (tokens per second, burst), the source table bound and
    the cookie period (a cookie is valid for one to two periods)."""

    source_rate: float = 5.0
    source_burst: float = 10.0
    global_rate: float = 200.0
    global_burst: float = 400.0
    max_sources: int = 1024
    cookie_period: float = 60.0
    #: Dial-backs in flight at once (more are answered DIAL_BUSY), and how
    #: long one may take (connect and HELLO).
    max_dialbacks: int = 16
    dialback_timeout: float = 3.0

    def __post_init__(self) -> None:
        for name in ("source_rate", "source_burst", "global_rate", "global_burst"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"DiscoveryLimits.{name} must be > 0")
        if not (isinstance(self.max_dialbacks, int) and self.max_dialbacks >= 1):
            raise ConfigError("DiscoveryLimits.max_dialbacks must be an integer >= 1")
        if not self.dialback_timeout > 0:
            raise ConfigError("DiscoveryLimits.dialback_timeout must be > 0")
        if self.max_sources < 1 or not self.cookie_period > 0:
            raise ConfigError("DiscoveryLimits: max_sources >= 1 and cookie_period > 0")


@dataclass(slots=True)
class DiscoveryStats:
    """What the responder did: each datagram counts in exactly one of the
    first five counters; ``validated`` counts answers to cookie-proven sources."""

    answered: int = 0
    refused: int = 0  # would amplify: too small for its answer, source not validated
    malformed: int = 0
    rate_limited: int = 0
    ignored: int = 0  # a response, or a WHO_HAS for another DID
    validated: int = 0  # of ``answered``: sent to a source proven by its cookie
    dialbacks: int = 0  # of ``answered``: DIAL_BACKs handed to the caller to dial


class _Bucket:
    __slots__ = ("last", "tokens")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens, self.last = tokens, now

    def take(self, rate: float, burst: float, now: float) -> bool:
        elapsed = max(0.0, now - self.last)  # a clock that steps back refills nothing
        self.tokens = min(burst, self.tokens + elapsed * rate)
        self.last = max(self.last, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class DiscoveryResponder:
    """Answers PROBE and WHO_HAS datagrams (see the module docstring).

    ``identity`` (with ``listen_address``) makes it answer WHO_HAS for its
    own DID; without one it only reflects addresses.  Pure: the caller
    passes ``now`` (any monotonic seconds) and moves the bytes.
    """

    def __init__(
        self,
        cookie_secret: bytes,
        *,
        identity: Identity | None = None,
        listen_address: str | None = None,
        limits: DiscoveryLimits | None = None,
    ) -> None:
        if len(cookie_secret) != 32:
            raise ConfigError("cookie_secret must be 32 random bytes")
        if identity is not None and listen_address is None:
            raise ConfigError("a responder with an identity needs the listen_address to announce")
        if listen_address is not None:
            _check_address(listen_address)
        self._secret = bytes(cookie_secret)
        self.identity = identity
        self.listen_address = listen_address
        self.limits = limits or DiscoveryLimits()
        self.stats = DiscoveryStats()
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        self._global: _Bucket | None = None

    @property
    def tracked_sources(self) -> int:
        return len(self._sources)

    def is_tracked(self, source_address: str) -> bool:
        return source_address in self._sources

    def cookie(self, source_address: str, now: float) -> bytes:
        """The cookie for ``source_address`` in the time bucket of ``now``."""
        return self._cookie(source_address, int(now // self.limits.cookie_period))

    def _cookie(self, address: str, bucket: int) -> bytes:
        data = length_prefixed(
            _COOKIE_DOMAIN, address.encode(), bucket.to_bytes(8, "big", signed=True)
        )
        return mac(self._secret, data)[:COOKIE_SIZE]

    def cookie_valid(self, cookie: bytes, source_address: str, now: float) -> bool:
        """Issued for this address in the current or the previous bucket."""
        if len(cookie) != COOKIE_SIZE:
            return False
        bucket = int(now // self.limits.cookie_period)
        return any(
            primitives.ct_equal(cookie, self._cookie(source_address, b))
            for b in (bucket, bucket - 1)
        )

    def _admit(self, source: str, now: float) -> bool:
        lim = self.limits
        bucket = self._sources.get(source)
        if bucket is None:
            bucket = self._sources[source] = _Bucket(lim.source_burst, now)
            while len(self._sources) > lim.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        if not bucket.take(lim.source_rate, lim.source_burst, now):
            return False
        if self._global is None:
            self._global = _Bucket(lim.global_burst, now)
        return self._global.take(lim.global_rate, lim.global_burst, now)

    def handle(
        self,
        data: bytes,
        source_address: str,
        now: float,
        local_host: Callable[[], str | None] | None = None,
    ) -> bytes | None:
        """The answer to send back to ``source_address``, or ``None``.

        A HERE always names a concrete address, because the asker uses it as
        signed: with ``listen_address`` on an unspecified host (``0.0.0.0``,
        ``::``) the host announced is ``local_host()``, this machine's
        address toward the asker (the caller asks the routing table); with
        none known, WHO_HAS is not answered.  (Before, the asker took such a
        HERE's *source* IP, so whoever relayed it became the DID's address.)
        An admitted DIAL_BACK is dropped here (a caller that cannot dial):
        :meth:`receive` hands it out."""
        answer = self.receive(data, source_address, now, local_host)
        return answer if isinstance(answer, bytes) else None

    def receive(
        self,
        data: bytes,
        source_address: str,
        now: float,
        local_host: Callable[[], str | None] | None = None,
    ) -> bytes | DialJob | None:
        """As :meth:`handle`, or a :class:`DialJob` for a DIAL_BACK from a
        proven source (dial, then send its answer)."""
        stats = self.stats
        if not self._admit(source_address, now):
            stats.rate_limited += 1
            return None
        try:
            message = decode_message(data)
        except MalformedMessage:
            stats.malformed += 1
            return None
        if isinstance(message, Reflex | Here | DialResult):
            stats.ignored += 1  # never answer an answer: no reflection loops
            return None
        validated = bool(message.cookie) and self.cookie_valid(message.cookie, source_address, now)
        if isinstance(message, DialBack):
            if not validated:
                stats.refused += 1  # an unproven source is never dialled
                return None
            host, _ = parse_address(source_address)
            stats.answered += 1
            stats.validated += 1
            stats.dialbacks += 1
            return DialJob(message.nonce, format_address(host, message.port))
        limit = MAX_DATAGRAM if validated else len(data)
        answer: bytes | None = None
        if isinstance(message, Probe):
            try:
                reflex = Reflex(message.nonce, source_address, self.cookie(source_address, now))
            except L2SessionError:  # an address we cannot write (the caller's bug)
                stats.ignored += 1
                return None
            answer = reflex.encode()
            if len(answer) > limit:  # truncate: the cookie is the optional part
                answer = Reflex(reflex.nonce, reflex.observed).encode()
        else:
            identity, address = self.identity, self.listen_address
            if identity is None or address is None or message.did != identity.did_text:
                stats.ignored += 1
                return None
            address = _concrete(address, local_host)
            if address is None:
                stats.ignored += 1
                return None
            size = HEADER_SIZE + NONCE_SIZE + 3 + len(message.did.encode()) + len(address.encode())
            if size + SIGNATURE_SIZE <= limit:  # refuse before paying for a signature
                answer = Here.signed(identity, message.nonce, address).encode()
        if answer is None or len(answer) > limit:
            stats.refused += 1
            return None
        stats.answered += 1
        stats.validated += int(validated)
        return answer


def announces_unspecified(address: str) -> bool:
    """Whether ``address``'s host is unspecified (``0.0.0.0``, ``::``): a
    HERE naming one is refused by the asker (see ``handle``)."""
    host, _ = parse_address(address)
    return ipaddress.ip_address(host).is_unspecified


def _concrete(address: str, local_host: Callable[[], str | None] | None) -> str | None:
    """``address``, with an unspecified host replaced by ``local_host()``
    (None: no concrete address is known)."""
    if not announces_unspecified(address):
        return address
    host = local_host() if local_host is not None else None
    if host is None or ipaddress.ip_address(host).is_unspecified:
        return None
    return format_address(host, parse_address(address)[1])
