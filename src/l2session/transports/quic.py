"""The QUIC path: session packets over one QUIC stream per connection.

Why QUIC first: one UDP socket serves every peer, a lost datagram stalls
only its own connection (no kernel TCP state, no head-of-line blocking
across peers), the handshake takes one round trip, and UDP is what NAT
traversal works with.  When UDP is blocked the handshake times out
(``connect_timeout``), the transport reports ``path_down`` and the node
falls back to μTCP.

Shape.  A node is a peer, not a client or a server, so it has ONE UDP
socket for both roles (:mod:`.quic_endpoint`): ``send`` to an address with
no connection dials it from that socket, and an Initial from an unknown
peer opens a server-side connection on it.  A peer's packets therefore come
from the port it listens on: the UDP source address is its canonical
address, which is how packets and path edges are reported -- unless the
peer is behind a NAT and its source is the NAT's mapping.  A node that is
not reachable where it listens (``advertise=False``, the node's
``outbound_only``) says so by offering :data:`ALPN_OUTBOUND_ONLY`, and the
accepting side then never dials that address: it is reached over its live
connection only (:meth:`QuicTransport.dialable`).  Two peers that
dial each other at once simply have two connections; both carry packets.

Packets travel length-framed (:mod:`.framing`, no HELLO) on one
bidirectional stream per connection and direction: the client opens stream
0 and the server answers on it -- a server that must speak first (the
client only probed) opens its own, and the client then answers on that.
Data on any other stream is a protocol violation.  Writes are coalesced:
packets queue on their connection and go to QUIC once per event-loop
iteration in one ``send_stream_data``.  The queue plus what QUIC has not sent yet is bounded
(:data:`MAX_QUEUE`); past it packets are dropped and counted -- the session
core acknowledges and resends, so dropping is safe and blocking is not.

TLS.  QUIC requires TLS 1.3; ALPN is ``l2session/1``.  Every node makes a
fresh self-signed certificate at start (:mod:`.certs`) and clients do not
verify it (``CERT_NONE``).  That is safe here because nothing above trusts
the TLS identity: the session's PQXDH handshake authenticates both DIDs and
derives its own keys end to end, so a man in the middle of QUIC can drop or
delay packets (as any router can) but can neither read nor forge them.  TLS
still hides the traffic from passive observers, with qh3's default key
exchange (hybrid X25519MLKEM768 between two qh3 nodes).

Fault injection: :attr:`QuicTransport.drop_filter` (address -> drop?)
silently discards datagrams to and from matching addresses, so tests and the
demo can "block UDP" between two loopback nodes.  It is a test hook, not a
firewall.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Final

from l2session.errors import TransportFailed
from l2session.transports.address import format_address, parse_address
from l2session.transports.base import REFUSED_PREFIX, TransportListener, TransportStats
from l2session.transports.certs import generate_self_signed
from l2session.transports.framing import MAX_FRAME, FrameTooLarge, encode_frames
from l2session.transports.quic_endpoint import (
    CID_LENGTH,
    QuicEndpoint,
    QuicLink,
    count,
    open_endpoint,
)
from l2session.transports.quic_library import QuicConfiguration, QuicErrorCode, events
from l2session.transports.quic_refusal import CONNECTION_REFUSED

log = logging.getLogger(__name__)

#: The ALPN protocol both ends must speak.
ALPN: Final = "l2session/1"
#: The same protocol, offered first by a node that does not listen where
#: its packets come from (``advertise=False``: behind a NAT, outbound-only):
#: the QUIC counterpart of μTCP's HELLO port 0.  A server that knows it
#: selects it and marks the client's address outbound-only; an older server
#: knows only :data:`ALPN` and selects that (docs/PROTOCOL.md §2.1).
ALPN_OUTBOUND_ONLY: Final = "l2session/1+outbound-only"
#: The protocols a connection may negotiate.
ALPNS: Final = frozenset({ALPN, ALPN_OUTBOUND_ONLY})
#: Outbound-only addresses remembered (oldest forgotten first).
MAX_OUTBOUND_ONLY: Final = 4096
#: Bytes a connection may hold unsent (our queue plus QUIC's send buffer).
MAX_QUEUE: Final = 16 * 1024 * 1024
#: The error codes we close connections with (RFC 9000 §20.1).
ERROR_NONE: Final = int(QuicErrorCode.NO_ERROR)
ERROR_PROTOCOL: Final = int(QuicErrorCode.APPLICATION_ERROR)


def make_configurations(
    idle_timeout: float, *, advertise: bool = True
) -> tuple[QuicConfiguration, QuicConfiguration]:
    """(server, client) configurations with a fresh self-signed certificate;
    ``advertise=False``: the client offers :data:`ALPN_OUTBOUND_ONLY` first."""
    certificate = generate_self_signed()
    server = QuicConfiguration(
        is_client=False,
        alpn_protocols=[ALPN_OUTBOUND_ONLY, ALPN],
        idle_timeout=idle_timeout,
        connection_id_length=CID_LENGTH,
    )
    server.load_cert_chain(certificate.certificate_pem, certificate.private_key_pem)
    client = QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN] if advertise else [ALPN_OUTBOUND_ONLY, ALPN],
        idle_timeout=idle_timeout,
        connection_id_length=CID_LENGTH,
        verify_mode=ssl.CERT_NONE,  # identity is the session's PQXDH (module docstring)
    )
    return server, client


class _Peer:
    """Everything we know about one canonical address."""

    __slots__ = ("current", "failed_at", "links", "state")

    def __init__(self) -> None:
        self.links: list[QuicLink] = []
        #: The established connection packets go on (kept while it lasts, so
        #: a burst is not spread over two connections and reordered).
        self.current: QuicLink | None = None
        #: The last edge reported: "up", "down" or None (none yet).
        self.state: str | None = None
        #: When connecting last failed (for ``retry_interval``).
        self.failed_at: float | None = None


class QuicTransport:
    """The ``"quic"`` path of a node (see the module docstring).

    ``connect_timeout``: seconds a handshake may take before the address is
    reported down (how blocked UDP is detected); an accepted connection
    that does not finish its handshake in that time is dropped silently.  ``idle_timeout``: QUIC's
    idle timeout.  ``retry_interval``: after a failed connect, sends to that
    address are dropped for this long instead of dialling again.
    ``max_connections``: connections of both roles; further Initials are
    ignored (``stats.extra["refused"]``).  ``drop_filter``: fault injection,
    see the module docstring; may be changed at any time.  ``advertise=False``:
    this node is not reachable where it listens (behind a NAT), so it
    offers :data:`ALPN_OUTBOUND_ONLY` and peers that know it never dial it.
    """

    name = "quic"

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        idle_timeout: float = 30.0,
        retry_interval: float = 0.5,
        max_connections: int = 1024,
        max_queue: int = MAX_QUEUE,
        drop_filter: Callable[[str], bool] | None = None,
        advertise: bool = True,
    ) -> None:
        if connect_timeout <= 0 or idle_timeout <= 0 or retry_interval < 0:
            raise ValueError("timeouts must be positive and retry_interval not negative")
        if max_connections < 1 or max_queue < 1:
            raise ValueError("max_connections and max_queue must be at least 1")
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.retry_interval = retry_interval
        self.max_connections = max_connections
        self.max_queue = max_queue
        self.drop_filter = drop_filter
        self.advertise = advertise
        #: Addresses whose client offered ALPN_OUTBOUND_ONLY: never dialled.
        self._outbound_only: dict[str, None] = {}
        self.stats = TransportStats()
        self._listener: TransportListener | None = None
        self._endpoint: QuicEndpoint | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: dict[str, _Peer] = {}
        self._max_peers = max(4096, 4 * max_connections)
        self._closed = False

    # -- Transport ------------------------------------------------------------

    async def start(self, listener: TransportListener, host: str, port: int) -> int:
        if self._endpoint is not None or self._closed:
            raise RuntimeError("a QuicTransport starts once")
        loop = asyncio.get_running_loop()
        server, client = make_configurations(self.idle_timeout, advertise=self.advertise)
        try:
            endpoint = await open_endpoint(
                lambda: QuicEndpoint(
                    self,
                    self.stats,
                    server_configuration=server,
                    client_configuration=client,
                    max_connections=self.max_connections,
                ),
                host,
                port,
            )
        except OSError as error:
            raise TransportFailed(
                f"cannot listen for QUIC on {format_address(host, port)}: {error.strerror or error}"
            ) from None
        self._listener, self._endpoint, self._loop = listener, endpoint, loop
        return self.port

    @property
    def port(self) -> int:
        """The UDP port bound (0 before ``start``)."""
        return 0 if self._endpoint is None else self._endpoint.local_port()

    @property
    def connection_count(self) -> int:
        """QUIC connections alive (both roles, closing ones included)."""
        return 0 if self._endpoint is None else len(self._endpoint.links)

    def send(self, address: str, data: bytes) -> None:
        endpoint, loop = self._endpoint, self._loop
        if len(data) > MAX_FRAME:
            raise FrameTooLarge(f"packet of {len(data)} bytes exceeds {MAX_FRAME}")
        if endpoint is None or loop is None or self._closed:
            self.stats.dropped += 1
            return
        peer = self._peers.get(address)
        link = None if peer is None else _pick(peer)
        if link is None:
            if address in self._outbound_only:
                # Its connection is gone: never dial a NAT's mapping.
                self.stats.dropped += 1
                count(self.stats, "not_dialled")
                return
            link = self._dial(address, peer, loop.time())
            if link is None:
                self.stats.dropped += 1
                return
        if link.queued_bytes + link.backlog + len(data) > self.max_queue:
            self.stats.dropped += 1
            count(self.stats, "queue_full")
            return
        link.queue.append(data)
        link.queued_bytes += len(data)
        if link.established:
            endpoint.mark(link)

    def probe(self, address: str) -> None:
        """Connect to ``address`` without sending a packet, unless a
        connection exists or is being made (or ``retry_interval`` has not
        passed since the last failure).  Success is reported as ``path_up``;
        failure as ``path_down`` unless the address is already down (edges
        only)."""
        endpoint, loop = self._endpoint, self._loop
        if endpoint is None or loop is None or self._closed:
            return
        peer = self._peers.get(address)
        if (peer is None or _pick(peer) is None) and address not in self._outbound_only:
            self._dial(address, peer, loop.time())

    def is_connected(self, address: str) -> bool:
        peer = self._peers.get(address)
        return peer is not None and any(link.established for link in peer.links)

    def confirm(self, address: str) -> None:
        """Nothing to do: a QUIC connection is keyed by the UDP source
        address it comes from, which is not a claim."""

    def dialable(self, address: str) -> bool:
        """False for an address whose last accepted connection offered
        :data:`ALPN_OUTBOUND_ONLY`: the peer said it is not reachable
        there (its NAT's mapping), so it is reached only over its live
        connection."""
        return address not in self._outbound_only

    def _mark(self, address: str, outbound_only: bool) -> None:
        """Record what the newest accepted connection from ``address`` said
        (the address's latest word wins: a node restarted listening there
        is dialable again)."""
        self._outbound_only.pop(address, None)
        if outbound_only:
            count(self.stats, "outbound_only")
            self._outbound_only[address] = None
            while len(self._outbound_only) > MAX_OUTBOUND_ONLY:
                del self._outbound_only[next(iter(self._outbound_only))]

    def progressed(self, address: str) -> bool:
        """Whether a connection to ``address`` has heard from the peer (its
        handshake is under way, so UDP gets through)."""
        peer = self._peers.get(address)
        return peer is not None and any(link.heard for link in peer.links)

    def disconnect(self, address: str) -> None:
        peer = self._peers.pop(address, None)
        if peer is not None:
            for link in list(peer.links):
                self._release(link, peer, ERROR_NONE, "disconnect")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for peer in self._peers.values():
            for link in peer.links:
                self.stats.dropped += len(link.queue)
                link.queue.clear()
        self._peers.clear()
        if self._endpoint is not None:
            self._endpoint.close("node closing")
            await asyncio.sleep(0)  # let the socket's connection_lost run

    # -- dialling -------------------------------------------------------------

    def _dial(self, address: str, peer: _Peer | None, now: float) -> QuicLink | None:
        endpoint, loop = self._endpoint, self._loop
        assert endpoint is not None
        assert loop is not None
        if (
            peer is not None
            and peer.failed_at is not None
            and now - peer.failed_at < self.retry_interval
        ):
            return None
        host, port = parse_address(address)
        if ":" in host and not endpoint.ipv6:
            peer = self._peers.setdefault(address, _Peer())
            peer.failed_at = now
            self._edge(address, peer, "down", "an IPv4 socket cannot reach an IPv6 address")
            return None
        if len(endpoint.links) >= self.max_connections:
            count(self.stats, "refused")
            return None
        link = endpoint.connect((host, port), address)
        self._peers.setdefault(address, _Peer()).links.append(link)
        link.deadline = loop.call_later(self.connect_timeout, self._deadline, link)
        return link

    def _deadline(self, link: QuicLink) -> None:
        link.deadline = None
        if link.established or link.detached or link.terminated:
            return
        reason = f"QUIC handshake timed out after {self.connect_timeout:g} s (UDP blocked?)"
        self._lost(link, ERROR_NONE, reason)

    # -- endpoint callbacks ---------------------------------------------------

    def link_accepted(self, link: QuicLink) -> None:
        if self._closed or self._loop is None:
            link.detached = True
            return
        self._peers.setdefault(link.address, _Peer()).links.append(link)
        link.deadline = self._loop.call_later(self.connect_timeout, self._deadline, link)

    def link_event(self, link: QuicLink, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            if not link.detached:
                self._stream_data(link, event)
        elif isinstance(event, events.HandshakeCompleted):
            if not link.detached:
                self._handshake_completed(link, event)
        elif isinstance(event, events.ConnectionTerminated):
            if not link.detached:
                phrase = f": {event.reason_phrase}" if event.reason_phrase else ""
                if event.error_code == CONNECTION_REFUSED and not link.established:
                    reason = f"{REFUSED_PREFIX} (QUIC{phrase})"
                else:
                    reason = f"QUIC connection closed (error {event.error_code}{phrase})"
                self._lost(link, None, reason)
        elif (
            isinstance(event, events.StreamReset | events.StopSendingReceived)
            and not link.detached
            and event.stream_id in (link.stream_id, link.rx_stream)
        ):
            self._lost(link, ERROR_NONE, "the peer closed the session stream")

    def write_queued(self, link: QuicLink) -> None:
        if link.detached or not link.queue:
            return
        if not link.established:
            return
        if link.stream_id is None:
            # Answer on the stream the peer opened, else open our own (the
            # client's is stream 0; a server that speaks first uses 1).
            rx = link.rx_stream
            link.stream_id = rx if rx is not None else link.quic.get_next_available_stream_id()
        frames, size = link.queue, link.queued_bytes
        link.queue, link.queued_bytes = [], 0
        try:
            link.quic.send_stream_data(link.stream_id, encode_frames(frames))
        except Exception:
            log.debug("QUIC write to %s failed", link.address, exc_info=True)
            self.stats.dropped += len(frames)
            self._lost(link, ERROR_PROTOCOL, "QUIC refused the write")
            return
        self.stats.packets_sent += len(frames)
        self.stats.bytes_sent += size
        link.backlog += size

    def _handshake_completed(self, link: QuicLink, event: events.HandshakeCompleted) -> None:
        if event.alpn_protocol not in ALPNS:
            count(self.stats, "alpn_refused")
            self._lost(link, ERROR_PROTOCOL, f"ALPN {event.alpn_protocol!r} is not {ALPN}")
            return
        if not link.is_client:
            # As authentic as the address itself: the handshake completed
            # with whoever receives packets at that UDP source.
            self._mark(link.address, event.alpn_protocol == ALPN_OUTBOUND_ONLY)
        link.established = True
        if link.deadline is not None:
            link.deadline.cancel()
            link.deadline = None
        if link.is_client:
            self.stats.connects += 1
        else:
            self.stats.accepted += 1
        peer = self._peers.get(link.address)
        if peer is not None:
            # The newest connection wins: one address is one socket, so a
            # new connection from it means the peer restarted (its old
            # connection is dead but looks alive until the idle timeout).
            peer.current = link
            peer.failed_at = None
            self._adopt_waiting(link, peer)
            self._edge(link.address, peer, "up", "")
        self.write_queued(link)

    def _adopt_waiting(self, link: QuicLink, peer: _Peer) -> None:
        """A simultaneous open (hole punching: both sides dial at once, and
        the Initial of the side that fired first is dropped by the other's
        NAT): the first connection up carries what waits on our dial still
        in its handshake, instead of it waiting there for QUIC's probe
        timeout (about a second) to resend that Initial."""
        for other in peer.links:
            if other is link or other.established or not other.queue:
                continue
            count(self.stats, "adopted")
            link.queue[:0] = other.queue
            link.queued_bytes += other.queued_bytes
            other.queue, other.queued_bytes = [], 0

    def _stream_data(self, link: QuicLink, event: events.StreamDataReceived) -> None:
        stream_id = event.stream_id
        if link.rx_stream is None and not stream_id & 2:  # the first bidirectional one
            link.rx_stream = stream_id
        if stream_id != link.rx_stream:
            self.stats.malformed += 1
            self._lost(link, ERROR_PROTOCOL, f"data on unexpected QUIC stream {stream_id}")
            return
        try:
            frames = link.decoder.feed(event.data)
        except FrameTooLarge as exc:
            self.stats.malformed += 1
            self._lost(link, ERROR_PROTOCOL, str(exc))
            return
        if frames:
            stats = self.stats
            stats.packets_received += len(frames)
            stats.bytes_received += sum(map(len, frames))
            listener, address = self._listener, link.address
            if listener is not None:
                for frame in frames:
                    listener.packet_received(frame, address, "quic")
        if event.end_stream and not link.detached:
            self._lost(link, ERROR_NONE, "the peer finished the session stream")

    # -- losing connections and edges -----------------------------------------

    def _lost(self, link: QuicLink, error: int | None, reason: str) -> None:
        """``link`` is over (closed by us with ``error``, or by QUIC when
        ``error`` is None): drop its queue, report the edge it causes."""
        peer = self._peers.get(link.address)
        if peer is None or link not in peer.links:
            self._release(link, None, error, reason)
            return
        connecting = link.is_client and not link.established
        was_up = link.established
        self._release(link, peer, error, reason)
        now = self._loop.time() if self._loop is not None else 0.0
        if connecting:
            self.stats.connect_failures += 1
            peer.failed_at = now
        if (was_up or connecting) and not any(other.established for other in peer.links):
            self._edge(link.address, peer, "down", reason)
        if not peer.links and peer.state is None and peer.failed_at is None:
            del self._peers[link.address]
        elif len(self._peers) > self._max_peers:
            self._prune()

    def _prune(self) -> None:
        """Forget the oldest addresses without connections (their last edge
        and failure time) so that many transient peers cannot grow memory
        without bound; a forgotten address reports its next edge afresh."""
        idle = [address for address, peer in self._peers.items() if not peer.links]
        for address in idle[: max(1, len(self._peers) - self._max_peers // 2)]:
            del self._peers[address]

    def _release(self, link: QuicLink, peer: _Peer | None, error: int | None, reason: str) -> None:
        """Let go of ``link``: no more events, its queue dropped, and (if
        ``error`` is not None) CONNECTION_CLOSE sent."""
        link.detached = True
        link.established = False
        if peer is not None:
            if link in peer.links:
                peer.links.remove(link)
            if peer.current is link:
                peer.current = None
        if link.queue:
            self.stats.dropped += len(link.queue)
            link.queue, link.queued_bytes = [], 0
        if link.deadline is not None:
            link.deadline.cancel()
            link.deadline = None
        if error is not None and not link.terminated and self._endpoint is not None:
            try:
                link.quic.close(error_code=error, reason_phrase=reason[:100])
            except Exception:
                log.debug("closing QUIC connection to %s failed", link.address, exc_info=True)
            self._endpoint.mark(link)

    def _edge(self, address: str, peer: _Peer, state: str, reason: str) -> None:
        if peer.state == state:
            return
        peer.state = state
        listener = self._listener
        if listener is None:
            return
        if state == "up":
            listener.path_up(address, "quic")
        else:
            listener.path_down(address, "quic", reason)


def _pick(peer: _Peer) -> QuicLink | None:
    """The connection to send on: the current one, else an established one,
    else one we are dialling (its queue waits for the handshake).  None: dial.
    An accepted connection still in its handshake is not used: it may be a
    stranger's, and would hold packets without any edge if it failed."""
    current = peer.current
    if current is not None and current.established:
        return current
    for link in peer.links:
        if link.established:
            peer.current = link
            return link
    for link in peer.links:
        if link.is_client:
            return link
    return None
