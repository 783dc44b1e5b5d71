"""Network benchmark: l2session over μTCP and QUIC against raw TCP and raw QUIC.

What one run measures (``python benchmarks/network.py [--json]``), side by
side with the baselines it is judged against, all on 127.0.0.1:

``establish_tcp_ms`` / ``establish_quic_ms``
    Session establishment p50: two fresh nodes (new identities, never a
    resumption) on one path, from ``a.establish(b.did, b.address)`` until it
    returns (connection, prekey bundle fetch, PQXDH INIT/RESPONSE).
``raw_tcp_connect_ms`` / ``raw_quic_handshake_ms``
    Beside them: a plain asyncio TCP connect (``loop.create_connection``
    returning) and a plain qh3 QUIC handshake (``qh3.asyncio.connect`` to
    ``qh3.asyncio.serve`` until the handshake completes; a fresh self-signed
    ECDSA P-256 certificate, not verified, qh3's default TLS key exchange --
    as the QUIC transport does).  The connect includes qh3's client socket
    set-up and its ``getaddrinfo`` of the literal address.
``resume_tcp_ms`` (target <= 2)
    Resumption p50 over μTCP: a session between two nodes with SQLite
    stores; the initiator node is stopped and started again on the same
    store file and port, and timed from ``start()`` returning (the RESUME is
    built by ``SessionManager.restore()`` inside ``start()`` but leaves in
    the node's first pump) until the restored session is ``established``,
    checked to be by RESUME, not a new PQXDH.  That is the TCP connect,
    HELLO, RESUME, the peer's RESUME_ACK and its processing; store opening
    and port binding are not in it.  ``resume_tcp_core_ms``: the same as
    the session's own transition records see it (``restored from store`` to
    ``resumed``), which also includes building the RESUME.
    ``resume_tcp_mem_ms``: the same with a MemoryStore on each side (no
    SQLite commits on the critical path: the single-use ticket is
    committed on both sides before the RESUME / RESUME_ACK leaves).
``fdatasync_ms`` / ``resume_tcp_floor_ms``
    The baseline of the durable figure: p50 of ``fdatasync`` after a 4 KiB
    append in the directory the stores live in (the disk's barrier
    latency, measured in each repeat), and ``resume_tcp_mem_ms`` plus one
    of them.  With ``durability="power"`` the responder commits the
    consumption of the single-use ticket and syncs it before its
    RESUME_ACK leaves (write-ahead: a crash must not let the ticket be
    used twice); that one barrier is inside the timed window
    (``benchmarks/profiles/resume.txt`` times every ``fdatasync`` of a run
    and shows which file it synced), so resumption with SQLite cannot go
    below this floor on this disk.
``tcp_1k_msgs_per_s`` / ``raw_tcp_1k_msgs_per_s`` / ``tcp_ratio`` (target >= 0.6)
    One session, 1 KiB messages one way: the sender queues N (at most
    ``window`` unacknowledged, ``burst`` per loop iteration), the receiver
    takes them with ``receive_many``; timed from the first send until the
    receiver holds the last.  The baseline: asyncio Protocols over plain TCP
    (TCP_NODELAY), each message one ``write`` of a 4-byte length and the
    payload, in the same bursts, the receiver cutting frames into
    ``bytes``; same N.
``tcp_cpu_us_per_msg`` / ``raw_tcp_cpu_us_per_msg`` / ``tcp_cpu_ratio``
    The same runs in CPU time (``time.process_time``) per message, and
    raw / session: both ends run in this process, so this is the work
    per message whatever share of a core the process got on a shared
    machine (``quic_...`` likewise).
``quic_1k_msgs_per_s`` / ``raw_quic_1k_msgs_per_s`` / ``quic_ratio`` (target >= 0.9)
    The same over QUIC, against raw qh3: ``qh3.asyncio`` connect/serve, one
    bidirectional stream opened with ``create_stream``, each message one
    ``writer.write`` of a length-framed payload, the server protocol
    cutting frames out of ``StreamDataReceived``.  qh3's ``connect`` gives
    the client a socket that batches datagrams (GSO/GRO), but qh3's
    ``serve`` reads one datagram per call and answers each with its own
    transmit.  l2session's QUIC endpoint batches at both ends (qh3's
    batching socket layer for reads and writes, one transmit per
    connection per loop iteration, hence one ACK per burst), so its ratio
    can exceed 1: the baseline is the library as its own asyncio API uses
    it, not the best that can be built on it.
    ``raw_quic_plain_1k_msgs_per_s`` / ``quic_plain_ratio`` repeat the
    baseline with a plain client endpoint, to show what batching is worth.
``rtt_64_us`` / ``raw_rtt_64_us`` / ``rtt_ratio`` (target <= 5)
    64-byte ping-pong round trip p50 over a μTCP session (``b`` echoes
    every message, ``a`` waits for the echo) against the same ping-pong
    over raw asyncio TCP with the same framing.

Both ends of every connection run in this one process on one event loop
(uvloop when installed, for sessions and baselines alike), so throughput is
what one core does for both ends and a round trip includes both ends'
processing; the baselines are measured in the same way in the same run.
Each figure is the median over ``--repeat`` runs, interleaved (session,
baseline, session, ...) so that machine noise hits both alike; latency
figures are the p50 of each run's samples, then that median.  The session
side lives in :mod:`l2session.cli.bench` (``l2session bench`` prints it
alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import ssl
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any, Final, cast

from qh3.asyncio.client import connect as quic_connect
from qh3.asyncio.protocol import QuicConnectionProtocol, QuicStreamHandler
from qh3.asyncio.server import QuicServer
from qh3.asyncio.server import serve as quic_serve
from qh3.quic import events
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection

from l2session.cli import bench
from l2session.transports.certs import generate_self_signed

DEFAULT_MESSAGES: Final = 40_000
HOST: Final = bench.HOST
ALPN: Final = "l2session-bench/raw"
_LEN: Final = struct.Struct(">I")

TARGETS: Final = {
    "resume_tcp_ms": ("<=", 2.0),
    "tcp_ratio": (">=", 0.6),
    "quic_ratio": (">=", 0.9),
    "rtt_ratio": ("<=", 5.0),
}


def _frame(data: bytes) -> bytes:
    return _LEN.pack(len(data)) + data


class _Frames:
    """Cuts 4-byte-length frames out of a byte stream."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        offset, size = 0, len(buffer)
        while size - offset >= 4:
            (length,) = _LEN.unpack_from(buffer, offset)
            end = offset + 4 + length
            if end > size:
                break
            frames.append(bytes(buffer[offset + 4 : end]))
            offset = end
        if offset:
            del buffer[:offset]
        return frames


