"""μTCP: session packets over length-framed TCP, the path used when QUIC fails.

Why it exists: some networks drop or throttle UDP, so QUIC cannot get
through; TCP nearly always can.  The session core neither knows nor cares:
packets are whole, authenticated and resent by the core, so this transport
only has to move bytes fast and survive hostile peers.  Hence:

* **Framing** (:mod:`.framing`): a 4-byte length and the packet.  Each side's
  first frame is a HELLO with its listening port (0: not listening), so the
  acceptor keys a connection by ``peer_ip:listen_port`` -- the address the
  connector is reached at again -- not by its ephemeral port.  A HELLO
  with port 0 (the peer does not listen, or is behind a NAT and says so)
  keys the connection by its ``ip:ephemeral_port``; such an address is
  *outbound-only*: it is routed by its live connection and never dialled
  (:meth:`TcpTransport.dialable`).  The HELLO is
  checked byte by byte as it arrives; anything else first, an oversized
  header, or no HELLO within ``hello_timeout`` aborts the connection and
  counts ``stats.malformed``.
* **Speed**: asyncio Protocols (no streams), TCP_NODELAY, and write
  coalescing: ``send`` appends to the connection's list and one callback per
  event-loop iteration writes everything queued in one ``transport.write``.
* **Datagram semantics**: queues are bounded (bytes per connection, packets
  while connecting); past the bound a packet is dropped and counted, never
  blocked on: the session core resends.  The bound holds while the kernel
  pushes back (``pause_writing``).
* **Edges**: ``path_up`` when the first connection to an address is up,
  ``path_down`` when the last is lost or a connect fails.  Simultaneous
  connects in both directions are both kept; sends use the newest
  *confirmed* one.
* **Claims are not routes.**  An inbound connection's address is a claim
  (the HELLO's port): any process sharing the peer's IP -- another local
  user, a container, a host behind the same NAT -- can connect and claim
  the peer's port.  So an inbound connection carries our packets only
  after the session core authenticated a packet that arrived on it
  (:meth:`TcpTransport.confirm`, called by the runtime during
  ``packet_received``); connections we dialled ourselves are confirmed by
  construction.  With no confirmed connection, ``send`` dials the claimed
  address itself (where only the genuine listener answers).  An inbound
  connection that said HELLO(0) (not listening) is keyed by its own
  ephemeral port, which no one else can claim, and is used as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from typing import Any, Final, cast

from l2session.errors import ConfigError, MalformedMessage, MessageTooLarge, TransportFailed
from l2session.transports.address import InvalidAddress, format_address, parse_address
from l2session.transports.base import REFUSED_PREFIX, TransportListener, TransportStats
from l2session.transports.framing import (
    HEADER,
    HELLO_SIZE,
    MAX_FRAME,
    REFUSE_CONNECTIONS,
    REFUSE_REASONS,
    REFUSE_UNIDENTIFIED,
    FrameDecoder,
    decode_hello,
    encode_frames,
    encode_hello,
    encode_refuse,
)

PATH: Final = "tcp"
#: Bytes queued per connection (or per connect in flight) before drops.
MAX_QUEUE_BYTES: Final = 16 << 20
#: Packets queued while a connect is in flight before drops.
MAX_PENDING_PACKETS: Final = 1024
#: Seconds a connection may stay without the peer's HELLO.
HELLO_TIMEOUT: Final = 10.0
#: Inbound connections without a HELLO yet; more are refused at once.
MAX_UNIDENTIFIED: Final = 256
#: Connections open at once (both directions); new inbound ones beyond it
#: are refused at once.  A HELLO proves nothing, so without this bound a
#: peer could hold any number of connections, each buffering a frame.
MAX_CONNECTIONS: Final = 1024
#: Bytes of incomplete frames held across all connections; the connection
#: whose data would exceed it is reset.  Honest frames complete within a
#: round trip, so the total at any moment is small.
MAX_BUFFERED_BYTES: Final = 64 << 20
#: Seconds a frame may take to arrive once its first byte did (a slow-drip
#: sender holding a buffer open is reset).
FRAME_TIMEOUT: Final = 30.0
#: Outbound-only addresses remembered (HELLO port 0; oldest forgotten first).
MAX_OUTBOUND_ONLY: Final = 4096
#: listen(2) backlog: connections the kernel completes and queues until
#: the loop accepts them (asyncio's default, 100, overflows under a crowd
#: while the loop runs handshakes; Linux clamps to net.core.somaxconn).
LISTEN_BACKLOG: Final = 4096

_HELLO_FRAME: Final = HEADER + HELLO_SIZE
_HELLO_PREFIX: Final = encode_hello(0)[: HEADER + 4]  # the length and the magic
_REFUSE_PREFIX: Final = encode_refuse(0)[: HEADER + 4]
_CLOSE_GRACE: Final = 1.0

log = logging.getLogger(__name__)


class _Attempt:
    """One outbound connect in flight and the packets waiting for it."""

    __slots__ = ("address", "cancelled", "nbytes", "queue")

    def __init__(self, address: str) -> None:
        self.address = address
        self.cancelled = False
        self.queue: list[bytes] = []
        self.nbytes = 0


class _Connection(asyncio.Protocol):
    """One TCP connection, either direction."""

    def __init__(self, owner: TcpTransport, address: str | None, attempt: _Attempt | None) -> None:
        self.owner = owner
        self.address = address  # canonical peer address; inbound: None until HELLO
        self.attempt = attempt
        #: May carry our packets: we dialled it, or the core authenticated
        #: a packet that arrived on it (see the module docstring).
        self.confirmed = address is not None
        #: An inbound connection whose HELLO named a listening port (a
        #: claim another process on the peer's host could also make).
        self.claimed = False
        self.transport: asyncio.Transport | None = None
        self.head = b""  # the peer's HELLO, as it arrives
        self.decoder: FrameDecoder | None = None  # set once the HELLO is complete
        self.registered = False
        self.unidentified = False
        self.silent = False
        self.refusing = False
        self.paused = False
        self.scheduled = False
        self.queue: list[bytes] = []
        self.nbytes = 0
        self.reason: str | None = None
        self.hello_timer: asyncio.TimerHandle | None = None
        #: Bytes of an incomplete frame held, and since when (loop time).
        self.partial = 0
        self.partial_since = 0.0
        self.closed: asyncio.Future[None] = owner._loop.create_future()

    # -- asyncio callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)
        owner = self.owner
        owner._all.add(self)
        sock = t.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if owner._closed or (self.attempt is not None and self.attempt.cancelled):
            self.abort(None)
            return
        if self.address is None:
            owner.stats.accepted += 1
            if owner._unidentified >= owner.max_unidentified or len(owner._all) > (
                owner.max_connections
            ):
                owner.stats.extra["refused"] = owner.stats.extra.get("refused", 0) + 1
                # Say why instead of a reset: the peer then knows a node is
                # here, at a limit (framing.py REFUSE), not unreachable.
                reason = (
                    REFUSE_CONNECTIONS
                    if len(owner._all) > owner.max_connections
                    else REFUSE_UNIDENTIFIED
                )
                self._refuse(reason)
                return
            self.unidentified = True
            owner._unidentified += 1
        else:
            owner.stats.connects += 1
        hello = encode_hello(owner.hello_port)
        t.write(hello)
        owner.stats.bytes_sent += len(hello)
        self.hello_timer = owner._loop.call_later(owner.hello_timeout, self._hello_expired)
        if self.address is not None:
            owner._register(self)

    def _refuse(self, reason: int) -> None:
        """Send REFUSE and half-close, then discard what the peer sends
        until it closes (closing with unread bytes would make the kernel
        reset the connection, and a reset can destroy the REFUSE before the
        peer reads it); reset after the close grace at the latest."""
        t = self.transport
        assert t is not None
        self.silent = self.refusing = True
        owner = self.owner
        owner._all.discard(self)  # it no longer counts against the limits
        if len(owner._refusing) >= owner.max_unidentified:
            t.abort()  # a flood of them: no grace for the excess
            return
        owner._refusing.add(self)
        try:
            t.write(encode_refuse(reason))
            if t.can_write_eof():
                t.write_eof()
        except (OSError, RuntimeError):
            t.abort()
            return
        self.hello_timer = self.owner._loop.call_later(_CLOSE_GRACE, t.abort)

    def data_received(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing() or self.refusing:
            return
        owner = self.owner
        owner.stats.bytes_received += len(data)
        try:
            if self.decoder is None:
                data = self._read_hello(data)
                if not data or t.is_closing():
                    return
            decoder = self.decoder
            assert decoder is not None
            frames = decoder.feed(data)
            if decoder.buffered != self.partial:
                self._hold(decoder.buffered)
        except MalformedMessage as exc:
            owner.stats.malformed += 1
            self.abort(f"malformed: {exc}")
            return
        owner.stats.packets_received += len(frames)
        address = self.address
        assert address is not None
        deliver = owner._deliver
        owner._delivering = self
        try:
            for frame in frames:
                deliver(frame, address)
                if t.is_closing():
                    break
        finally:
            owner._delivering = None

    def _hold(self, buffered: int) -> None:
        """Account for the incomplete frame now ``buffered`` bytes long."""
        owner = self.owner
        if buffered and not self.partial:
            self.partial_since = owner._loop.time()
        owner._buffered += buffered - self.partial
        self.partial = buffered
        if owner._buffered > owner.max_buffered_bytes:
            _count(owner.stats, "buffer_full")
            raise MalformedMessage(
                f"incomplete frames would hold more than {owner.max_buffered_bytes} bytes"
            )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reason is None:
            self.reason = "closed by peer" if exc is None else f"connection lost: {exc}"
        if self.hello_timer is not None:
            self.hello_timer.cancel()
            self.hello_timer = None
        self.owner._lost(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.queue:
            self.schedule()

    # -- sending ----------------------------------------------------------------

    def enqueue(self, data: bytes) -> None:
        if self.nbytes + len(data) > self.owner.max_queue_bytes:
            self.owner.stats.dropped += 1
            return
        self.queue.append(data)
        self.nbytes += len(data)
        if not self.scheduled and not self.paused:
            self.schedule()

    def schedule(self) -> None:
        """Flush once, at the end of this event-loop iteration."""
        if not self.scheduled:
            self.scheduled = True
            self.owner._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued in one ``transport.write``."""
        self.scheduled = False
        t = self.transport
        if self.paused or not self.queue or t is None or t.is_closing():
            return
        frames, self.queue, self.nbytes = self.queue, [], 0
        buffer = encode_frames(frames)
        t.write(buffer)
        stats = self.owner.stats
        stats.packets_sent += len(frames)
        stats.bytes_sent += len(buffer)

    def close(self) -> None:
        """Close quietly (no ``path_down``), letting written bytes drain."""
        self.silent = True
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str | None) -> None:
        """Reset the connection; ``reason`` None: quietly."""
        if reason is None:
            self.silent = True
        else:
            self.reason = reason
        if self.transport is not None:
            self.transport.abort()

    # -- the peer's HELLO ---------------------------------------------------------

    def _read_hello(self, data: bytes) -> bytes:
        """Consume the HELLO from ``data``; return the bytes after it."""
        head = self.head + data
        n = min(len(head), len(_HELLO_PREFIX))
        if head[:n] != _HELLO_PREFIX[:n]:
            if self.attempt is not None and head[:n] == _REFUSE_PREFIX[:n]:
                return self._read_refuse(head)
            raise MalformedMessage("the first frame of a connection must be an L2S1 HELLO")
        if len(head) < _HELLO_FRAME:
            self.head = head
            return b""
        port = decode_hello(head[HEADER:_HELLO_FRAME])
        self.head = b""
        if self.hello_timer is not None:
            self.hello_timer.cancel()
            self.hello_timer = None
        self.decoder = FrameDecoder()
        if self.address is None:  # inbound: key it by where the peer listens
            address = _peer_address(self.transport, port)
            if address is None:
                raise MalformedMessage("the peer's address is unknown")
            self.address = address
            self.claimed = port != 0
            self.unidentified = False
            self.owner._unidentified -= 1
            if port == 0:
                self.owner._mark_outbound_only(address)
            self.owner._register(self)
        return head[_HELLO_FRAME:]

    def _read_refuse(self, head: bytes) -> bytes:
        """The node we dialled refused us (at a limit): report it as such
        (``path_down`` with a reason starting "refused by the node")."""
        if len(head) < _HELLO_FRAME:
            self.head = head
            return b""
        code = int.from_bytes(head[HEADER + 4 : _HELLO_FRAME], "big")
        _count(self.owner.stats, "refused_by_peer")
        why = REFUSE_REASONS.get(code, f"reason {code}")
        self.abort(f"{REFUSED_PREFIX} ({why})")
        return b""

    def _hello_expired(self) -> None:
        self.hello_timer = None
        if self.decoder is None and self.transport is not None and not self.transport.is_closing():
            self.owner.stats.malformed += 1
            self.abort(f"no HELLO within {self.owner.hello_timeout:g} s")


