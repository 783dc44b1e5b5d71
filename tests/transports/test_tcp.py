"""μTCP over real loopback sockets: delivery, path edges, hostile peers, bounds.

Every test runs on asyncio's own loop and, when installed, on uvloop.  No
timing assertions: waits poll a condition, bounded in time and count.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from l2session.errors import ConfigError, MessageTooLarge, TransportFailed
from l2session.transports.address import InvalidAddress
from l2session.transports.base import REFUSED_PREFIX, Transport
from l2session.transports.framing import (
    MAX_FRAME,
    REFUSE_UNIDENTIFIED,
    encode_frame,
    encode_hello,
    encode_refuse,
)
from l2session.transports.tcp import TcpTransport

T = TypeVar("T")
HOST = "127.0.0.1"
LOOPS = ["asyncio"]
with contextlib.suppress(ImportError):
    import uvloop  # noqa: F401

    LOOPS.append("uvloop")

Run = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Run[Any]:
    def go(coro: Coroutine[Any, Any, T]) -> T:
        factory = None
        if request.param == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(coro, 60))

    return go


class Recorder:
    """A TransportListener that writes everything down."""

    def __init__(self) -> None:
        self.packets: list[tuple[bytes, str]] = []
        self.events: list[tuple[str, str, str]] = []

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        assert path == "tcp"
        self.packets.append((data, address))

    def path_up(self, address: str, path: str) -> None:
        assert path == "tcp"
        self.events.append(("up", address, ""))

    def path_down(self, address: str, path: str, reason: str) -> None:
        assert path == "tcp"
        self.events.append(("down", address, reason))

    def data(self) -> list[bytes]:
        return [d for d, _ in self.packets]


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    async def poll() -> None:
        for _ in range(int(timeout / 0.002) + 1):
            if condition():
                return
            await asyncio.sleep(0.002)
        raise AssertionError(f"gave up waiting for {what}")

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@contextlib.asynccontextmanager
async def node(**options: Any) -> AsyncIterator[tuple[TcpTransport, Recorder, str]]:
    transport, recorder = TcpTransport(**options), Recorder()
    port = await transport.start(recorder, HOST, 0)
    try:
        yield transport, recorder, f"{HOST}:{port}"
    finally:
        await transport.close()


async def connected(a: TcpTransport, b_rec: Recorder, b_addr: str) -> None:
    """Open a -> b with one packet and wait until b has it."""
    before = len(b_rec.packets)
    a.send(b_addr, b"ping")
    await wait_until(lambda: len(b_rec.packets) > before, "the ping")
    assert b_rec.packets[-1][0] == b"ping"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionError):
        for _ in range(1000):
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
    return data


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


# --------------------------------------------------------------------------


def test_10000_packets_each_way_in_order_and_intact(run: Run[None]) -> None:
    def packet(i: int, side: bytes) -> bytes:
        return side + i.to_bytes(4, "big") + bytes([i % 251]) * (i % 300)

    async def main() -> None:
        async with node() as (a, a_rec, a_addr), node() as (b, b_rec, b_addr):
            await connected(a, b_rec, b_addr)
            assert b_rec.packets == [(b"ping", a_addr)]  # keyed by a's listening port
            for i in range(10_000):
                a.send(b_addr, packet(i, b"A"))
                b.send(a_addr, packet(i, b"B"))
                if i % 100 == 99:
                    await asyncio.sleep(0)
            await wait_until(lambda: len(b_rec.packets) == 10_001, "a -> b")
            await wait_until(lambda: len(a_rec.packets) == 10_000, "b -> a")
            assert b_rec.data()[1:] == [packet(i, b"A") for i in range(10_000)]
            assert a_rec.data() == [packet(i, b"B") for i in range(10_000)]
            assert {addr for _, addr in b_rec.packets} == {a_addr}
            assert {addr for _, addr in a_rec.packets} == {b_addr}
            assert a.stats.packets_sent == 10_001
            assert b.stats.packets_received == 10_001
            assert a.stats.dropped == b.stats.dropped == 0
            assert a.stats.malformed == b.stats.malformed == 0
            assert a.stats.connects == 1
            assert b.stats.accepted == 1
            assert a.stats.bytes_sent == b.stats.bytes_received
            assert b.stats.bytes_sent == a.stats.bytes_received

    run(main())


def test_path_up_edges_and_canonical_address(run: Run[None]) -> None:
    async def main() -> None:
        async with node() as (a, a_rec, a_addr), node() as (b, b_rec, b_addr):
            assert not a.is_connected(b_addr)
            for _ in range(3):
                await connected(a, b_rec, b_addr)
            assert a.is_connected(b_addr)
            assert b.is_connected(a_addr)  # the acceptor keys a by its HELLO port
            assert a_rec.events == [("up", b_addr, "")]
            assert b_rec.events == [("up", a_addr, "")]

    run(main())


def test_peer_close_reports_path_down_once(run: Run[None]) -> None:
    async def main() -> None:
        async with node() as (a, a_rec, _a_addr), node() as (b, b_rec, b_addr):
            await connected(a, b_rec, b_addr)
            await b.close()
            await wait_until(lambda: len(a_rec.events) == 2, "path_down")
            assert a_rec.events == [("up", b_addr, ""), ("down", b_addr, "closed by peer")]
            assert not a.is_connected(b_addr)
            assert len(b_rec.events) == 1  # close() reports nothing

    run(main())


def test_connect_refused_reports_path_down_and_retries_at_most_every_interval(
    run: Run[None],
) -> None:
    async def main() -> None:
        dead = f"{HOST}:{free_port()}"
        async with node(retry_interval=3600) as (a, a_rec, _):
            a.send(dead, b"1")
            a.send(dead, b"2")
            await wait_until(lambda: len(a_rec.events) == 1, "path_down")
            [(kind, address, reason)] = a_rec.events
            assert (kind, address) == ("down", dead)
            assert reason.startswith("connect failed")
            assert a.stats.connect_failures == 1
            assert a.stats.dropped == 2
            a.send(dead, b"3")  # inside the retry interval: dropped at once
            assert a.stats.dropped == 3
            assert not a.is_connected(dead)
        async with node(retry_interval=0) as (c, c_rec, _):
            c.send(dead, b"x")
            await wait_until(lambda: len(c_rec.events) == 1, "path_down")
            c.send(dead, b"x")  # retry_interval 0: a new attempt
            await wait_until(lambda: len(c_rec.events) == 2, "another path_down")
            assert [e[:2] for e in c_rec.events] == [("down", dead)] * 2
            assert c.stats.connect_failures == 2

    run(main())


def test_connect_timeout_reports_path_down(run: Run[None]) -> None:
    async def main() -> None:
        # A listener whose accept queue is full: the kernel drops further SYNs.
        with contextlib.ExitStack() as stack:
            full = stack.enter_context(socket.socket())
            full.bind((HOST, 0))
            full.listen(0)
            port = full.getsockname()[1]
            for _ in range(3):
                filler = stack.enter_context(socket.socket())
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect((HOST, port))
            await asyncio.sleep(0.1)
            async with node(connect_timeout=0.3) as (a, a_rec, _):
                a.send(f"{HOST}:{port}", b"x")
                await wait_until(lambda: bool(a_rec.events), "the connect's outcome")
                if a_rec.events[0][0] == "up":
                    pytest.skip("this kernel accepted past a full backlog")
                assert a_rec.events == [("down", f"{HOST}:{port}", "connect timed out after 0.3 s")]
                assert a.stats.connect_failures == a.stats.dropped == 1

    run(main())


def test_probe_connects_without_a_packet_and_reports_the_outcome(run: Run[None]) -> None:
    async def main() -> None:
        dead = f"{HOST}:{free_port()}"
        async with node(retry_interval=3600) as (a, a_rec, a_addr), node() as (b, b_rec, b_addr):
            a.probe(b_addr)
            a.probe(b_addr)  # one attempt in flight
            await wait_until(lambda: b.is_connected(a_addr), "the probe's connection")
            a.probe(b_addr)  # connected: nothing to do, nothing reported
            assert a_rec.events == [("up", b_addr, "")]
            assert b_rec.packets == []
            a.probe(dead)
            await wait_until(lambda: len(a_rec.events) == 2, "path_down")
            a.probe(dead)  # probes ignore the retry interval
            await wait_until(lambda: len(a_rec.events) == 3, "another path_down")
            assert [e[:2] for e in a_rec.events[1:]] == [("down", dead)] * 2
            assert a.stats.connects == 1
            assert a.stats.connect_failures == 2
            with pytest.raises(InvalidAddress):
                a.probe("nowhere")

    run(main())


def test_client_only_transport_is_keyed_by_its_ephemeral_address(run: Run[None]) -> None:
    async def main() -> None:
        async with node(listen=False) as (c, c_rec, c_addr), node() as (b, b_rec, b_addr):
            assert c_addr == f"{HOST}:0"
            assert c.local_port == 0
            await connected(c, b_rec, b_addr)
            [(_, seen)] = b_rec.packets
            assert seen.startswith(f"{HOST}:")
            assert seen != c_addr
            b.send(seen, b"reply")
            await wait_until(lambda: c_rec.packets == [(b"reply", b_addr)], "the reply")
            assert b_rec.events == [("up", seen, "")]

    run(main())


@pytest.mark.parametrize("options", [{"listen": False}, {"advertise": False}])
def test_a_hello_port_0_address_is_routed_by_its_connection_and_never_dialled(
    run: Run[None], options: dict[str, bool]
) -> None:
    async def main() -> None:
        async with node(**options) as (c, c_rec, _), node() as (b, b_rec, b_addr):
            assert c.hello_port == 0
            await connected(c, b_rec, b_addr)
            [(_, seen)] = b_rec.packets
            assert not b.dialable(seen)
            assert c.dialable(b_addr)
            b.send(seen, b"over the live connection")
            await wait_until(lambda: bool(c_rec.packets), "the reply")
            c.disconnect(b_addr)
            await wait_until(lambda: b_rec.events[-1][:2] == ("down", seen), "b sees it gone")
            b.send(seen, b"nobody listens there")
            b.probe(seen)
            await asyncio.sleep(0.05)
            assert b.stats.extra["not_dialled"] == 1
            assert b.stats.connects == 0
            assert not b._attempts
            # It comes back from a new port, routed by that connection.
            await connected(c, b_rec, b_addr)
            again = b_rec.packets[-1][1]
            assert again != seen
            assert not b.dialable(again)

    run(main())


def test_simultaneous_connects_keep_both_and_send_on_the_newest(run: Run[None]) -> None:
    async def main() -> None:
        async with node() as (a, a_rec, a_addr), node() as (b, b_rec, b_addr):
            a.send(b_addr, b"from a")
            b.send(a_addr, b"from b")
            await wait_until(lambda: len(a._conns.get(b_addr, ())) == 2, "a's two connections")
            await wait_until(lambda: len(b._conns.get(a_addr, ())) == 2, "b's two connections")
            await wait_until(lambda: bool(a_rec.packets and b_rec.packets), "the first packets")
            assert a_rec.events == [("up", b_addr, "")]
            assert b_rec.events == [("up", a_addr, "")]
            for i in range(1000):
                a.send(b_addr, i.to_bytes(2, "big"))
            await wait_until(lambda: len(b_rec.packets) == 1001, "1000 packets")
            assert b_rec.data() == [b"from a"] + [i.to_bytes(2, "big") for i in range(1000)]
            await b.close()
            await wait_until(lambda: len(a_rec.events) == 2, "path_down")
            assert a_rec.events[1][:2] == ("down", b_addr)  # once, for both connections

    run(main())


def test_disconnect_is_quiet_and_idempotent(run: Run[None]) -> None:
    async def main() -> None:
        async with node() as (a, a_rec, a_addr), node() as (_, b_rec, b_addr):
            await connected(a, b_rec, b_addr)
            a.disconnect(b_addr)
            a.disconnect(b_addr)
            a.disconnect(f"{HOST}:1")  # never connected
            assert not a.is_connected(b_addr)
            await wait_until(lambda: len(b_rec.events) == 2, "b's path_down")
            assert b_rec.events[1] == ("down", a_addr, "closed by peer")
            assert a_rec.events == [("up", b_addr, "")]
            await connected(a, b_rec, b_addr)  # and it connects again
            assert a_rec.events == [("up", b_addr, ""), ("up", b_addr, "")]
            # disconnect while connecting: the queue is dropped, nothing reported
            dead = f"{HOST}:{free_port()}"
            a.send(dead, b"lost")
            a.disconnect(dead)
            assert a.stats.dropped == 1

    run(main())


def test_close_is_idempotent_and_send_after_close_drops(run: Run[None]) -> None:
    async def main() -> None:
        async with node() as (a, a_rec, _), node() as (b, b_rec, b_addr):
            await connected(a, b_rec, b_addr)
            await a.close()
            await a.close()
            a.send(b_addr, b"late")
            a.disconnect(b_addr)
            await wait_until(lambda: not b.is_connected(f"{HOST}:{a.local_port}"), "b sees it")
            assert a.stats.dropped >= 1
            assert len(a_rec.events) == 1
        unused = TcpTransport()
        await unused.close()
        await unused.close()
        with pytest.raises(TransportFailed, match="already started"):
            await unused.start(Recorder(), HOST, 0)

    run(main())


def test_hostile_connections_are_closed_and_counted(run: Run[None]) -> None:
    big = struct.pack(">I", MAX_FRAME + 1)
    hostile: dict[str, list[bytes]] = {
        "garbage": [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
        "oversize header": [encode_hello(1) + big],
        "data before HELLO": [encode_frame(b"a session packet")],
        "bad HELLO magic": [encode_frame(b"L2S2\x00\x01")],
        "HELLO too long": [encode_frame(b"L2S1\x00\x01\x02")],
        "oversize after a dripped HELLO": [bytes([b]) for b in encode_hello(2)] + [big],
    }
    # Closed by the HELLO timeout (a second transport, so that its short
    # timeout cannot race the drips above).
    silent: dict[str, list[bytes]] = {
        "no HELLO": [],
        "slow drip": [bytes([b]) for b in encode_hello(3)[:-1]],  # never completes
    }

    async def attack(port: int, chunks: list[bytes]) -> bytes:
        reader, writer = await asyncio.open_connection(HOST, port)
        with contextlib.suppress(ConnectionError):
            for chunk in chunks:
                writer.write(chunk)
                await asyncio.sleep(0.02)
        received = await read_to_end(reader)
        await close_writer(writer)
        return received

    async def main() -> None:
        async with (
            node() as (a, a_rec, a_addr),
            node() as (b, b_rec, b_addr),
            node(hello_timeout=0.2) as (c, c_rec, _),
        ):
            await connected(a, b_rec, b_addr)
            results = await asyncio.gather(
                *(attack(b.local_port, chunks) for chunks in hostile.values()),
                *(attack(c.local_port, chunks) for chunks in silent.values()),
            )
            for received in results[: len(hostile)]:
                assert received.startswith(encode_hello(b.local_port)) or received == b""
            assert b.stats.malformed == len(hostile)
            assert c.stats.malformed == len(silent)
            assert c_rec.events == []
            assert a.stats.malformed == 0
            # A HELLO made an address; losing it was reported with the reason.
            downs = {addr: reason for kind, addr, reason in b_rec.events if kind == "down"}
            assert set(downs) == {f"{HOST}:1", f"{HOST}:2"}
            assert all(reason.startswith("malformed") for reason in downs.values())
            # The good connection never noticed.
            a.send(b_addr, b"still here")
            await wait_until(lambda: b_rec.packets[-1] == (b"still here", a_addr), "delivery")
            assert b.is_connected(a_addr)
            assert a_rec.events == [("up", b_addr, "")]

    run(main())


def test_a_connector_beyond_the_limit_is_told_it_was_refused(run: Run[None]) -> None:
    """At ``max_connections`` the acceptor answers REFUSE and closes: the
    connector reports the path down as a refusal, not a reset."""

    async def main() -> None:
        async with (
            node(max_connections=1) as (b, b_rec, b_addr),
            node() as (a, _a_rec, _),
            node() as (c, c_rec, _),
        ):
            a.send(b_addr, b"first")
            await wait_until(lambda: len(b_rec.packets) == 1, "the first connection")
            c.send(b_addr, b"no room")
            await wait_until(
                lambda: c_rec.events[-1:] != [] and c_rec.events[-1][0] == "down", "refusal"
            )
            _kind, address, reason = c_rec.events[-1]
            assert address == b_addr
            assert reason == f"{REFUSED_PREFIX} (at its connection limit)"
            assert c.stats.extra["refused_by_peer"] == 1
            assert b.stats.extra["refused"] == 1
            assert len(b_rec.packets) == 1

    run(main())


def test_unidentified_connections_are_bounded(run: Run[None]) -> None:
    async def main() -> None:
        async with node(max_unidentified=2, hello_timeout=60) as (b, _, _):
            streams = [await asyncio.open_connection(HOST, b.local_port) for _ in range(3)]
            # Refused before its HELLO, and told why (a REFUSE frame).
            assert await read_to_end(streams[2][0]) == encode_refuse(REFUSE_UNIDENTIFIED)
            assert b.stats.extra["refused"] == 1
            assert b.stats.accepted == 3
            for _, writer in streams:
                await close_writer(writer)

    run(main())


def test_outbound_to_a_foreign_server_is_malformed(run: Run[None]) -> None:
    async def main() -> None:
        async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
            await read_to_end(reader)
            await close_writer(writer)

        server = await asyncio.start_server(banner, HOST, 0)
        address = f"{HOST}:{server.sockets[0].getsockname()[1]}"
        try:
            async with node() as (a, a_rec, _):
                a.send(address, b"hello?")
                await wait_until(lambda: len(a_rec.events) == 2, "up and down")
                assert a_rec.events[0] == ("up", address, "")
                assert a_rec.events[1][:2] == ("down", address)
                assert a_rec.events[1][2].startswith("malformed")
                assert a.stats.malformed == 1
        finally:
            server.close()
            await server.wait_closed()

    run(main())


def test_queue_bounds_drop_and_count(run: Run[None]) -> None:
    async def main() -> None:
        # While connecting: at most max_pending_packets, the first ones kept.
        async with node() as (a, _, _), node() as (_, b_rec, b_addr):
            for i in range(1100):
                a.send(b_addr, i.to_bytes(2, "big"))
            assert a.stats.dropped == 1100 - 1024
            await wait_until(lambda: len(b_rec.packets) == 1024, "the queued packets")
            assert b_rec.data() == [i.to_bytes(2, "big") for i in range(1024)]
        # ... and at most max_queue_bytes.
        async with node(max_queue_bytes=1000) as (a, _, _), node() as (_, _, b_addr):
            for _ in range(3):
                a.send(b_addr, bytes(400))
            assert a.stats.dropped == 1

    run(main())


def test_queue_bound_holds_while_the_peer_does_not_read(run: Run[None]) -> None:
    writers: list[asyncio.StreamWriter] = []

    async def sink(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode_hello(0))  # a peer that says hello and never reads
        writers.append(writer)

    async def main() -> None:
        server = await asyncio.start_server(sink, HOST, 0)
        address = f"{HOST}:{server.sockets[0].getsockname()[1]}"
        bound = 1 << 20
        try:
            async with node(max_queue_bytes=bound) as (a, _, _):
                a.send(address, b"x")
                await wait_until(lambda: a.is_connected(address), "the connection")
                packet = bytes(256 * 1024)
                for _ in range(1000):
                    for _ in range(4):
                        a.send(address, packet)
                    await asyncio.sleep(0)
                    if a.stats.dropped:
                        break
                assert a.stats.dropped > 0
                [conn] = a._conns[address]
                assert conn.paused
                assert conn.nbytes <= bound
        finally:
            for writer in writers:
                writer.close()
            server.close()
            await server.wait_closed()

    run(main())


def test_listener_errors_do_not_stop_delivery(run: Run[None]) -> None:
    class Grumpy(Recorder):
        def packet_received(self, data: bytes, address: str, path: str) -> None:
            super().packet_received(data, address, path)
            if data == b"boom":
                raise RuntimeError("listener bug")

    async def main() -> None:
        async with node() as (a, _, _):
            b, b_rec = TcpTransport(), Grumpy()
            b_addr = f"{HOST}:{await b.start(b_rec, HOST, 0)}"
            try:
                for data in (b"one", b"boom", b"two"):
                    a.send(b_addr, data)
                await wait_until(lambda: len(b_rec.packets) == 3, "three packets")
                assert b_rec.data() == [b"one", b"boom", b"two"]
            finally:
                await b.close()

    run(main())


def test_programming_errors_raise_at_once(run: Run[None]) -> None:
    async def main() -> None:
        async with node() as (a, _, a_addr):
            for bad in ["nonsense", f"{HOST}:0", "localhost:80", "[::1]", "::1:80", ""]:
                with pytest.raises(InvalidAddress):
                    a.send(bad, b"x")
            with pytest.raises(MessageTooLarge):
                a.send(a_addr, bytes(MAX_FRAME + 1))
            port = a.local_port
            with pytest.raises(TransportFailed, match=f"{HOST}:{port}"):
                await TcpTransport().start(Recorder(), HOST, port)
            with pytest.raises(InvalidAddress):
                await TcpTransport().start(Recorder(), "localhost", 0)
            with pytest.raises(InvalidAddress):
                await TcpTransport().start(Recorder(), HOST, 70000)
            assert a.stats.dropped == 0

    run(main())
    with pytest.raises(TransportFailed, match="not started"):
        TcpTransport().send(f"{HOST}:1", b"x")


@pytest.mark.parametrize(
    "option",
    [
        {"connect_timeout": 0},
        {"hello_timeout": -1},
        {"max_queue_bytes": 0},
        {"max_pending_packets": 0},
        {"max_unidentified": 0},
        {"retry_interval": -0.1},
    ],
)
def test_bad_options(option: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(option))):
        TcpTransport(**option)


def test_is_a_transport() -> None:
    transport: Transport = TcpTransport()  # mypy checks the protocol
    assert transport.name == "tcp"
    assert transport.stats.dropped == 0


# --------------------------------------------------------------------------
# A HELLO is a claim, not a route (review finding 3): before the fix any
# process sharing the peer's IP could connect, send HELLO(<the peer's
# port>) and receive everything sent to that peer (send used the newest
# connection).  An inbound connection now carries our packets only once the
# core authenticated a packet on it (TcpTransport.confirm).


class Confirming(Recorder):
    """A listener that plays the core: packets starting with ``genuine``
    authenticate (and confirm their connection), anything else does not."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: TcpTransport | None = None

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        super().packet_received(data, address, path)
        if data.startswith(b"genuine") and self.transport is not None:
            self.transport.confirm(address)