class _Sink:
    """Counts frames until ``expected`` arrived, then resolves ``done``."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.last = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def take(self, frames: list[bytes]) -> None:
        if frames:
            self.received += len(frames)
            self.last = frames[-1]
            if self.received >= self.expected and not self.done.done():
                self.done.set_result(None)


# ----------------------------------------------------------------------
# raw TCP


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _TcpReceiver(asyncio.Protocol):
    """Server side of the bulk baseline: frames in, counted."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.frames = _Frames()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.sink.take(self.frames.feed(data))


class _TcpEcho(asyncio.Protocol):
    """Server side of the ping-pong baseline: every frame sent back."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        self.frames = _Frames()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        write = self.transport.write
        for frame in self.frames.feed(data):
            write(_frame(frame))


class _TcpPinger(asyncio.Protocol):
    """Client side of the ping-pong baseline: resolves ``waiter`` per echo."""

    def __init__(self) -> None:
        self.frames = _Frames()
        self.waiter: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        for frame in self.frames.feed(data):
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)


class _Quiet(asyncio.Protocol):
    pass


async def raw_tcp_connect(count: int) -> list[float]:
    """Seconds per plain asyncio TCP connect."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Quiet, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    samples: list[float] = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            transport, _ = await loop.create_connection(_Quiet, HOST, port)
            samples.append(time.perf_counter() - t0)
            transport.close()
            await asyncio.sleep(0)
    finally:
        server.close()
        await server.wait_closed()
    return samples


