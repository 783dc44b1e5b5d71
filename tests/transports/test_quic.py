"""The QUIC transport over real loopback sockets (127.0.0.1 only).

No timing assertions: every wait is a bounded poll (count and time), and
each test runs under an overall ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from qh3.asyncio.protocol import QuicConnectionProtocol
from qh3.asyncio.server import serve
from qh3.quic import events
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection

from l2session.errors import TransportFailed
from l2session.transports import quic_endpoint, quic_library
from l2session.transports.base import REFUSED_PREFIX, Transport
from l2session.transports.certs import generate_self_signed
from l2session.transports.framing import MAX_FRAME, FrameTooLarge
from l2session.transports.quic import ALPN, QuicTransport
from l2session.transports.quic import make_configurations as quic_make_configurations

T = TypeVar("T")
HOST = "127.0.0.1"


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run one test coroutine, failing on any exception the loop swallowed."""
    errors: list[dict[str, Any]] = []

    async def main() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        return await asyncio.wait_for(coro, timeout)

    result = asyncio.run(main())
    assert errors == []
    return result


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` every 10 ms, at most ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or predicate}")


class Recorder:
    """A TransportListener that remembers everything."""

    def __init__(self) -> None:
        self.packets: list[tuple[bytes, str]] = []
        self.ups: list[str] = []
        self.downs: list[tuple[str, str]] = []

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        assert path == "quic"
        self.packets.append((data, address))

    def path_up(self, address: str, path: str) -> None:
        assert path == "quic"
        self.ups.append(address)

    def path_down(self, address: str, path: str, reason: str) -> None:
        assert path == "quic"
        self.downs.append((address, reason))


async def node(**options: Any) -> tuple[QuicTransport, Recorder, str]:
    transport = QuicTransport(**options)
    recorder = Recorder()
    port = await transport.start(recorder, HOST, 0)
    assert port == transport.port > 0
    return transport, recorder, f"{HOST}:{port}"


async def connected_pair(
    **options: Any,
) -> tuple[QuicTransport, Recorder, str, QuicTransport, Recorder, str]:
    a, ra, a_addr = await node(**options)
    b, rb, b_addr = await node(**options)
    a.send(b_addr, b"hello")
    await until(lambda: len(rb.packets) == 1 and ra.ups == [b_addr], what="connection")
    assert rb.packets == [(b"hello", a_addr)]
    return a, ra, a_addr, b, rb, b_addr


def packet(i: int) -> bytes:
    """Packet ``i``: its number, then a body of varying length (a few large)."""
    size = 60_000 if i % 1000 == 999 else i % 700
    return struct.pack(">I", i) + bytes([i % 251]) * size


async def silent_port() -> int:
    """A UDP port on which nothing answers (bound, never read)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    port: int = sock.getsockname()[1]
    _silent_sockets.append(sock)
    return port


_silent_sockets: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_silent_sockets() -> Any:
    yield
    while _silent_sockets:
        _silent_sockets.pop().close()


async def raw_client(port: int, alpn: str) -> tuple[QuicConnectionProtocol, asyncio.BaseTransport]:
    """A plain qh3 client on its own socket (not an l2session node)."""
    loop = asyncio.get_running_loop()
    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=[alpn], verify_mode=ssl.CERT_NONE
    )
    connection = QuicConnection(configuration=configuration)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: QuicConnectionProtocol(connection), local_addr=(HOST, 0)
    )
    protocol.connect((HOST, port))
    return protocol, transport


# -- the contract ---------------------------------------------------------------


def test_quic_transport_satisfies_the_transport_protocol() -> None:
    transport: Transport = QuicTransport()
    assert transport.name == "quic"


@pytest.fixture(params=["batching", "plain"])
def socket_layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on qh3's batching socket layer (recvmmsg/GRO, GSO) and on
    the plain asyncio datagram endpoint the transport falls back to."""
    layer: str = request.param
    if layer == "plain":
        monkeypatch.setattr(quic_endpoint, "create_batching_endpoint", None)
    elif quic_library.create_batching_endpoint is None:
        pytest.skip("the QUIC library has no batching socket layer")
    return layer


def test_port_0_binds_a_real_port_and_reports_it() -> None:
    async def main() -> None:
        a, ra, a_addr = await node()  # (asserts start() and .port agree, > 0)
        # The port is really bound: nobody else can have it ...
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with pytest.raises(OSError, match="in use"):
                other.bind((HOST, a.port))
        finally:
            other.close()
        with pytest.raises(TransportFailed):
            await QuicTransport().start(Recorder(), HOST, a.port)
        # ... and a peer dialling the reported address reaches it.
        b, _, b_addr = await node()
        b.send(a_addr, b"at the reported port")
        await until(lambda: ra.packets == [(b"at the reported port", b_addr)], what="packet")
        await a.close()
        assert a.port == 0
        await b.close()

    run(main())


def test_dual_stack_node_talks_to_ipv4_and_ipv6_peers() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main() -> None:
        dual, rd = QuicTransport(), Recorder()
        port = await dual.start(rd, "::", 0)
        a, ra, a_addr = await node()
        six, r6 = QuicTransport(), Recorder()
        six_addr = f"[::1]:{await six.start(r6, '::1', 0)}"
        a.send(f"{HOST}:{port}", b"from IPv4")
        six.send(f"[::1]:{port}", b"from IPv6")
        await until(lambda: len(rd.packets) == 2, what="both packets")
        assert sorted(rd.packets) == [(b"from IPv4", a_addr), (b"from IPv6", six_addr)]
        dual.send(a_addr, b"to IPv4")  # on the connection a opened
        dual.send(six_addr, b"to IPv6")
        await until(lambda: bool(ra.packets and r6.packets), what="answers")
        assert ra.packets == [(b"to IPv4", f"{HOST}:{port}")]
        assert r6.packets == [(b"to IPv6", f"[::1]:{port}")]
        assert dual.connection_count == 2
        for transport in (dual, a, six):
            await transport.close()

    run(main())


@pytest.mark.skipif(sys.platform != "linux", reason="GRO/GSO batching is Linux's")
def test_the_socket_layer_batches_on_linux() -> None:
    # Without it the transport works (see the "plain" runs) at half speed.
    assert quic_library.create_batching_endpoint is not None


def test_a_burst_is_acknowledged_per_burst_not_per_datagram() -> None:
    if quic_library.create_batching_endpoint is None:
        pytest.skip("the QUIC library has no batching socket layer")
    # (asyncio's plain datagram endpoint reads one datagram per loop
    # iteration, so there b acknowledges as QUIC alone would.)

    async def main() -> None:
        a, _, _, b, rb, b_addr = await connected_pair()
        sent_before = b.stats.extra["datagrams_sent"]
        for i in range(3000):
            a.send(b_addr, packet(i % 700))
        await until(lambda: len(rb.packets) == 3001, what="3000 packets")
        await asyncio.sleep(0.05)  # the last ACKs
        data_datagrams = a.stats.extra["datagrams_sent"]
        acks = b.stats.extra["datagrams_sent"] - sent_before
        # QUIC alone acknowledges every second datagram; served once per
        # loop iteration, b answers a whole burst with one ACK.
        assert data_datagrams > 100
        assert 0 < acks < data_datagrams / 4
        assert b.stats.extra["datagrams_received"] >= data_datagrams - 10
        await a.close()
        await b.close()

    run(main())


def test_10k_packets_each_way_arrive_in_order_and_intact(socket_layer: str) -> None:
    count = 10_000

    async def main() -> float:
        a, ra, a_addr, b, rb, b_addr = await connected_pair()
        ra.packets.clear()
        rb.packets.clear()
        started = time.perf_counter()
        for i in range(count):
            a.send(b_addr, packet(i))
            b.send(a_addr, packet(i))
        await until(
            lambda: len(ra.packets) == count and len(rb.packets) == count,
            timeout=45.0,
            what="10k packets",
        )
        elapsed = time.perf_counter() - started
        expected = [packet(i) for i in range(count)]
        assert [data for data, _ in rb.packets] == expected
        assert [data for data, _ in ra.packets] == expected
        assert {address for _, address in rb.packets} == {a_addr}
        assert {address for _, address in ra.packets} == {b_addr}
        # One socket per node: b answered on a's connection, no second one.
        assert a.connection_count == b.connection_count == 1
        assert ra.ups == [b_addr]
        assert rb.ups == [a_addr]
        assert ra.downs == rb.downs == []
        assert a.stats.dropped == b.stats.dropped == a.stats.malformed == 0
        assert a.stats.packets_sent == b.stats.packets_received == count + 1
        assert b.stats.packets_sent == a.stats.packets_received == count
        assert a.stats.connects == 1
        assert b.stats.accepted == 1
        assert a.is_connected(b_addr)
        assert b.is_connected(a_addr)
        await a.close()
        await b.close()
        return elapsed

    elapsed = run(main())
    rate = 2 * count / elapsed
    print(f"\n2 x {count} packets over QUIC ({socket_layer}) in {elapsed:.2f} s ({rate:,.0f}/s)")


def test_peers_dialling_each_other_at_once_both_deliver() -> None:
    async def main() -> None:
        a, ra, a_addr = await node()
        b, rb, b_addr = await node()
        for i in range(200):
            a.send(b_addr, packet(i))
            b.send(a_addr, packet(i))
        await until(lambda: len(ra.packets) == len(rb.packets) == 200, what="packets")
        assert [data for data, _ in ra.packets] == [packet(i) for i in range(200)]
        assert [data for data, _ in rb.packets] == [packet(i) for i in range(200)]
        assert ra.ups == [b_addr]
        assert rb.ups == [a_addr]
        await a.close()
        await b.close()

    run(main())


def test_probe_connects_without_a_packet_and_the_server_may_speak_first() -> None:
    async def main() -> None:
        a, ra, a_addr = await node()
        b, rb, b_addr = await node()
        a.probe(b_addr)
        await until(lambda: ra.ups == [b_addr] and rb.ups == [a_addr], what="probe")
        assert ra.packets == rb.packets == []
        a.probe(b_addr)  # connected: nothing to do
        # The accepting side speaks first (on its own stream), then the prober.
        b.send(a_addr, b"server first")
        await until(lambda: ra.packets == [(b"server first", b_addr)], what="b -> a")
        a.send(b_addr, b"then the client")
        await until(lambda: rb.packets == [(b"then the client", a_addr)], what="a -> b")
        assert a.connection_count == b.connection_count == 1
        assert ra.ups == [b_addr]
        assert a.stats.malformed == b.stats.malformed == 0
        await a.close()
        await b.close()

    run(main())


def test_probe_of_a_silent_port_reports_down() -> None:
    async def main() -> None:
        a, ra, _ = await node(connect_timeout=0.5)
        target = f"{HOST}:{await silent_port()}"
        a.probe(target)
        await until(lambda: ra.downs != [], what="path_down")
        assert ra.downs[0][0] == target
        assert a.stats.dropped == 0
        await a.close()

    run(main())


# -- failing to connect -----------------------------------------------------------


def test_connecting_to_a_silent_port_reports_down_and_does_not_retry_at_once() -> None:
    async def main() -> None:
        a, ra, _ = await node(connect_timeout=0.5, retry_interval=60.0)
        target = f"{HOST}:{await silent_port()}"
        a.send(target, b"one")
        a.send(target, b"two")
        await until(lambda: ra.downs != [], what="path_down")
        [(address, reason)] = ra.downs
        assert address == target
        assert "timed out" in reason
        assert ra.ups == []
        assert a.stats.connect_failures == 1
        assert a.stats.dropped == 2
        assert not a.is_connected(target)
        # Inside retry_interval: dropped and counted, no new attempt, no repeat.
        a.send(target, b"three")
        assert a.stats.dropped == 3
        await asyncio.sleep(0.05)
        assert len(ra.downs) == 1
        assert a.stats.connect_failures == 1
        await a.close()

    run(main())


def test_queue_is_bounded_and_overflow_is_dropped() -> None:
    async def main() -> None:
        a, _, _ = await node(connect_timeout=0.5, max_queue=1000)
        target = f"{HOST}:{await silent_port()}"
        for _ in range(10):
            a.send(target, b"x" * 300)
        assert a.stats.dropped == 7
        assert a.stats.extra["queue_full"] == 7
        await until(lambda: a.stats.connect_failures == 1, what="connect failure")
        assert a.stats.dropped == 10
        await a.close()

    run(main())


def test_oversize_packet_is_refused_by_send() -> None:
    transport = QuicTransport()
    with pytest.raises(FrameTooLarge):
        transport.send("127.0.0.1:9", b"x" * (MAX_FRAME + 1))


def test_drop_filter_blocks_udp_then_lifting_it_reconnects() -> None:
    async def main() -> None:
        a, ra, a_addr = await node(connect_timeout=0.5, retry_interval=0.2)
        b, rb, b_addr = await node()
        a.drop_filter = lambda address: address == b_addr
        a.send(b_addr, b"blocked")
        await until(lambda: ra.downs != [], what="path_down")
        assert ra.downs[0][0] == b_addr
        assert rb.packets == []
        assert rb.ups == []
        assert a.stats.extra["filtered"] > 0
        a.send(b_addr, b"too soon")  # within retry_interval: dropped
        assert a.stats.dropped == 2

        a.drop_filter = None
        for _ in range(100):  # bounded: 100 sends, 5 s at most
            a.send(b_addr, b"again")
            if ra.ups:
                break
            await asyncio.sleep(0.05)
        await until(lambda: rb.packets != [], what="packet after unblocking")
        assert ra.ups == [b_addr]
        assert rb.packets[0] == (b"again", a_addr)
        assert len(ra.downs) == 1
        await a.close()
        await b.close()

    run(main())


def test_connection_limit_refuses_further_initials_explicitly() -> None:
    """An Initial beyond the limit is answered CONNECTION_REFUSED (no TLS,
    no connection state): the client reports the path down as a refusal,
    not as the timeout of its connect (whose reason would say so)."""

    async def main() -> None:
        a, ra, _, b, _, b_addr = await connected_pair(max_connections=1, connect_timeout=5.0)
        c, rc, _ = await node(connect_timeout=5.0)
        c.send(b_addr, b"no room")
        await until(lambda: rc.downs != [], what="refused connect")
        [(address, reason)] = rc.downs
        assert address == b_addr
        assert reason.startswith(REFUSED_PREFIX)
        assert "limit of 1 connections" in reason
        assert b.stats.extra["refused"] >= 1
        assert b.connection_count == 1
        a.send(b_addr, b"still fine")
        assert ra.downs == []
        for transport in (a, b, c):
            await transport.close()

    run(main())


# -- losing connections ------------------------------------------------------------


def test_peer_close_reports_down() -> None:
    async def main() -> None:
        a, ra, _, b, rb, b_addr = await connected_pair()
        await b.close()
        await until(lambda: ra.downs != [], what="path_down after peer close")
        [(address, _reason)] = ra.downs
        assert address == b_addr
        assert not a.is_connected(b_addr)
        assert rb.downs == []  # closing ourselves is not reported
        await until(lambda: a.connection_count == 0, what="connection forgotten")
        await a.close()

    run(main())


def test_disconnect_is_silent_here_and_seen_by_the_peer() -> None:
    async def main() -> None:
        a, ra, a_addr, b, rb, b_addr = await connected_pair()
        a.disconnect(b_addr)
        assert not a.is_connected(b_addr)
        await until(lambda: rb.downs != [], what="peer sees the close")
        assert rb.downs[0][0] == a_addr
        assert ra.downs == []
        # A later send dials again and reports up again.
        a.send(b_addr, b"back")
        await until(lambda: len(ra.ups) == 2, what="path_up again")
        await until(lambda: rb.packets[-1] == (b"back", a_addr), what="packet")
        await a.close()
        await b.close()

    run(main())


def test_idle_timeout_reports_down() -> None:
    async def main() -> None:
        a, ra, _, b, _, b_addr = await connected_pair(idle_timeout=0.3)
        await until(lambda: ra.downs != [], what="idle path_down")
        assert ra.downs[0][0] == b_addr
        await a.close()
        await b.close()

    run(main())


def test_close_is_idempotent_and_send_after_close_drops() -> None:
    async def main() -> None:
        a, ra, _, b, _, b_addr = await connected_pair()
        await a.close()
        await a.close()
        assert a.port == 0
        assert a.connection_count == 0
        a.send(b_addr, b"late")
        assert a.stats.dropped == 1
        assert ra.downs == []
        await b.close()
        await b.close()

    run(main())


# -- hostile input -------------------------------------------------------------------


def test_garbage_datagrams_are_counted_and_ignored() -> None:
    async def main() -> None:
        a, ra, a_addr, b, rb, b_addr = await connected_pair()
        loop = asyncio.get_running_loop()
        sender, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(HOST, 0)
        )
        rng = random.Random(7)
        garbage: list[bytes] = [b"", b"\x00", b"\xff" * 3]
        garbage += [rng.randbytes(rng.randrange(1, 1500)) for _ in range(200)]
        for _ in range(50):  # long headers claiming to be QUIC v1 Initials
            dcid = rng.randbytes(8)
            header = b"\xc3" + struct.pack(">I", 1) + b"\x08" + dcid + b"\x08" + rng.randbytes(8)
            garbage.append(header + b"\x00\x44\xd0" + rng.randbytes(1250))
        # The drop filter sees every datagram that reaches a's socket: count
        # the garbage that arrived (UDP may lose some), one at a time.
        arrived: list[str] = []
        garbage_from = f"{HOST}:{sender.get_extra_info('sockname')[1]}"

        def observe(address: str) -> bool:
            if address == garbage_from:
                arrived.append(address)
            return False  # drop nothing

        a.drop_filter = observe
        for data in garbage:
            before = len(arrived)
            sender.sendto(data, (HOST, a.port))
            for _ in range(500):  # at most ~1 s per datagram
                if len(arrived) > before:
                    break
                await asyncio.sleep(0.002)
        a.drop_filter = None
        assert len(arrived) > len(garbage) // 2
        assert a.stats.malformed == len(arrived)
        sender.close()
        # The good connection still works, both ways; no connection was kept.
        a.send(b_addr, b"after garbage")
        b.send(a_addr, b"reply")
        await until(lambda: rb.packets[-1][0] == b"after garbage", what="a -> b")
        await until(lambda: ra.packets[-1:] == [(b"reply", b_addr)], what="b -> a")
        assert a.connection_count == 1
        assert ra.downs == []
        await a.close()
        await b.close()

    run(main())


def test_oversize_frame_header_closes_that_connection() -> None:
    async def main() -> None:
        a, ra, a_addr, b, rb, b_addr = await connected_pair()
        protocol, udp = await raw_client(a.port, ALPN)
        await asyncio.wait_for(protocol.wait_connected(), 10)
        _, writer = await protocol.create_stream()
        writer.write(struct.pack(">I", MAX_FRAME + 1) + b"x" * 10)
        await asyncio.wait_for(protocol.wait_closed(), 10)
        writer.close()
        udp.close()
        assert a.stats.malformed == 1
        await until(lambda: len(ra.downs) == 1, what="path_down of the bad client")
        assert ra.downs[0][0] != b_addr
        assert "exceeds" in ra.downs[0][1] or "announces" in ra.downs[0][1]
        # The good connection is unaffected.
        a.send(b_addr, b"still here")
        await until(lambda: rb.packets[-1] == (b"still here", a_addr), what="good connection")
        await a.close()
        await b.close()

    run(main())


def test_data_on_a_second_stream_closes_that_connection() -> None:
    async def main() -> None:
        a, ra, _ = await node()
        protocol, udp = await raw_client(a.port, ALPN)
        await asyncio.wait_for(protocol.wait_connected(), 10)
        _, first = await protocol.create_stream()
        first.write(struct.pack(">I", 2) + b"ok")
        await until(lambda: [data for data, _ in ra.packets] == [b"ok"], what="first frame")
        _, second = await protocol.create_stream()
        second.write(struct.pack(">I", 2) + b"no")
        await asyncio.wait_for(protocol.wait_closed(), 10)
        first.close()
        second.close()
        udp.close()
        assert a.stats.malformed == 1
        assert len(ra.packets) == 1
        await until(lambda: len(ra.downs) == 1, what="path_down of the bad client")
        assert "unexpected QUIC stream" in ra.downs[0][1]
        await a.close()

    run(main())


def test_other_alpn_is_refused() -> None:
    async def main() -> None:
        a, ra, _ = await node()
        protocol, udp = await raw_client(a.port, "h3")
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(protocol.wait_connected(), 10)
        udp.close()
        assert ra.ups == []
        assert a.stats.accepted == 0
        await until(lambda: a.connection_count == 0, what="refused connection forgotten")
        await a.close()

    run(main())


def test_a_peer_restarted_at_the_same_address_is_reached_on_its_new_connection() -> None:
    """A peer killed without closing (kill -9: no CONNECTION_CLOSE) and
    restarted on the same port dials again; replies must go on the new
    connection at once, not on the dead one until it idles out."""

    async def main() -> None:
        a, _ra, a_addr, b, rb, b_addr = await connected_pair(idle_timeout=60.0)
        a.drop_filter = lambda _address: True  # a dies silently
        await a.close()
        port = int(a_addr.rsplit(":", 1)[1])
        reborn = QuicTransport(idle_timeout=60.0)
        again = Recorder()
        assert await reborn.start(again, HOST, port) == port
        reborn.send(b_addr, b"i am back")
        await until(lambda: (b"i am back", a_addr) in rb.packets, what="the new connection")
        b.send(a_addr, b"welcome back")
        await until(lambda: again.packets == [(b"welcome back", b_addr)], what="the reply")
        await reborn.close()
        await b.close()

    run(main())


# -- outbound-only clients (a QUIC client behind a NAT) -------------------------


def test_an_outbound_only_client_is_marked_and_never_dialled_again() -> None:
    async def main() -> None:
        a, ra, a_addr = await node(advertise=False)
        b, rb, b_addr = await node()
        a.send(b_addr, b"hello")
        await until(lambda: rb.packets == [(b"hello", a_addr)], what="the packet")
        assert not b.dialable(a_addr)
        assert b.stats.extra.get("outbound_only") == 1
        assert a.dialable(b_addr)  # b offered nothing: a listening peer
        b.send(a_addr, b"reply")  # over the live connection
        await until(lambda: ra.packets == [(b"reply", b_addr)], what="the reply")
        a.disconnect(b_addr)
        await until(lambda: rb.downs != [], what="b sees the close")
        b.send(a_addr, b"not dialled")
        b.probe(a_addr)
        assert b.stats.extra.get("not_dialled") == 1
        assert b.stats.connects == 0
        assert b.connection_count == 0
        # a comes back by itself: a new connection, routed again.
        a.send(b_addr, b"back")
        await until(lambda: rb.packets[-1] == (b"back", a_addr), what="a is back")
        b.send(a_addr, b"welcome")
        await until(lambda: ra.packets[-1] == (b"welcome", b_addr), what="the welcome")
        assert b.stats.connects == 0
        await a.close()
        await b.close()

    run(main())


def test_a_listening_client_stays_dialable_and_an_old_server_accepts_the_offer() -> None:
    async def main() -> None:
        a, _, a_addr, b, _, b_addr = await connected_pair()
        assert b.dialable(a_addr)
        assert a.dialable(b_addr)
        assert "outbound_only" not in b.stats.extra
        await a.close()
        await b.close()
        # A server of an older release knows only ALPN: it selects that and
        # the outbound-only client's connection works as before.
        c, rc, c_addr = await node(advertise=False)
        server = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
        cert = generate_self_signed()
        server.load_cert_chain(cert.certificate_pem, cert.private_key_pem)
        got: list[str] = []

        class OldServer(QuicConnectionProtocol):
            def quic_event_received(self, event: events.QuicEvent) -> None:
                if isinstance(event, events.HandshakeCompleted):
                    got.append(str(event.alpn_protocol))

        old = await serve(HOST, 0, configuration=server, create_protocol=OldServer)
        udp = old._transport
        assert udp is not None
        old_addr = f"{HOST}:{udp.get_extra_info('sockname')[1]}"
        c.send(old_addr, b"hello")
        await until(lambda: got == [ALPN] and rc.ups == [old_addr], what="the old server")
        udp.close()
        await c.close()
        assert c_addr

    run(main())


def test_the_alpn_offers_match_the_known_answers_of_protocol_md() -> None:
    """PROTOCOL.md §1 gives the ClientHello ProtocolNameList of both offers."""

    def name_list(protocols: list[str]) -> str:
        body = b"".join(bytes([len(p)]) + p.encode() for p in protocols)
        return (len(body).to_bytes(2, "big") + body).hex()

    _, plain = quic_make_configurations(30.0)
    _, outbound = quic_make_configurations(30.0, advertise=False)
    assert plain.alpn_protocols is not None
    assert outbound.alpn_protocols is not None
    text = (Path(__file__).parents[2] / "docs" / "PROTOCOL.md").read_text()
    assert f"otherwise `{name_list(plain.alpn_protocols)}`" in text
    assert f"outbound-only\n  `{name_list(outbound.alpn_protocols)}`" in text


def test_a_simultaneous_open_carries_what_waits_on_a_dropped_dial() -> None:
    """Hole punching: B dials A first and A's NAT drops B's Initial; then A
    dials B, which gets through.  The packet waiting on B's stalled dial
    goes on A's connection as soon as it is up (``extra["adopted"]``),
    not after QUIC's probe timeout resends B's Initial."""

    async def main() -> None:
        a, ra, a_addr = await node()
        b, rb, b_addr = await node()
        a.drop_filter = lambda address: address == b_addr  # A's NAT: closed to B
        b.send(a_addr, b"from b")
        # B's Initial and two probe-timeout resends are lost: its next
        # resend waits the backed-off timeout, long after A's dial is up.
        await until(lambda: b.stats.extra.get("datagrams_sent", 0) >= 3, what="B's resends")
        a.drop_filter = None  # A sends to B: its NAT opens for B
        a.send(b_addr, b"from a")
        await until(lambda: rb.packets == [(b"from a", a_addr)], what="A's packet")
        await until(lambda: ra.packets == [(b"from b", b_addr)], what="B's packet")
        assert b.stats.extra.get("adopted") == 1
        await a.close()
        await b.close()

    run(main())