@contextlib.asynccontextmanager
async def confirming(**options: Any) -> AsyncIterator[tuple[TcpTransport, Confirming, int]]:
    """A transport whose listener plays the core (:class:`Confirming`)."""
    victim_rec = Confirming()
    victim = TcpTransport(**options)
    port = await victim.start(victim_rec, HOST, 0)
    victim_rec.transport = victim
    try:
        yield victim, victim_rec, port
    finally:
        await victim.close()


async def _attacker(
    victim_port: int, claimed_port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, victim_port)
    writer.write(encode_hello(claimed_port) + encode_frame(b"forged, not authenticated"))
    await writer.drain()
    return reader, writer


async def _read_some(reader: asyncio.StreamReader) -> bytes:
    with contextlib.suppress(TimeoutError):
        return await asyncio.wait_for(reader.read(65536), 0.5)
    return b""


def test_an_unconfirmed_hello_does_not_take_over_a_working_route(run: Run[None]) -> None:
    async def main() -> None:
        async with (
            confirming() as (victim, victim_rec, port),
            node() as (peer, peer_rec, peer_addr),
        ):
            peer.send(f"{HOST}:{port}", b"genuine hello")
            await wait_until(lambda: len(victim_rec.packets) == 1, "the peer's packet")
            victim.send(peer_addr, b"before")
            await wait_until(lambda: peer_rec.data() == [b"before"], "the reply")
            # Mallory shares the host and claims the peer's port.
            peer_port = int(peer_addr.rsplit(":", 1)[1])
            reader, writer = await _attacker(port, peer_port)
            await wait_until(lambda: len(victim_rec.packets) == 2, "mallory's packet")
            assert victim_rec.packets[1][1] == peer_addr  # the claim is accepted as a key
            victim.send(peer_addr, b"secret")
            await wait_until(lambda: peer_rec.data() == [b"before", b"secret"], "the secret")
            assert b"secret" not in await _read_some(reader)
            writer.close()

    run(main())