async def raw_tcp_throughput(messages: int, size: int = bench.BULK_SIZE) -> bench.Throughput:
    loop = asyncio.get_running_loop()
    data = bench.payload(size)
    sink = _Sink(messages)
    server = await loop.create_server(lambda: _TcpReceiver(sink), HOST, 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(_Quiet, HOST, port)
    try:
        _nodelay(transport)
        cpu0, t0 = time.process_time(), time.perf_counter()
        write, sent = transport.write, 0
        while sent < messages:
            for _ in range(min(bench.BURST, messages - sent)):
                write(_LEN.pack(size) + data)
            sent = min(messages, sent + bench.BURST)
            await asyncio.sleep(0)
        await asyncio.wait_for(sink.done, bench.TIMEOUT)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
    if sink.received != messages or sink.last != data:
        raise RuntimeError(f"raw TCP: received {sink.received} of {messages}")
    return bench.Throughput(messages, seconds, cpu)


async def raw_tcp_rtt(rounds: int, size: int = bench.PING_SIZE, warmup: int = 50) -> list[float]:
    loop = asyncio.get_running_loop()
    data = bench.payload(size)
    server = await loop.create_server(_TcpEcho, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    transport, client = await loop.create_connection(_TcpPinger, HOST, port)
    samples: list[float] = []
    try:
        for index in range(warmup + rounds):
            t0 = time.perf_counter()
            client.waiter = waiter = loop.create_future()
            transport.write(_frame(data))
            answer = await asyncio.wait_for(waiter, bench.TIMEOUT)
            elapsed = time.perf_counter() - t0
            if answer != data:
                raise RuntimeError("raw TCP: the echo differs from the ping")
            if index >= warmup:
                samples.append(elapsed)
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
    return samples


# ----------------------------------------------------------------------
# raw QUIC (qh3's own asyncio layer)


def _quic_configurations() -> tuple[QuicConfiguration, QuicConfiguration]:
    certificate = generate_self_signed()
    server = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    server.load_cert_chain(certificate.certificate_pem, certificate.private_key_pem)
    client = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE)
    return server, client


class _QuicReceiver(QuicConnectionProtocol):
    """Server side of the bulk baseline: frames on any stream, counted."""

    def __init__(
        self, quic: QuicConnection, stream_handler: QuicStreamHandler | None = None, *, sink: _Sink
    ) -> None:
        super().__init__(quic, stream_handler)
        self.sink = sink
        self.frames = _Frames()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            self.sink.take(self.frames.feed(event.data))
        else:
            super().quic_event_received(event)


def _port(server: QuicServer) -> int:
    transport = server._transport
    if transport is None:
        raise RuntimeError("the qh3 server is not listening")
    return int(transport.get_extra_info("sockname")[1])


def _close(server: QuicServer) -> None:
    server.close()  # type: ignore[no-untyped-call]


async def raw_quic_handshake(count: int) -> list[float]:
    """Seconds per plain qh3 connect (handshake complete)."""
    server_config, client_config = _quic_configurations()
    server = await quic_serve(HOST, 0, configuration=server_config)
    port = _port(server)
    samples: list[float] = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            async with quic_connect(HOST, port, configuration=client_config):
                samples.append(time.perf_counter() - t0)
    finally:
        _close(server)
    return samples


async def raw_quic_throughput(
    messages: int, size: int = bench.BULK_SIZE, *, optimized: bool = True
) -> bench.Throughput:
    """1 KiB messages over one qh3 stream.  ``optimized``: the client from
    ``qh3.asyncio.connect``, whose socket batches datagrams (GSO/GRO where
    the kernel has them); else a client on a plain asyncio datagram
    endpoint, as qh3's server uses."""
    data = bench.payload(size)
    sink = _Sink(messages)
    server_config, client_config = _quic_configurations()

    def receiver(quic: QuicConnection, stream_handler: QuicStreamHandler | None = None) -> Any:
        return _QuicReceiver(quic, stream_handler, sink=sink)

    server = await quic_serve(HOST, 0, configuration=server_config, create_protocol=receiver)
    port = _port(server)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if optimized:
                client = await stack.enter_async_context(
                    quic_connect(HOST, port, configuration=client_config)
                )
            else:
                client = await stack.enter_async_context(_plain_quic_client(port, client_config))
            _, writer = await client.create_stream()
            cpu0, t0 = time.process_time(), time.perf_counter()
            write, sent = writer.write, 0
            while sent < messages:
                for _ in range(min(bench.BURST, messages - sent)):
                    write(_LEN.pack(size) + data)
                sent = min(messages, sent + bench.BURST)
                await asyncio.sleep(0)
            await asyncio.wait_for(sink.done, bench.TIMEOUT)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            writer.close()  # FIN on the stream
    finally:
        _close(server)
    if sink.received != messages or sink.last != data:
        raise RuntimeError(f"raw QUIC: received {sink.received} of {messages}")
    return bench.Throughput(messages, seconds, cpu)


@contextlib.asynccontextmanager
async def _plain_quic_client(
    port: int, configuration: QuicConfiguration
) -> AsyncIterator[QuicConnectionProtocol]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        lambda: QuicConnectionProtocol(QuicConnection(configuration=configuration)),
        local_addr=(HOST, 0),
    )
    try:
        client.connect((HOST, port))
        await asyncio.wait_for(client.wait_connected(), bench.TIMEOUT)
        yield client
    finally:
        client.close()
        transport.close()