def _usable(conns: list[_Connection]) -> _Connection | None:
    """The newest connection that may carry our packets: confirmed, or an
    inbound one keyed by its own ephemeral port (HELLO 0, not a claim)."""
    for conn in reversed(conns):
        if conn.confirmed or not conn.claimed:
            return conn
    return None


def _count(stats: TransportStats, key: str) -> None:
    stats.extra[key] = stats.extra.get(key, 0) + 1


def _peer_address(transport: asyncio.BaseTransport | None, port: int) -> str | None:
    peer: Any = transport.get_extra_info("peername") if transport is not None else None
    if not peer:
        return None
    ip = ipaddress.ip_address(peer[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return format_address(str(ip), port or int(peer[1]))


class TcpTransport:
    """The μTCP path (see the module docstring); implements ``Transport``.

    ``listen=False`` makes a client-only transport: ``start`` binds nothing
    and returns 0, and peers key it by its ephemeral ``ip:port``.
    ``advertise=False`` listens but says port 0 in its HELLO all the same
    (a node behind a NAT: its listening port is not reachable from
    outside, so peers must not dial it).
    """

    def __init__(
        self,
        *,
        listen: bool = True,
        advertise: bool = True,
        connect_timeout: float = 5.0,
        retry_interval: float = 0.5,
        hello_timeout: float = HELLO_TIMEOUT,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
        max_pending_packets: int = MAX_PENDING_PACKETS,
        max_unidentified: int = MAX_UNIDENTIFIED,
        max_connections: int = MAX_CONNECTIONS,
        max_buffered_bytes: int = MAX_BUFFERED_BYTES,
        frame_timeout: float = FRAME_TIMEOUT,
        listen_backlog: int = LISTEN_BACKLOG,
    ) -> None:
        positive = {"connect_timeout": connect_timeout, "hello_timeout": hello_timeout}
        positive.update(max_queue_bytes=max_queue_bytes, max_unidentified=max_unidentified)
        positive.update(max_connections=max_connections, max_buffered_bytes=max_buffered_bytes)
        positive.update(frame_timeout=frame_timeout)
        positive.update(max_pending_packets=max_pending_packets, listen_backlog=listen_backlog)
        for field, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{field} must be positive, got {value!r}")
        if not retry_interval >= 0:
            raise ConfigError(f"retry_interval must be 0 or more, got {retry_interval!r}")
        self.name = PATH
        self.stats = TransportStats()
        self.listen = listen
        self.advertise = advertise
        self.connect_timeout = connect_timeout
        self.retry_interval = retry_interval
        self.hello_timeout = hello_timeout
        self.max_queue_bytes = max_queue_bytes
        self.max_pending_packets = max_pending_packets
        self.max_unidentified = max_unidentified
        self.max_connections = max_connections
        self.max_buffered_bytes = max_buffered_bytes
        self.frame_timeout = frame_timeout
        self.listen_backlog = listen_backlog
        #: Bytes of incomplete frames held by all connections.
        self._buffered = 0
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop
        self._listener: TransportListener | None = None
        self._server: asyncio.Server | None = None
        self._port = 0
        self._conns: dict[str, list[_Connection]] = {}  # registered, oldest first
        self._attempts: dict[str, _Attempt] = {}
        self._failed_at: dict[str, float] = {}
        #: Addresses whose peer said HELLO port 0: never dialled.
        self._outbound_only: dict[str, None] = {}
        self._all: set[_Connection] = set()
        #: Connections refused, waiting for their peer to read the REFUSE.
        self._refusing: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unidentified = 0
        self._closed = False
        #: The connection whose packets are being delivered (for confirm).
        self._delivering: _Connection | None = None
        #: The address outbound connections are made from (None: any).
        self._source: str | None = None

    @property
    def local_port(self) -> int:
        """The TCP port listened on (0: not listening)."""
        return self._port

    @property
    def hello_port(self) -> int:
        """The port our HELLO names (0: peers must not dial us)."""
        return self._port if self.advertise else 0

    def dialable(self, address: str) -> bool:
        """False for an address whose peer said HELLO port 0: its port is
        ephemeral (or a NAT's), nobody listens there."""
        return address not in self._outbound_only

    def _mark_outbound_only(self, address: str) -> None:
        self._outbound_only.pop(address, None)
        self._outbound_only[address] = None
        while len(self._outbound_only) > MAX_OUTBOUND_ONLY:
            del self._outbound_only[next(iter(self._outbound_only))]

    async def start(self, listener: TransportListener, host: str, port: int) -> int:
        if self._listener is not None or self._closed:
            raise TransportFailed("this μTCP transport was already started")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidAddress(f"{host!r} is not an IP address to listen on") from None
        if not 0 <= port <= 65535:
            raise InvalidAddress(f"port {port!r} is not 0-65535")
        self._loop = asyncio.get_running_loop()
        ip = ipaddress.ip_address(host)
        # Dial from the address we listen on (not the wildcard): the peer
        # keys us, and admission-controls us, by the address it sees, and
        # two nodes on one machine with their own addresses must not look
        # like one host (core/management/admission.py keys by host).
        self._source = None if ip.is_unspecified or not self.listen else str(ip)
        if self.listen:
            try:
                self._server = await self._loop.create_server(
                    lambda: _Connection(self, None, None),
                    host,
                    port,
                    backlog=self.listen_backlog,
                )
            except OSError as exc:
                where = format_address(host, port)
                raise TransportFailed(
                    f"cannot listen for μTCP on {where}: {exc.strerror or exc}"
                ) from exc
            self._port = int(self._server.sockets[0].getsockname()[1])
        self._listener = listener
        self._schedule_sweep()
        return self._port

    def send(self, address: str, data: bytes) -> None:
        if len(data) > MAX_FRAME:
            raise MessageTooLarge(f"a packet of {len(data)} bytes exceeds {MAX_FRAME}")
        conns = self._conns.get(address)
        if conns:
            conn = _usable(conns)
            if conn is not None:
                conn.enqueue(data)
                return
            # Only claims: dial the address itself (below).
        host, port = parse_address(address)
        canonical = format_address(host, port)
        if canonical != address:
            self.send(canonical, data)
            return
        if self._listener is None:
            raise TransportFailed("the μTCP transport is not started")
        if address in self._outbound_only:
            self.stats.dropped += 1  # its connection is gone: never dial an ephemeral port
            _count(self.stats, "not_dialled")
            return
        attempt = self._attempts.get(address)
        if attempt is None:
            failed = self._failed_at.get(address)
            if self._closed or (
                failed is not None and self._loop.time() - failed < self.retry_interval
            ):
                self.stats.dropped += 1
                return
            attempt = self._start_attempt(address, host, port)
        if (
            len(attempt.queue) >= self.max_pending_packets
            or attempt.nbytes + len(data) > self.max_queue_bytes
        ):
            self.stats.dropped += 1
            return
        attempt.queue.append(data)
        attempt.nbytes += len(data)

    def is_connected(self, address: str) -> bool:
        """Whether a connection keyed by ``address`` is open (confirmed or
        not: a claim still delivers what arrives on it)."""
        return bool(self._conns.get(address))

    def confirm(self, address: str) -> None:
        """The packet being delivered from ``address`` authenticated: its
        connection may carry our packets from now on (the newest confirmed
        one does)."""
        conn = self._delivering
        if conn is None or conn.address != address or conn.confirmed:
            return
        conn.confirmed = True
        _count(self.stats, "confirmed")
        conns = self._conns.get(address)
        if conns is not None and conn in conns:
            conns.remove(conn)  # now the newest: sends use it
            conns.append(conn)

    def progressed(self, address: str) -> bool:
        """A TCP connection has progressed once it is connected."""
        return bool(self._conns.get(address))

    def probe(self, address: str) -> None:
        """Connect to ``address`` if not connected or connecting (ignoring the
        retry interval: the caller paces probes); the outcome is reported as
        ``path_up`` or ``path_down``."""
        host, port = parse_address(address)
        address = format_address(host, port)
        if self._listener is None:
            raise TransportFailed("the μTCP transport is not started")
        if address in self._outbound_only:
            return
        conns = self._conns.get(address)
        usable = conns is not None and _usable(conns) is not None
        if not self._closed and not usable and address not in self._attempts:
            self._start_attempt(address, host, port)

    def disconnect(self, address: str) -> None:
        for conn in self._conns.pop(address, ()):
            conn.close()
        attempt = self._attempts.pop(address, None)
        if attempt is not None:
            attempt.cancelled = True  # the connect's task ends on its own
            self.stats.dropped += len(attempt.queue)
            attempt.queue = []

    async def close(self) -> None:
        """Stop listening, close every connection and wait until they are
        closed (no ``path_down`` reports).  Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._server is not None:
            self._server.close()
        for attempt in self._attempts.values():
            attempt.cancelled = True
            self.stats.dropped += len(attempt.queue)
        self._attempts.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self._refusing):
            conn.abort(None)
        conns = list(self._all)
        for conn in conns:
            conn.close()
        if conns:
            _, late = await asyncio.wait([c.closed for c in conns], timeout=_CLOSE_GRACE)
            if late:
                for conn in conns:
                    conn.abort(None)
                await asyncio.wait(late, timeout=_CLOSE_GRACE)
        if self._server is not None:
            await self._server.wait_closed()

    # -- internals ------------------------------------------------------------

    def _start_attempt(self, address: str, host: str, port: int) -> _Attempt:
        attempt = self._attempts[address] = _Attempt(address)
        task = self._loop.create_task(self._connect(attempt, host, port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return attempt

    async def _connect(self, attempt: _Attempt, host: str, port: int) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                source = self._source
                local = None
                if source is not None and (":" in source) == (":" in host):
                    local = (source, 0)
                await self._loop.create_connection(
                    lambda: _Connection(self, attempt.address, attempt),
                    host,
                    port,
                    local_addr=local,
                )
        except TimeoutError:
            self._connect_failed(attempt, f"connect timed out after {self.connect_timeout:g} s")
        except OSError as exc:
            self._connect_failed(attempt, f"connect failed: {exc.strerror or exc}")
        except Exception as exc:  # a loop refusing the address: still report, never raise
            self._connect_failed(attempt, f"connect failed: {exc!r}")

    def _connect_failed(self, attempt: _Attempt, reason: str) -> None:
        attempt.cancelled = True
        address = attempt.address
        self.stats.connect_failures += 1
        if self._attempts.get(address) is not attempt:
            return  # a connection took its queue over, or it was disconnected
        del self._attempts[address]
        self._failed_at[address] = self._loop.time()
        self.stats.dropped += len(attempt.queue)
        attempt.queue = []
        if not self._conns.get(address) and self._listener is not None:
            self._listener.path_down(address, PATH, reason)

    def _register(self, conn: _Connection) -> None:
        address = conn.address
        assert address is not None
        assert self._listener is not None
        conn.registered = True
        conns = self._conns.setdefault(address, [])
        conns.append(conn)
        self._failed_at.pop(address, None)
        # An unconfirmed claim never takes over what waits for our dial.
        attempt = self._attempts.pop(address, None) if _usable([conn]) else None
        if attempt is not None and attempt.queue:
            conn.queue[:0] = attempt.queue
            conn.nbytes += attempt.nbytes
            attempt.queue, attempt.nbytes = [], 0
            conn.schedule()
        if len(conns) == 1:
            self._listener.path_up(address, PATH)

    def _schedule_sweep(self) -> None:
        self._sweep = self._loop.call_later(max(0.05, self.frame_timeout / 4), self._sweep_slow)

    def _sweep_slow(self) -> None:
        """Reset connections whose incomplete frame is older than
        ``frame_timeout`` (one timer for all, not one per chunk)."""
        self._sweep = None
        if self._closed:
            return
        oldest = self._loop.time() - self.frame_timeout
        for conn in [c for c in self._all if c.partial and c.partial_since < oldest]:
            self.stats.malformed += 1
            _count(self.stats, "slow_frames")
            conn.abort(f"a frame took longer than {self.frame_timeout:g} s to arrive")
        self._schedule_sweep()

    def _lost(self, conn: _Connection) -> None:
        self._all.discard(conn)
        self._refusing.discard(conn)
        self._buffered -= conn.partial
        conn.partial = 0
        if conn.unidentified:
            conn.unidentified = False
            self._unidentified -= 1
        self.stats.dropped += len(conn.queue)
        conn.queue, conn.nbytes = [], 0
        if not conn.registered or conn.address is None:
            return
        conns = self._conns.get(conn.address)
        if conns is None or conn not in conns:
            return  # disconnected
        conns.remove(conn)
        if not conns:
            del self._conns[conn.address]
            if not conn.silent and not self._closed and self._listener is not None:
                self._listener.path_down(conn.address, PATH, conn.reason or "closed")

    def _deliver(self, frame: bytes, address: str) -> None:
        assert self._listener is not None
        try:
            self._listener.packet_received(frame, address, PATH)
        except Exception:
            log.exception("μTCP: the listener failed on a packet from %s", address)


__all__ = [
    "FRAME_TIMEOUT",
    "HELLO_TIMEOUT",
    "MAX_BUFFERED_BYTES",
    "MAX_CONNECTIONS",
    "MAX_PENDING_PACKETS",
    "MAX_QUEUE_BYTES",
    "MAX_UNIDENTIFIED",
    "TcpTransport",
]