def test_a_claim_alone_gets_nothing_the_genuine_listener_is_dialled(run: Run[None]) -> None:
    async def main() -> None:
        async with (
            confirming() as (victim, victim_rec, port),
            node() as (_, peer_rec, peer_addr),
        ):
            peer_port = int(peer_addr.rsplit(":", 1)[1])
            reader, writer = await _attacker(port, peer_port)  # before the peer
            await wait_until(lambda: len(victim_rec.packets) == 1, "mallory's packet")
            victim.send(peer_addr, b"to the peer")
            await wait_until(lambda: peer_rec.data() == [b"to the peer"], "dialled")
            assert b"to the peer" not in await _read_some(reader)
            writer.close()

    run(main())


def test_a_confirmed_inbound_connection_carries_the_replies(run: Run[None]) -> None:
    async def main() -> None:
        async with (
            confirming() as (victim, victim_rec, port),
            node() as (peer, peer_rec, peer_addr),
        ):
            peer.send(f"{HOST}:{port}", b"genuine")
            await wait_until(lambda: len(victim_rec.packets) == 1, "the packet")
            victim.send(peer_addr, b"reply")
            await wait_until(lambda: peer_rec.data() == [b"reply"], "the reply")
            assert victim.stats.connects == 0  # no dial: the inbound one was used
            assert victim.stats.extra.get("confirmed") == 1

    run(main())


