"""One μTCP connection, either direction: HELLO, framing, coalesced writes.

Split from :mod:`.tcp` along its seam: this module is what happens on *one*
TCP connection (the peer's HELLO read byte by byte, frames decoded and
delivered, writes coalesced once per event-loop iteration, REFUSE sent or
read, bytes of incomplete frames accounted), while :mod:`.tcp` decides which
connection an address uses (claims, confirmation, outbound-only addresses,
connect attempts, path edges).  The connection calls back into its
:class:`~l2session.transports.tcp.TcpTransport` (``owner``) for everything
that concerns more than itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from typing import Any, Final, Protocol, cast

from l2session.errors import MalformedMessage
from l2session.transports.address import format_address
from l2session.transports.base import REFUSED_PREFIX, TransportStats
from l2session.transports.framing import (
    HEADER,
    HELLO_SIZE,
    REFUSE_CONNECTIONS,
    REFUSE_REASONS,
    REFUSE_UNIDENTIFIED,
    FrameDecoder,
    decode_hello,
    encode_frames,
    encode_hello,
    encode_refuse,
)


class ConnectionOwner(Protocol):
    """What a connection needs of its transport (``TcpTransport``): its
    limits and counters, its loop, and the calls that concern more than one
    connection.  A port, so that this module does not import the transport
    that imports it."""

    stats: TransportStats
    max_unidentified: int
    max_connections: int
    max_buffered_bytes: int
    max_queue_bytes: int
    hello_timeout: float
    _loop: asyncio.AbstractEventLoop
    _all: set[Connection]
    _refusing: set[Connection]
    _closed: bool
    _unidentified: int
    _buffered: int
    _delivering: Connection | None

    @property
    def hello_port(self) -> int: ...

    def _register(self, conn: Connection) -> None: ...

    def _lost(self, conn: Connection) -> None: ...

    def _deliver(self, frame: bytes, address: str) -> None: ...

    def _mark_outbound_only(self, address: str) -> None: ...


_HELLO_FRAME: Final = HEADER + HELLO_SIZE
_HELLO_PREFIX: Final = encode_hello(0)[: HEADER + 4]  # the length and the magic
_REFUSE_PREFIX: Final = encode_refuse(0)[: HEADER + 4]
#: Seconds a closing connection may take before it is reset.
CLOSE_GRACE: Final = 1.0


class Attempt:
    """One outbound connect in flight and the packets waiting for it."""

    __slots__ = ("address", "cancelled", "nbytes", "queue")

    def __init__(self, address: str) -> None:
        self.address = address
        self.cancelled = False
        self.queue: list[bytes] = []
        self.nbytes = 0


class Connection(asyncio.Protocol):
    """One TCP connection, either direction."""

    def __init__(
        self, owner: ConnectionOwner, address: str | None, attempt: Attempt | None
    ) -> None:
        self.owner = owner
        self.address = address  # canonical peer address; inbound: None until HELLO
        self.attempt = attempt
        #: May carry our packets: we dialled it, or the core authenticated
        #: a packet that arrived on it (see the module docstring).
        self.confirmed = address is not None
        #: An inbound connection whose HELLO named a listening port (a
        #: claim another process on the peer's host could also make).
        self.claimed = False
        #: Loop time this connection last delivered a packet (0: never):
        #: an unconfirmed claim that did is where opening packets are
        #: answered (:func:`answerable`).
        self.heard = 0.0
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
        self.hello_timer = self.owner._loop.call_later(CLOSE_GRACE, t.abort)

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
        if frames and self.claimed and not self.confirmed:
            self.heard = owner._loop.time()
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
            count(owner.stats, "buffer_full")
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
        try:
            t.write(buffer)
        except (OSError, RuntimeError) as exc:
            # uvloop raises RuntimeError for a transport whose socket closed
            # before is_closing() turned true; the bytes are lost with the
            # connection either way, and the core resends them on a path.
            self.abort(f"write failed: {exc}")
            return
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
            address = peer_address(self.transport, port)
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
        count(self.owner.stats, "refused_by_peer")
        why = REFUSE_REASONS.get(code, f"reason {code}")
        self.abort(f"{REFUSED_PREFIX} ({why})")
        return b""

    def _hello_expired(self) -> None:
        self.hello_timer = None
        if self.decoder is None and self.transport is not None and not self.transport.is_closing():
            self.owner.stats.malformed += 1
            self.abort(f"no HELLO within {self.owner.hello_timeout:g} s")


def usable(conns: list[Connection]) -> Connection | None:
    """The newest connection that may carry our packets: confirmed, or an
    inbound one keyed by its own ephemeral port (HELLO 0, not a claim)."""
    for conn in reversed(conns):
        if conn.confirmed or not conn.claimed:
            return conn
    return None


def answerable(conns: list[Connection]) -> Connection | None:
    """The unconfirmed claim that delivered a packet most recently: where
    an answer to an opening packet goes when no connection is usable."""
    best: Connection | None = None
    for conn in conns:
        if (
            conn.claimed
            and not conn.confirmed
            and conn.heard
            and (best is None or conn.heard >= best.heard)
        ):
            best = conn
    return best


def count(stats: TransportStats, key: str) -> None:
    stats.extra[key] = stats.extra.get(key, 0) + 1


def peer_address(transport: asyncio.BaseTransport | None, port: int) -> str | None:
    peer: Any = transport.get_extra_info("peername") if transport is not None else None
    if not peer:
        return None
    ip = ipaddress.ip_address(peer[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return format_address(str(ip), port or int(peer[1]))
