"""Raw UDP discovery over asyncio: a thin shell around :mod:`.discovery_wire`.

One :class:`DiscoveryEndpoint` is one UDP socket that both asks and answers:

* :meth:`~DiscoveryEndpoint.probe` asks a peer at which address it sees us
  (our reflexive address behind a NAT);
* :meth:`~DiscoveryEndpoint.who_has` asks unicast, broadcast or multicast
  targets who is a DID, and returns the listening address the owner
  announced in a HERE whose signature verifies against that DID's key;
* :meth:`~DiscoveryEndpoint.dial_back` asks a peer to open a new μTCP
  connection to our IP at our listening port (is this node reachable
  from outside?); a DIAL_BACK that arrives is dialled here, bounded in
  number and time, and answered with DIAL_RESULT;
* every PROBE, WHO_HAS and DIAL_BACK that arrives is handed to the pure
  :class:`~.discovery_wire.DiscoveryResponder`, which decides (rate limits,
  anti-amplification, cookies) whether and what to answer.

Everything that decides is in the pure module and tested without sockets;
this module only moves datagrams, keeps the table of questions in flight,
and retries a bounded number of times (UDP loses datagrams).  What
discovery returns is a hint: the session's PQXDH handshake is what proves
the peer's DID.

Cookies: a REFLEX carries a cookie that validates our address at that
responder for at least one cookie period.  While it is fresh, the first
probe to that responder goes out unpadded (the responder may answer a
validated source with more than it received); retries are always padded,
so an expired cookie costs one retry, never an answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from l2session.crypto.rng import RandomSource
from l2session.errors import ConfigError, L2SessionError, MalformedMessage, TransportFailed
from l2session.identity.did import Did
from l2session.identity.identity import Identity
from l2session.identity.resolver import DidResolver, default_resolver, resolve_signing_key
from l2session.transports.address import format_address, parse_address
from l2session.transports.discovery_wire import (
    DIAL_BUSY,
    DIAL_REACHED,
    DIAL_UNREACHABLE,
    HEADER_SIZE,
    NONCE_SIZE,
    REQUEST_TYPES,
    DialBack,
    DialJob,
    DialResult,
    DiscoveryLimits,
    DiscoveryResponder,
    Here,
    Probe,
    Reflex,
    WhoHas,
    announces_unspecified,
    decode_message,
)
from l2session.transports.framing import HEADER, encode_hello

#: Answers considered per question: bounds the signature checks a LAN
#: attacker can make us do by answering a broadcast WHO_HAS many times.
MAX_CANDIDATES: Final = 16
#: Responders whose cookies we remember.
MAX_COOKIES: Final = 256
#: The first bytes every l2session μTCP listener sends: a dial-back that
#: reads them reached a node, not just any open port.
_HELLO_PREFIX: Final = encode_hello(0)[: HEADER + 4]


@dataclass(slots=True)
class EndpointStats:
    """What the asking side saw (the answering side counts in
    ``endpoint.responder.stats``)."""

    requests_sent: int = 0
    answers: int = 0
    unsolicited: int = 0  # no question in flight with that nonce, or wrong sender
    bad_signatures: int = 0
    #: HEREs naming an unspecified host (an old responder's, or a relayed one).
    unusable: int = 0
    malformed: int = 0
    send_errors: int = 0
    #: Dial-backs we made for others, by outcome.
    dialled_reached: int = 0
    dialled_unreachable: int = 0
    dialled_busy: int = 0


@dataclass(slots=True)
class _Question:
    future: asyncio.Future[str | DialResult]
    kind: type[Reflex] | type[Here] | type[DialResult]
    target: str  # PROBE: the address probed; WHO_HAS: the DID asked for
    signing_key: bytes | None = None
    require_signature: bool = True
    candidates: int = 0


class _Protocol(asyncio.DatagramProtocol):
    """Forwards to the endpoint (attached once built; earlier datagrams are
    dropped, as UDP may drop them anyway)."""

    def __init__(self) -> None:
        self.endpoint: DiscoveryEndpoint | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.endpoint is not None:
            self.endpoint._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        if self.endpoint is not None:  # ICMP errors of earlier sends
            self.endpoint.stats.send_errors += 1


class DiscoveryEndpoint:
    """A UDP socket that probes, asks who has a DID, and answers both.

    Build with :meth:`open`; close with :meth:`close` (or ``async with``).
    """

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        responder: DiscoveryResponder,
        address: str,
        resolver: DidResolver,
        rng: RandomSource | None,
    ) -> None:
        self._transport = transport
        self.responder = responder
        self.address = address
        self.resolver = resolver
        self.stats = EndpointStats()
        self._random = rng.random_bytes if rng is not None else os.urandom
        self._loop = asyncio.get_running_loop()
        self._questions: dict[bytes, _Question] = {}
        self._cookies: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._dialling: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        identity: Identity | None = None,
        listen_address: str | None = None,
        resolver: DidResolver | None = None,
        limits: DiscoveryLimits | None = None,
        broadcast: bool = False,
        multicast_group: str | None = None,
        rng: RandomSource | None = None,
    ) -> DiscoveryEndpoint:
        """Bind ``host:port`` (port 0: any free port).

        ``identity`` makes the endpoint answer WHO_HAS for its DID with
        ``listen_address`` (default: this socket's address; a host of
        ``0.0.0.0``/``::`` tells askers "the address this answer came
        from").  ``broadcast`` allows sending to broadcast addresses;
        ``multicast_group`` joins that group (on every interface) so that
        WHO_HAS sent to it reaches us.
        """
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if multicast_group is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind((host, port))
            if multicast_group is not None:
                _join_group(sock, multicast_group)
            sock.setblocking(False)
            bound = sock.getsockname()
            address = format_address(bound[0], bound[1])
            secret = rng.random_bytes(32) if rng is not None else os.urandom(32)
            responder = DiscoveryResponder(
                secret,
                identity=identity,
                listen_address=(listen_address or address) if identity is not None else None,
                limits=limits,
            )
        except BaseException:
            sock.close()
            raise
        protocol = _Protocol()
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        endpoint = cls(transport, responder, address, resolver or default_resolver(), rng)
        protocol.endpoint = endpoint
        return endpoint

    async def __aenter__(self) -> DiscoveryEndpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket; questions in flight fail with TransportFailed."""
        for question in self._questions.values():
            if not question.future.done():
                question.future.set_exception(TransportFailed("discovery endpoint closed"))
        self._questions.clear()
        for task in self._dialling:
            task.cancel()
        self._dialling.clear()
        self._transport.close()

    # ---------------------------------------------------------------- asking

    async def probe(self, address: str, timeout: float = 2.0, *, attempts: int = 3) -> str:
        """Our address as the peer at ``address`` sees it.

        Sends up to ``attempts`` probes spread over ``timeout`` seconds;
        raises :class:`TransportFailed` if no REFLEX came back in time.
        """
        target = format_address(*parse_address(address))
        question = _Question(self._loop.create_future(), Reflex, target)
        nonce = self._ask(question)

        def request(attempt: int, target: str) -> bytes:
            cookie = self._fresh_cookie(target)
            if attempt == 0 and cookie is not None:
                return Probe(nonce, cookie).encode()  # validated: no padding needed
            return Probe.padded(nonce, cookie or b"").encode()

        result = await self._run(nonce, [target], request, timeout, attempts)
        if result is None:
            raise TransportFailed(
                f"discovery probe to {target}: no answer within {timeout:g} s "
                f"({attempts} probes sent); is a discovery endpoint listening there?"
            )
        assert isinstance(result, str)
        return result

    async def dial_back(self, address: str, port: int, timeout: float = 6.0) -> DialResult:
        """Ask the discovery endpoint at ``address`` to open a new μTCP
        connection to our IP at ``port`` (AutoNAT-style: from a port we
        never sent to, so a NAT's filter stops it unless ``port`` is really
        reachable).  Probes first when no fresh cookie from ``address`` is
        known (the responder dials only proven sources).  Raises
        TransportFailed if no answer came within ``timeout``."""
        target = format_address(*parse_address(address))
        if self._fresh_cookie(target) is None:
            await self.probe(target, timeout=min(2.0, timeout / 2))
        cookie = self._fresh_cookie(target)
        if cookie is None:
            raise TransportFailed(f"discovery dial-back via {target}: no cookie from it")
        question = _Question(self._loop.create_future(), DialResult, target)
        nonce = self._ask(question)
        request = DialBack(nonce, cookie, port).encode()
        result = await self._run(nonce, [target], lambda _a, _t: request, timeout, 1)
        if result is None:
            raise TransportFailed(
                f"discovery dial-back via {target}: no answer within {timeout:g} s"
            )
        assert isinstance(result, DialResult)
        return result

    async def who_has(
        self,
        did: str | Did,
        targets: list[str],
        timeout: float = 2.0,
        *,
        attempts: int = 3,
        require_signature: bool = True,
    ) -> str | None:
        """The listening address announced by the node that is ``did``, or
        ``None`` if no valid answer came within ``timeout`` seconds.

        ``targets`` are unicast, broadcast or multicast ``IP:port``
        addresses; each gets up to ``attempts`` WHO_HAS.  A HERE counts only
        if its signature verifies against the key ``did`` resolves to (an
        unsigned one is accepted only with ``require_signature=False``).
        """
        did_text = str(Did.parse(did) if isinstance(did, str) else did)
        signing_key: bytes | None = None
        try:
            signing_key = resolve_signing_key(self.resolver, did_text)
        except L2SessionError:
            if require_signature:
                raise  # we could never accept an answer: say why now
        addresses = [format_address(*parse_address(t)) for t in targets]
        if not addresses:
            raise ConfigError("who_has needs at least one target address")
        question = _Question(
            self._loop.create_future(), Here, did_text, signing_key, require_signature
        )
        nonce = self._ask(question)

        def request(attempt: int, target: str) -> bytes:
            cookie = self._fresh_cookie(target)
            if attempt == 0 and cookie is not None:
                return WhoHas(nonce, did_text, cookie).encode()
            return WhoHas.padded(nonce, did_text, cookie or b"").encode()

        found = await self._run(nonce, addresses, request, timeout, attempts)
        assert found is None or isinstance(found, str)
        return found

    def _ask(self, question: _Question) -> bytes:
        nonce = self._random(NONCE_SIZE)
        while nonce in self._questions:  # pragma: no cover - 2^-128
            nonce = self._random(NONCE_SIZE)
        self._questions[nonce] = question
        return nonce

    async def _run(
        self,
        nonce: bytes,
        targets: list[str],
        request: Callable[[int, str], bytes],
        timeout: float,
        attempts: int,
    ) -> str | DialResult | None:
        future = self._questions[nonce].future
        deadline = self._loop.time() + timeout
        try:
            if attempts < 1 or not timeout > 0:
                raise ConfigError("discovery needs attempts >= 1 and a timeout > 0")
            for attempt in range(attempts):
                for target in targets:
                    self._send(request(attempt, target), target)
                wait = (deadline - self._loop.time()) / (attempts - attempt)
                done, _ = await asyncio.wait([future], timeout=max(0.0, wait))
                if done:
                    return future.result()
            return None
        finally:
            self._questions.pop(nonce, None)
            future.cancel()

    def _send(self, data: bytes, target: str) -> None:
        if self._transport.is_closing():
            raise TransportFailed("discovery endpoint is closed")
        host, port = parse_address(target)
        self._transport.sendto(data, (host, port))
        self.stats.requests_sent += 1

    def _fresh_cookie(self, target: str) -> bytes | None:
        """A cookie from ``target`` young enough to be surely valid there
        (assuming its cookie period is not shorter than ours)."""
        entry = self._cookies.get(target)
        period = self.responder.limits.cookie_period
        if entry is None or self._loop.time() - entry[1] > period / 2:
            return None
        return entry[0]

    # ------------------------------------------------------------- receiving

    def _received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            source = format_address(str(addr[0]), int(addr[1]))
        except (L2SessionError, ValueError, IndexError):
            self.stats.malformed += 1
            return
        if len(data) >= HEADER_SIZE and data[HEADER_SIZE - 1] in REQUEST_TYPES:
            answer = self.responder.receive(
                data, source, self._loop.time(), lambda: _local_host_toward(addr)
            )
            if isinstance(answer, DialJob):
                self._dial(answer, addr)
            elif answer is not None and not self._transport.is_closing():
                self._transport.sendto(answer, addr)
            return
        try:
            message = decode_message(data)
        except MalformedMessage:
            self.stats.malformed += 1
            return
        question = self._questions.get(message.nonce)
        if question is None or question.future.done() or not isinstance(message, question.kind):
            self.stats.unsolicited += 1
            return
        if isinstance(message, Reflex):
            self._reflex(question, message, source)
        elif isinstance(message, Here):
            self._here(question, message, source)
        elif isinstance(message, DialResult):
            if source != question.target:  # only the peer asked may answer
                self.stats.unsolicited += 1
                return
            self.stats.answers += 1
            question.future.set_result(message)

    # ------------------------------------------------------------ dialling

    def _dial(self, job: DialJob, addr: tuple[str | int, ...]) -> None:
        """Dial ``job`` for the asker at ``addr`` (bounded in number)."""
        if len(self._dialling) >= self.responder.limits.max_dialbacks:
            self.stats.dialled_busy += 1
            if not self._transport.is_closing():
                self._transport.sendto(job.answer(DIAL_BUSY), addr)
            return
        task = self._loop.create_task(self._dial_one(job, addr))
        self._dialling.add(task)
        task.add_done_callback(self._dialling.discard)

    async def _dial_one(self, job: DialJob, addr: tuple[str | int, ...]) -> None:
        host, port = parse_address(job.address)
        status = DIAL_UNREACHABLE
        try:
            async with asyncio.timeout(self.responder.limits.dialback_timeout):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    head = await reader.readexactly(len(_HELLO_PREFIX))
                finally:
                    writer.close()
            if head == _HELLO_PREFIX:
                status = DIAL_REACHED
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        if status == DIAL_REACHED:
            self.stats.dialled_reached += 1
        else:
            self.stats.dialled_unreachable += 1
        if not self._transport.is_closing():
            self._transport.sendto(job.answer(status), addr)

    def _reflex(self, question: _Question, message: Reflex, source: str) -> None:
        if source != question.target:  # only the peer probed may answer
            self.stats.unsolicited += 1
            return
        if message.cookie:
            self._cookies[source] = (message.cookie, self._loop.time())
            self._cookies.move_to_end(source)
            while len(self._cookies) > MAX_COOKIES:
                self._cookies.popitem(last=False)
        self.stats.answers += 1
        question.future.set_result(message.observed)

    def _here(self, question: _Question, message: Here, source: str) -> None:
        question.candidates += 1
        if message.did != question.target or question.candidates > MAX_CANDIDATES:
            self.stats.unsolicited += 1
            return
        key = question.signing_key
        if key is not None and (message.signature or question.require_signature):
            try:
                message.verify(key)
            except L2SessionError:
                self.stats.bad_signatures += 1
                return
        if announces_unspecified(message.address):
            # The signature does not cover the IP we would have to take from
            # the packet's source, so a relayer would become the DID's
            # address: refused (current responders announce concrete hosts).
            self.stats.unusable += 1
            return
        self.stats.answers += 1
        question.future.set_result(message.address)


def _local_host_toward(addr: tuple[str | int, ...]) -> str | None:
    """This machine's address on the route toward ``addr``: a UDP socket
    "connected" there (no packet is sent) is bound by the kernel to the
    source address it would use."""
    host = str(addr[0])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, int(addr[1])))
            local = str(probe.getsockname()[0])
    except (OSError, ValueError):
        return None
    ip = ipaddress.ip_address(local)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return local


def _join_group(sock: socket.socket, group: str) -> None:
    """Join multicast ``group`` on the default interface, hop limit 1."""
    ip = ipaddress.ip_address(group)
    if not ip.is_multicast:
        raise ConfigError(f"{group!r} is not a multicast address")
    if ip.version == 4:
        request = struct.pack("4s4s", ip.packed, bytes(4))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    else:
        request = ip.packed + struct.pack("@I", 0)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, request)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
