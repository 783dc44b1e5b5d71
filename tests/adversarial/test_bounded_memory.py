"""Hostile μTCP peers on 127.0.0.1: slow-drip senders, frames that never
finish, oversized frame headers and connection floods.  Memory stays
bounded (each limit of transports/tcp.py is hit and counted) and an honest
peer on the same listener keeps exchanging packets meanwhile.

No timing assertions: waits are bounded polls; the limits are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from l2session.transports.framing import (
    MAX_FRAME,
    REFUSE_CONNECTIONS,
    encode_hello,
    encode_refuse,
)
from l2session.transports.tcp import TcpTransport

T = TypeVar("T")
HOST = "127.0.0.1"


class Listener:
    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        self.packets.append(data)

    def path_up(self, address: str, path: str) -> None:
        pass

    def path_down(self, address: str, path: str, reason: str) -> None:
        pass


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def until(ready: Callable[[], bool], what: str, limit: float = 15.0) -> None:
    for _ in range(int(limit / 0.01)):
        if ready():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def hostile(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP client that has sent a valid HELLO (a HELLO proves nothing)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(encode_hello(0))
    await writer.drain()
    return reader, writer


async def reset(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed or reset this connection (bounded wait)."""
    try:
        for _ in range(200):
            if not await asyncio.wait_for(reader.read(65536), 10):
                return True
    except (ConnectionError, TimeoutError):
        return True
    return False


async def honest_exchange(server: TcpTransport, got: Listener, count: int) -> None:
    """A real transport sends ``count`` packets to ``server``; all arrive."""
    client = TcpTransport(listen=False)
    await client.start(Listener(), HOST, 0)
    before = len(got.packets)
    for i in range(count):
        client.send(f"{HOST}:{server.local_port}", b"honest %d" % i)
    await until(lambda: len(got.packets) >= before + count, "the honest packets")
    await client.close()


def test_a_slow_drip_frame_is_reset_and_honest_traffic_flows() -> None:
    async def main() -> None:
        got = Listener()
        server = TcpTransport(frame_timeout=0.5)
        port = await server.start(got, HOST, 0)
        reader, writer = await hostile(port)
        writer.write(struct.pack(">I", 50_000))  # a frame that will crawl
        drip = asyncio.create_task(drip_forever(writer))
        await honest_exchange(server, got, 100)
        assert await reset(reader)
        drip.cancel()
        assert server.stats.extra.get("slow_frames") == 1
        assert server._buffered == 0
        assert len(got.packets) == 100  # the drip delivered nothing
        writer.close()
        await server.close()

    async def drip_forever(writer: asyncio.StreamWriter) -> None:
        for _ in range(1000):
            writer.write(b"x")
            await asyncio.sleep(0.05)

    run(main())


def test_incomplete_frames_cannot_hold_more_than_the_buffer_limit() -> None:
    limit = 100_000

    async def main() -> None:
        got = Listener()
        server = TcpTransport(max_buffered_bytes=limit)
        port = await server.start(got, HOST, 0)
        peers = [await hostile(port) for _ in range(6)]
        for _reader, writer in peers:
            writer.write(struct.pack(">I", 60_000) + b"y" * 40_000)  # never finished
            await writer.drain()
        resets = 0
        for reader, _writer in peers:
            if await reset_soon(reader):
                resets += 1
        assert server._buffered <= limit
        assert resets >= 4  # only two 40 kB halves fit under 100 kB
        assert server.stats.extra.get("buffer_full", 0) == resets
        await honest_exchange(server, got, 50)
        for _reader, writer in peers:
            writer.close()
        await server.close()

    run(main())


async def reset_soon(reader: asyncio.StreamReader) -> bool:
    """Reset within a second, or still open (a kept connection)."""
    try:
        data = await asyncio.wait_for(reader.read(65536), 1.0)
        while data:  # the server's own HELLO comes first
            data = await asyncio.wait_for(reader.read(65536), 1.0)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def test_an_oversized_frame_header_is_refused_at_once() -> None:
    async def main() -> None:
        got = Listener()
        server = TcpTransport()
        port = await server.start(got, HOST, 0)
        reader, writer = await hostile(port)
        writer.write(struct.pack(">I", MAX_FRAME + 1))
        assert await reset(reader)
        assert server.stats.malformed == 1
        assert server._buffered == 0
        writer.close()
        await server.close()

    run(main())


def test_connections_beyond_the_limit_are_refused() -> None:
    cap = 8

    async def main() -> None:
        got = Listener()
        server = TcpTransport(max_connections=cap)
        port = await server.start(got, HOST, 0)
        peers = [await hostile(port) for _ in range(3 * cap)]
        await until(lambda: server.stats.accepted == 3 * cap, "every connection seen by the server")
        assert len(server._all) <= cap
        assert server.stats.extra.get("refused", 0) >= 2 * cap
        # A refused connection is told why (a REFUSE frame), then closed.
        refused = 0
        for reader, _writer in peers:
            # Every connection was sent a HELLO or a REFUSE at once.
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                head = await asyncio.wait_for(reader.readexactly(10), 10.0)
                refused += head == encode_refuse(REFUSE_CONNECTIONS)
        assert refused >= 2 * cap
        for _reader, writer in peers:
            writer.close()
        await until(lambda: not server._all, "the hostile connections gone")
        await honest_exchange(server, got, 20)  # room again
        await server.close()

    run(main())