# ----------------------------------------------------------------------
# the run


def fdatasync_samples(count: int) -> list[float]:
    """Seconds per ``fdatasync`` of a 4 KiB append, in the directory the
    resumption's stores live in (the system temporary directory): the
    disk's own barrier latency, the floor of a durable commit."""
    block = bytes(4096)
    samples: list[float] = []
    with tempfile.NamedTemporaryFile(prefix="l2session-bench-sync-") as file:
        sync = getattr(os, "fdatasync", os.fsync)
        for _ in range(count):
            file.write(block)
            file.flush()
            t0 = time.perf_counter()
            sync(file.fileno())
            samples.append(time.perf_counter() - t0)
    return samples


async def measure(messages: int, repeat: int, connects: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        runs.setdefault(key, []).append(value)

    def ms(samples: list[float]) -> float:
        return 1e3 * statistics.median(samples)

    for _ in range(repeat):
        for path in ("tcp", "quic"):
            add(
                f"establish_{path}_ms",
                ms([await bench.establish_once(path) for _ in range(connects)]),
            )
        add("raw_tcp_connect_ms", ms(await raw_tcp_connect(connects)))
        add("raw_quic_handshake_ms", ms(await raw_quic_handshake(connects)))
        resumptions = await bench.resume_samples(connects)
        add("resume_tcp_ms", ms([r.seconds for r in resumptions]))
        add("resume_tcp_core_ms", ms([r.core_seconds for r in resumptions]))
        resumptions = await bench.resume_samples(connects, durable=False)
        add("resume_tcp_mem_ms", ms([r.seconds for r in resumptions]))
        add("fdatasync_ms", ms(fdatasync_samples(connects)))
        for name, measure_one in (
            ("tcp_1k", partial(bench.session_throughput, "tcp", messages)),
            ("raw_tcp_1k", partial(raw_tcp_throughput, messages)),
            ("quic_1k", partial(bench.session_throughput, "quic", messages)),
            ("raw_quic_1k", partial(raw_quic_throughput, messages)),
            ("raw_quic_plain_1k", partial(raw_quic_throughput, messages, optimized=False)),
        ):
            result = await measure_one()
            add(f"{name}_msgs_per_s", result.rate)
            add(f"{name}_cpu_us_per_msg", 1e6 * result.cpu_seconds / result.messages)
        add("rtt_64_us", 1e3 * ms(await bench.session_rtt("tcp", rounds)))
        add("raw_rtt_64_us", 1e3 * ms(await raw_tcp_rtt(rounds)))

    fig = {key: statistics.median(values) for key, values in runs.items()}
    out: dict[str, Any] = {}
    for key in (
        "establish_tcp_ms",
        "establish_quic_ms",
        "raw_tcp_connect_ms",
        "raw_quic_handshake_ms",
        "resume_tcp_ms",
        "resume_tcp_core_ms",
        "resume_tcp_mem_ms",
        "fdatasync_ms",
    ):
        out[key] = round(fig[key], 3)
    # One barrier stands on the path with durability="power" (see the
    # module docstring): what resumption cannot go below on this disk.
    out["resume_tcp_floor_ms"] = round(fig["resume_tcp_mem_ms"] + fig["fdatasync_ms"], 3)
    for path in ("tcp", "quic"):
        session, raw = fig[f"{path}_1k_msgs_per_s"], fig[f"raw_{path}_1k_msgs_per_s"]
        out[f"{path}_1k_msgs_per_s"] = round(session)
        out[f"raw_{path}_1k_msgs_per_s"] = round(raw)
        out[f"{path}_ratio"] = round(session / raw, 3)
        cpu, raw_cpu = fig[f"{path}_1k_cpu_us_per_msg"], fig[f"raw_{path}_1k_cpu_us_per_msg"]
        out[f"{path}_cpu_us_per_msg"] = round(cpu, 2)
        out[f"raw_{path}_cpu_us_per_msg"] = round(raw_cpu, 2)
        out[f"{path}_cpu_ratio"] = round(raw_cpu / cpu, 3)
    plain = fig["raw_quic_plain_1k_msgs_per_s"]
    out["raw_quic_plain_1k_msgs_per_s"] = round(plain)
    out["quic_plain_ratio"] = round(fig["quic_1k_msgs_per_s"] / plain, 3)
    out["rtt_64_us"] = round(fig["rtt_64_us"], 1)
    out["raw_rtt_64_us"] = round(fig["raw_rtt_64_us"], 1)
    out["rtt_ratio"] = round(fig["rtt_64_us"] / fig["raw_rtt_64_us"], 3)
    out["targets"] = {
        key: {
            "target": f"{op} {bound}",
            "met": out[key] <= bound if op == "<=" else out[key] >= bound,
        }
        for key, (op, bound) in TARGETS.items()
    }
    out.update(
        messages=messages,
        repeat=repeat,
        connects=connects,
        rtt_rounds=rounds,
        window=bench.WINDOW,
        burst=bench.BURST,
        loop=bench.loop_name(),
    )
    return out


def _table(figures: dict[str, Any]) -> str:
    shown = {k: v for k, v in figures.items() if k != "targets"}
    width = max(len(key) for key in shown)
    lines = [f"{key:<{width}}  {value}" for key, value in shown.items()]
    for key, target in figures["targets"].items():
        verdict = "met" if target["met"] else "MISSED"
        lines.append(f"target: {key} {target['target']}: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--messages",
        type=int,
        default=DEFAULT_MESSAGES,
        help="messages per throughput run (40,000)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure, median (5)")
    parser.add_argument(
        "--connects", type=int, default=10, help="establishments/handshakes per run, p50 (10)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="ping-pongs per run, p50 (min(messages, 2,000))"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else min(args.messages, 2_000)
    if min(args.messages, args.repeat, args.connects, rounds) < 1:
        parser.error("--messages, --repeat, --connects and --rounds must be positive")
    figures = bench.run(measure(args.messages, args.repeat, args.connects, rounds))
    print(json.dumps(figures) if args.json else _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
