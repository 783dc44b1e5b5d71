"""One UDP socket carrying many sans-I/O QUIC connections, in both roles.

qh3's own asyncio layer (like aioquic's) binds one socket per client
connection and a separate one for the server.  A peer-to-peer node wants
one socket: the address a peer listens on is then also the address its
packets come from, so the UDP source *is* its canonical address and no
HELLO is needed.  This module is that socket: it routes each datagram to a
:class:`QuicLink` by destination connection ID, turns an unknown client
Initial into a new server-side connection, sends what every connection has
to send, and runs one timer per connection.  What the connections carry
(framing, queues, path edges) is :mod:`.quic`'s business, reached through
:class:`EndpointOwner`.

Speed.  qh3 does packets and crypto natively, so what costs here is
per-datagram Python work and system calls.  Hence: datagrams are read in
batches where the library's socket layer can (recvmmsg, GRO) and fed to
their connection together; a connection that received or has something to
send is *marked*, and once per event-loop iteration each marked connection
dispatches its events, takes its queued frames and transmits -- one ACK for
a whole burst instead of one per datagram -- and sends what it has in one
batched call (GSO) where the socket layer offers ``sendto_many``.  Without
that layer (another platform or library) a plain asyncio datagram endpoint
does the same work one datagram at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

from l2session.transports.address import format_address
from l2session.transports.base import TransportStats
from l2session.transports.framing import FrameDecoder
from l2session.transports.quic_library import (
    QuicConfiguration,
    QuicConnection,
    QuicPacketType,
    create_batching_endpoint,
    events,
    pull_quic_header,
    receive_datagrams,
)
from l2session.transports.quic_refusal import CONNECTION_REFUSED, refusal

log = logging.getLogger(__name__)

#: Length of the connection IDs we issue (qh3's default); short-header
#: packets do not carry it, so the router must know it.
CID_LENGTH: Final = 8
#: Socket buffer size asked for (bursts of datagrams queue here).
SOCKET_BUFFER: Final = 4 * 1024 * 1024
#: The smallest datagram that may open a connection (RFC 9000 §14.1).
MIN_INITIAL_SIZE: Final = 1200
#: The largest UDP payload (a read buffer this big never truncates).
MAX_DATAGRAM: Final = 65535

SockAddr = tuple[Any, ...]


def count(stats: TransportStats, key: str, n: int = 1) -> None:
    extra = stats.extra
    extra[key] = extra.get(key, 0) + n


def address_text(addr: SockAddr) -> str:
    """The canonical ``host:port`` of a socket address (IPv4-mapped IPv6
    addresses as plain IPv4, so a dual-stack socket names peers as they
    name themselves)."""
    ip = ipaddress.ip_address(addr[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return format_address(str(ip), int(addr[1]))


class QuicLink:
    """One QUIC connection and what the transport keeps for it."""

    __slots__ = (
        "address",
        "backlog",
        "cids",
        "deadline",
        "decoder",
        "detached",
        "established",
        "heard",
        "is_client",
        "queue",
        "queued_bytes",
        "quic",
        "rx_stream",
        "stream_id",
        "terminated",
        "timer",
        "timer_at",
    )

    def __init__(self, quic: QuicConnection, address: str, *, is_client: bool) -> None:
        self.quic = quic
        self.address = address
        self.is_client = is_client
        self.cids: set[bytes] = set()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.terminated = False
        # Owned by the transport:
        self.decoder = FrameDecoder()
        self.deadline: asyncio.TimerHandle | None = None
        #: The transport has let go of it (closed, failed, disconnected):
        #: its events are ignored while QUIC finishes closing.
        self.detached = False
        self.established = False
        #: The peer has sent at least one datagram on it: UDP gets through,
        #: the handshake is progressing (core/paths/race.py waits for it).
        self.heard = False
        #: The stream we send on (chosen at the first write) and the one the
        #: peer sends on (the first stream it sent data on).
        self.stream_id: int | None = None
        self.rx_stream: int | None = None
        self.queue: list[bytes] = []
        self.queued_bytes = 0
        #: Stream bytes qh3 has not sent yet, as of the last transmit.
        self.backlog = 0


class EndpointOwner(Protocol):
    """What the endpoint calls back into (the transport)."""

    drop_filter: Callable[[str], bool] | None

    def link_accepted(self, link: QuicLink) -> None:
        """A new server-side connection proved to be a real QUIC client."""

    def link_event(self, link: QuicLink, event: events.QuicEvent) -> None:
        """A QUIC event of ``link`` (not connection-ID bookkeeping)."""

    def write_queued(self, link: QuicLink) -> None:
        """Hand the link's queued frames to QUIC (once per loop iteration)."""


