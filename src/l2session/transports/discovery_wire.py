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

The messages and their encoding are in
:mod:`l2session.transports.discovery_messages`; this module is the
responder that applies the rules above, and every public name of the
messages is importable from here too.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from l2session.codec import length_prefixed
from l2session.crypto import primitives
from l2session.crypto.kdf import mac
from l2session.errors import ConfigError, L2SessionError, MalformedMessage
from l2session.identity.identity import Identity
from l2session.transports.address import format_address, parse_address
from l2session.transports.discovery_messages import (
    COOKIE_DOMAIN,
    COOKIE_SIZE,
    DIAL_BUSY,
    DIAL_REACHED,
    DIAL_STATUSES,
    DIAL_UNREACHABLE,
    HEADER_SIZE,
    MAGIC,
    MAX_ADDRESS_BYTES,
    MAX_DATAGRAM,
    MAX_DID_BYTES,
    MAX_REFLEX_SIZE,
    NONCE_SIZE,
    REQUEST_TYPES,
    SIGNATURE_SIZE,
    TYPE_DIAL_BACK,
    TYPE_DIAL_RESULT,
    TYPE_HERE,
    TYPE_PROBE,
    TYPE_REFLEX,
    TYPE_WHO_HAS,
    VERSION,
    DialBack,
    DialJob,
    DialResult,
    Here,
    Message,
    Probe,
    Reflex,
    WhoHas,
    check_address,
    decode_message,
    here_size_bound,
)

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
            check_address(listen_address)
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
            COOKIE_DOMAIN, address.encode(), bucket.to_bytes(8, "big", signed=True)
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


__all__ = [
    "COOKIE_SIZE",
    "DIAL_BUSY",
    "DIAL_REACHED",
    "DIAL_STATUSES",
    "DIAL_UNREACHABLE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_ADDRESS_BYTES",
    "MAX_DATAGRAM",
    "MAX_DID_BYTES",
    "MAX_REFLEX_SIZE",
    "NONCE_SIZE",
    "REQUEST_TYPES",
    "SIGNATURE_SIZE",
    "TYPE_DIAL_BACK",
    "TYPE_DIAL_RESULT",
    "TYPE_HERE",
    "TYPE_PROBE",
    "TYPE_REFLEX",
    "TYPE_WHO_HAS",
    "VERSION",
    "DialBack",
    "DialJob",
    "DialResult",
    "DiscoveryLimits",
    "DiscoveryResponder",
    "DiscoveryStats",
    "Here",
    "Message",
    "Probe",
    "Reflex",
    "WhoHas",
    "announces_unspecified",
    "decode_message",
    "here_size_bound",
]