# Review N1: a dialer whose announced port cannot be dialled back (a
# firewall, a NAT forwarding nothing) but which does not say port 0 could
# not finish a handshake: the answer to its opening packet went to a fresh
# dial of the announced port.  Opening answers now also go back on the
# unconfirmed connection the opening packet came on; nothing else does.


async def _collect(reader: asyncio.StreamReader, seconds: float = 0.5) -> bytes:
    """Everything the connection carries within ``seconds`` (bounded)."""
    data = b""
    deadline = asyncio.get_running_loop().time() + seconds
    for _ in range(1000):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        with contextlib.suppress(TimeoutError):
            chunk = await asyncio.wait_for(reader.read(65536), left)
            if not chunk:
                break
            data += chunk
    return data


RESPONSE_LIKE = bytes([1, 0x10]) + b"\x00" * 16 + bytes([1, 2]) + b"response"  # HANDSHAKE
INIT_LIKE = bytes([1, 0x10]) + b"\x00" * 16 + bytes([1, 1]) + b"init"  # HANDSHAKE
DATA_LIKE = bytes([1, 0x20]) + b"\x00" * 21 + b"data"  # DATA


def test_an_opening_answer_goes_back_on_the_claim_other_packets_do_not(run: Run[None]) -> None:
    async def main() -> None:
        async with confirming(retry_interval=0) as (victim, victim_rec, port):
            closed = free_port()  # announced, but nobody listens there
            reader, writer = await _attacker(port, closed)
            claimed = f"{HOST}:{closed}"
            await wait_until(lambda: len(victim_rec.packets) == 1, "the opening packet")
            assert victim_rec.packets[0][1] == claimed
            victim.send(claimed, DATA_LIKE)
            victim.send(claimed, INIT_LIKE)  # ours, not an answer
            victim.send(claimed, RESPONSE_LIKE)
            got = await _collect(reader)
            assert encode_frame(RESPONSE_LIKE) in got
            assert b"data" not in got  # the session is not routed to a claim
            assert b"init" not in got
            assert victim.stats.extra.get("answered_on_claim") == 1
            assert victim.stats.extra.get("confirmed") is None
            writer.close()

    run(main())


def test_a_dialer_announcing_an_undialable_port_is_answered_then_confirmed(
    run: Run[None],
) -> None:
    async def main() -> None:
        async with confirming() as (victim, victim_rec, port):
            closed = free_port()
            reader, writer = await _attacker(port, closed)
            claimed = f"{HOST}:{closed}"
            await wait_until(lambda: len(victim_rec.packets) == 1, "the opening packet")
            victim.send(claimed, RESPONSE_LIKE)
            assert encode_frame(RESPONSE_LIKE) in await _collect(reader)
            # The dialer's next packet authenticates: the claim is confirmed
            # and carries everything from now on, without a dial.
            writer.write(encode_frame(b"genuine finish"))
            await wait_until(lambda: len(victim_rec.packets) == 2, "the finish")
            victim.send(claimed, DATA_LIKE)
            assert encode_frame(DATA_LIKE) in await _collect(reader)
            assert victim.stats.extra.get("confirmed") == 1
            writer.close()

    run(main())