async def open_endpoint(factory: Callable[[], QuicEndpoint], host: str, port: int) -> QuicEndpoint:
    """Bind a UDP socket to ``host:port`` (the first address it resolves
    to that binds, as ``create_datagram_endpoint(local_addr=...)`` does) and
    run ``factory``'s endpoint on it, on the library's batching socket layer
    when there is one.  Raises OSError."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP)
    error: OSError = OSError(f"no address for {host!r}")
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):  # the kernel caps it; best effort
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        try:
            if create_batching_endpoint is not None:
                _, protocol = await create_batching_endpoint(
                    loop, factory, sock=sock, gro_segment_size=MAX_DATAGRAM
                )
            else:
                _, protocol = await loop.create_datagram_endpoint(factory, sock=sock)
        except BaseException:
            sock.close()  # (a no-op if the failed call closed it already)
            raise
        return cast(QuicEndpoint, protocol)
    raise error


class QuicEndpoint(asyncio.DatagramProtocol):
    """The node's UDP socket and the router over its QUIC connections."""

    def __init__(
        self,
        owner: EndpointOwner,
        stats: TransportStats,
        *,
        server_configuration: QuicConfiguration,
        client_configuration: QuicConfiguration,
        max_connections: int,
    ) -> None:
        self._owner = owner
        self._stats = stats
        self._server_configuration = server_configuration
        self._client_configuration = client_configuration
        self.max_connections = max_connections
        self._loop = asyncio.get_running_loop()
        self._routes: dict[bytes, QuicLink] = {}
        #: Every connection not yet terminated (both roles, detached too).
        self.links: set[QuicLink] = set()
        self._dirty: dict[QuicLink, None] = {}
        self._flush_handle: asyncio.Handle | None = None
        self._transport: asyncio.DatagramTransport | None = None
        #: The socket layer's batched send (GSO), if it has one.
        self._sendto_many: Callable[[list[bytes], SockAddr], None] | None = None
        #: Datagrams in and out (published to ``stats.extra`` per iteration).
        self._received = 0
        self._sent = 0
        self.ipv6 = False

    # -- socket ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (CPython's datagram transport does not subclass DatagramTransport
        # in every version; it has its methods.)
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._sendto_many = getattr(transport, "sendto_many", None)
        sockname = transport.get_extra_info("sockname")
        self.ipv6 = sockname is not None and len(sockname) == 4

    def local_port(self) -> int:
        """The UDP port bound (0 once closed)."""
        if self._transport is None:
            return 0
        return int(self._transport.get_extra_info("sockname")[1])

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable, ...) on an unconnected socket: QUIC's
        # own timers notice the loss; count only.
        count(self._stats, "socket_errors")

    def datagram_received(self, data: bytes, addr: SockAddr) -> None:
        self.datagrams_received([data], addr)

    def datagrams_received(self, datagrams: list[bytes], addr: SockAddr) -> None:
        """Datagrams from one source (a batch read): each routed by its
        destination connection ID, runs for one connection fed together."""
        stats = self._stats
        drop = self._owner.drop_filter
        if drop is not None:
            # A test hook: asked once per datagram, as if read one by one.
            address = address_text(addr)
            kept = [data for data in datagrams if not drop(address)]
            if len(kept) < len(datagrams):
                count(stats, "filtered", len(datagrams) - len(kept))
            datagrams = kept
        self._received += len(datagrams)
        routes, now = self._routes, self._loop.time()
        run: list[bytes] = []
        run_link: QuicLink | None = None
        for data in datagrams:
            try:
                header = pull_quic_header(data, 0, CID_LENGTH)
            except Exception:  # ValueError, or qh3's BufferReadError (not a ValueError)
                stats.malformed += 1
                continue
            link = routes.get(header[3])
            if link is not run_link or link is None:
                if run_link is not None:
                    self._feed(run_link, run, addr, now)
                run, run_link = [], link
                if link is None:
                    self._accept(data, header, addr)
                    continue
            run.append(data)
        if run_link is not None:
            self._feed(run_link, run, addr, now)

    def _feed(self, link: QuicLink, datagrams: list[bytes], addr: SockAddr, now: float) -> None:
        """Hand ``datagrams`` to ``link``'s QUIC and dispatch the events at
        once (what arrived goes up without delay); the answer waits for the
        end of the loop iteration (:meth:`mark`), to cover every datagram
        read meanwhile."""
        if link.terminated:
            return
        link.heard = True
        try:
            if len(datagrams) == 1:
                link.quic.receive_datagram(datagrams[0], addr, now)
            else:
                receive_datagrams(link.quic, datagrams, addr, now)
        except Exception:  # qh3 raises on internal errors; never let a peer crash us
            log.debug("QUIC datagram from %s refused", link.address, exc_info=True)
            self._stats.malformed += 1
        if link.is_client and not link.established:
            # A server at its limit refused us (quic_refusal.py).  qh3 would
            # report it only when its draining period ends (3 PTO, ~2 s);
            # the refusal is final, so act on it now.
            closed = getattr(link.quic, "_close_event", None)
            if closed is not None and getattr(closed, "error_code", None) == CONNECTION_REFUSED:
                self.forget(link)
                self._owner.link_event(link, closed)
                return
        try:
            self.drain(link)
        finally:
            self.mark(link)

    def _accept(self, data: bytes, header: tuple[Any, ...], addr: SockAddr) -> None:
        stats = self._stats
        version, packet_type, dcid = header[0], header[1], header[3]
        if (
            packet_type != QuicPacketType.INITIAL
            or len(data) < MIN_INITIAL_SIZE
            or version not in self._server_configuration.supported_versions
        ):
            stats.malformed += 1  # garbage, or a stale packet of a closed connection
            return
        if len(self.links) >= self.max_connections:
            count(stats, "refused")
            # Say so (CONNECTION_REFUSED in an Initial: no TLS, no state),
            # so the client knows at once instead of timing out.
            answer = refusal(
                version, dcid, header[4], f"at its limit of {self.max_connections} connections"
            )
            if answer is not None and self._transport is not None:
                self._transport.sendto(answer, addr)
                self._sent += 1
            return
        if self._transport is None:
            return
        quic = QuicConnection(
            configuration=self._server_configuration,
            original_destination_connection_id=dcid,
        )
        link = QuicLink(quic, address_text(addr), is_client=False)
        try:
            quic.receive_datagram(data, addr, self._loop.time())
        except Exception:
            log.debug("QUIC Initial from %s refused", link.address, exc_info=True)
            stats.malformed += 1
            return
        self._adopt(link, dcid)
        # A real Initial is answered at once (at least an ACK); one that
        # does not decrypt is answered with nothing: forget it right away.
        if self.transmit(link) == 0:
            stats.malformed += 1
            self.forget(link)
            return
        self._owner.link_accepted(link)
        try:
            self.drain(link)
        finally:
            self.mark(link)

    def connect(self, sockaddr: SockAddr, address: str) -> QuicLink:
        """Start a client connection to ``sockaddr`` from this socket."""
        if self.ipv6:  # as the socket reports sources: 4-tuples, IPv4 mapped
            host = sockaddr[0] if ":" in sockaddr[0] else f"::ffff:{sockaddr[0]}"
            sockaddr = (host, sockaddr[1], 0, 0)
        quic = QuicConnection(configuration=self._client_configuration)
        link = QuicLink(quic, address, is_client=True)
        self._adopt(link, None)
        quic.connect(sockaddr, self._loop.time())
        self.transmit(link)
        return link

    def _adopt(self, link: QuicLink, original_dcid: bytes | None) -> None:
        self.links.add(link)
        cids = (
            [link.quic.host_cid] if original_dcid is None else [link.quic.host_cid, original_dcid]
        )
        for cid in cids:
            link.cids.add(cid)
            self._routes[cid] = link

    def forget(self, link: QuicLink) -> None:
        """Stop routing to ``link`` and cancel its timer (it is gone)."""
        link.terminated = True
        self.links.discard(link)
        self._dirty.pop(link, None)
        for cid in link.cids:
            if self._routes.get(cid) is link:
                del self._routes[cid]
        link.cids.clear()
        if link.timer is not None:
            link.timer.cancel()
            link.timer = None
        if link.deadline is not None:
            link.deadline.cancel()
            link.deadline = None

    # -- events, timers, sending --------------------------------------------

    def drain(self, link: QuicLink) -> None:
        """Dispatch every pending QUIC event of ``link``."""
        quic, owner = link.quic, self._owner
        while not link.terminated:
            event = quic.next_event()
            if event is None:
                return
            if isinstance(event, events.ConnectionIdIssued):
                link.cids.add(event.connection_id)
                self._routes[event.connection_id] = link
            elif isinstance(event, events.ConnectionIdRetired):
                link.cids.discard(event.connection_id)
                if self._routes.get(event.connection_id) is link:
                    del self._routes[event.connection_id]
            elif isinstance(event, events.ConnectionTerminated):
                self.forget(link)
                owner.link_event(link, event)
            else:
                owner.link_event(link, event)

    def transmit(self, link: QuicLink) -> int:
        """Send what ``link`` has to send, re-arm its timer; the number of
        datagrams sent."""
        transport = self._transport
        if link.terminated or transport is None:
            return 0
        quic = link.quic
        try:
            datagrams = quic.datagrams_to_send(self._loop.time())
        except Exception:
            log.debug("QUIC connection to %s failed", link.address, exc_info=True)
            datagrams = []
        if datagrams:
            drop = self._owner.drop_filter
            if drop is not None and drop(link.address):
                count(self._stats, "filtered", len(datagrams))
            else:
                self._send(transport, datagrams)
                self._sent += len(datagrams)
        if link.stream_id is not None:
            link.backlog = quic.get_send_buffer_size(link.stream_id)
        timer_at = quic.get_timer()
        if timer_at != link.timer_at:
            if link.timer is not None:
                link.timer.cancel()
                link.timer = None
            if timer_at is not None:
                link.timer = self._loop.call_at(timer_at, self._on_timer, link)
            link.timer_at = timer_at
        return len(datagrams)

    def _send(
        self, transport: asyncio.DatagramTransport, datagrams: list[tuple[bytes, Any]]
    ) -> None:
        sendto_many = self._sendto_many
        if sendto_many is None:
            sendto = transport.sendto
            for data, addr in datagrams:
                sendto(data, addr)
            return
        # One call per run of datagrams to one address (a connection's are
        # all to one, unless its path changes): GSO where the kernel has it,
        # the socket layer queueing what the socket cannot take now.
        run: list[bytes] = []
        run_to: Any = None
        for data, addr in datagrams:
            if run and addr != run_to:
                sendto_many(run, run_to)
                run = []
            run.append(data)
            run_to = addr
        sendto_many(run, run_to)

    def _publish(self) -> None:
        extra = self._stats.extra
        extra["datagrams_received"] = self._received
        extra["datagrams_sent"] = self._sent

    def _on_timer(self, link: QuicLink) -> None:
        link.timer = None
        now = max(link.timer_at or 0.0, self._loop.time())
        link.timer_at = None
        try:
            link.quic.handle_timer(now)
        except Exception:
            log.debug("QUIC timer of %s failed", link.address, exc_info=True)
        try:
            self.drain(link)
        finally:
            self.transmit(link)
            self._publish()

    def mark(self, link: QuicLink) -> None:
        """Serve ``link`` once this loop iteration is over: dispatch its
        events, hand its queued frames to QUIC (every packet queued meanwhile
        in one write) and transmit -- once, however many datagrams arrived
        and packets were queued meanwhile."""
        self._dirty[link] = None
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, {}
        owner, links = self._owner, iter(dirty)
        try:
            for link in links:
                if link.terminated:
                    continue
                try:
                    self.drain(link)
                    owner.write_queued(link)
                finally:
                    self.transmit(link)
        finally:
            for link in links:  # (left unserved by an exception: next time)
                self.mark(link)
            self._publish()

    def close(self, reason: str = "") -> None:
        """Close every connection (CONNECTION_CLOSE sent) and the socket."""
        for link in list(self.links):
            try:
                link.quic.close(reason_phrase=reason)
            except Exception:
                log.debug("closing QUIC connection to %s failed", link.address, exc_info=True)
            self.transmit(link)
            self.forget(link)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._transport is not None:
            # (What the socket layer still queues goes out before it closes.)
            self._transport.close()
            self._transport = None
