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
* **Opening packets are answered where they came from** (review N1).  A
  peer whose announced port cannot be dialled back (a firewall, a NAT that
  forwards nothing) but which does not say port 0 would otherwise never
  finish a handshake: the answer went only to a dial of its claim.  So the
  answer to an opening packet -- a packet of a type in
  :data:`OPENING_ANSWERS` -- goes on the unconfirmed connection that
  delivered a packet last (not to a dial too: the peer would get it twice);
  nothing else does, so the session is not routed
  there until the peer's next packet on it authenticates (the FINISH, or
  DATA after a RESUME_ACK) and confirms it.  A process that merely claimed
  the port learns an answer to a packet it replayed, which it cannot open.

One connection's own work (HELLO, framing, writes) is in
:mod:`.tcp_connection`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Final

from l2session.crypto.handshake_messages import TYPE_RESPONSE
from l2session.errors import ConfigError, MessageTooLarge, TransportFailed
from l2session.transports.address import InvalidAddress, format_address, parse_address
from l2session.transports.base import TransportListener, TransportStats
from l2session.transports.framing import MAX_FRAME
from l2session.transports.tcp_connection import (
    CLOSE_GRACE,
    Attempt,
    Connection,
    answerable,
    count,
    usable,
)
from l2session.wire.packets import (
    PKT_BUNDLE,
    PKT_HANDSHAKE,
    PKT_PREKEY_GONE,
    PKT_RESUME_ACK,
    PKT_RESUME_REJECT,
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

#: Packet types (byte 1 of the common header, PROTOCOL.md §3.1) that answer
#: an opening packet: RESPONSE (in HANDSHAKE), BUNDLE, PREKEY_GONE,
#: RESUME_ACK, RESUME_REJ.  They may go back on the unconfirmed connection
#: the opening packet came on (review N1); nothing else does.  A HANDSHAKE
#: packet is one only if it carries a RESPONSE (packet byte 19, the PQXDH
#: message type, §3.2): our own INIT or FINISH is not an answer.
OPENING_ANSWERS: Final = frozenset(
    {PKT_HANDSHAKE, PKT_BUNDLE, PKT_PREKEY_GONE, PKT_RESUME_ACK, PKT_RESUME_REJECT}
)
_PQXDH_TYPE_AT: Final = 19


def is_opening_answer(data: bytes) -> bool:
    """Whether ``data`` answers an opening packet (see OPENING_ANSWERS)."""
    if len(data) < 2 or data[1] not in OPENING_ANSWERS:
        return False
    if data[1] == PKT_HANDSHAKE:
        return len(data) > _PQXDH_TYPE_AT and data[_PQXDH_TYPE_AT] == TYPE_RESPONSE
    return True


log = logging.getLogger(__name__)


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
        self._conns: dict[str, list[Connection]] = {}  # registered, oldest first
        self._attempts: dict[str, Attempt] = {}
        self._failed_at: dict[str, float] = {}
        #: Addresses whose peer said HELLO port 0: never dialled.
        self._outbound_only: dict[str, None] = {}
        self._all: set[Connection] = set()
        #: Connections refused, waiting for their peer to read the REFUSE.
        self._refusing: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unidentified = 0
        self._closed = False
        #: The connection whose packets are being delivered (for confirm).
        self._delivering: Connection | None = None
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
                    lambda: Connection(self, None, None),
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
            conn = usable(conns)
            if conn is not None:
                conn.enqueue(data)
                return
            # Only claims: dial the address itself (below) -- but answer an
            # opening packet on the claim it came on instead, or a peer
            # whose announced port cannot be dialled back could never
            # finish a handshake.  The session is not routed there: its
            # other packets wait for a confirmed connection.
            if is_opening_answer(data):
                claim = answerable(conns)
                if claim is not None:
                    count(self.stats, "answered_on_claim")
                    claim.enqueue(data)
                    return  # where the opening packet came from, and only there
        host, port = parse_address(address)
        canonical = format_address(host, port)
        if canonical != address:
            self.send(canonical, data)
            return
        if self._listener is None:
            raise TransportFailed("the μTCP transport is not started")
        if address in self._outbound_only:
            self.stats.dropped += 1  # its connection is gone: never dial an ephemeral port
            count(self.stats, "not_dialled")
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
        count(self.stats, "confirmed")
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
        open_ = conns is not None and usable(conns) is not None
        if not self._closed and not open_ and address not in self._attempts:
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
            _, late = await asyncio.wait([c.closed for c in conns], timeout=CLOSE_GRACE)
            if late:
                for conn in conns:
                    conn.abort(None)
                await asyncio.wait(late, timeout=CLOSE_GRACE)
        if self._server is not None:
            await self._server.wait_closed()

    # -- internals ------------------------------------------------------------

    def _start_attempt(self, address: str, host: str, port: int) -> Attempt:
        attempt = self._attempts[address] = Attempt(address)
        task = self._loop.create_task(self._connect(attempt, host, port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return attempt

    async def _connect(self, attempt: Attempt, host: str, port: int) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                source = self._source
                local = None
                if source is not None and (":" in source) == (":" in host):
                    local = (source, 0)
                await self._loop.create_connection(
                    lambda: Connection(self, attempt.address, attempt),
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

    def _connect_failed(self, attempt: Attempt, reason: str) -> None:
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

    def _register(self, conn: Connection) -> None:
        address = conn.address
        assert address is not None
        assert self._listener is not None
        conn.registered = True
        conns = self._conns.setdefault(address, [])
        conns.append(conn)
        self._failed_at.pop(address, None)
        # An unconfirmed claim never takes over what waits for our dial.
        attempt = self._attempts.pop(address, None) if usable([conn]) else None
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
            count(self.stats, "slow_frames")
            conn.abort(f"a frame took longer than {self.frame_timeout:g} s to arrive")
        self._schedule_sweep()

    def _lost(self, conn: Connection) -> None:
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
