"""Profiles of the figures issue 18 targets: where the time goes, by layer.

``python benchmarks/profiles/hot_paths.py [--only rtt,throughput,...]``
runs each workload of the benchmarks under :mod:`cProfile` (the same code
paths as the benchmark, at a smaller size) and writes
``benchmarks/profiles/<name>.txt``: a table of the profiled time by layer
(each function's own time, ``tottime``, summed by the package or library
its code lives in), then the top functions by own time and by cumulative
time.  Times are cProfile's (the wall clock: a CPU timer costs a system
call per event, which drowns everything else; on a shared machine the
time other processes had the core falls on functions in proportion to
their own time, so the shares hold while the absolute times grow).
cProfile charges a fixed cost to every Python call, so Python's share is
larger here than without it; the per-event counts (calls per
packet, per message, per session) are exact and are what to compare.
C code that cProfile does not see is charged to its Python caller: the
μTCP transport's ``flush`` includes the ``send`` system call (uvloop's
``write``), ``asyncio.run`` the event loop's own C work.

Workloads:

``rtt``
    ``l2session bench``'s ping-pong (``session_rtt`` over μTCP, 64 B),
    3,000 round trips: the figure ``rtt_ratio`` of ``network.py``.
``throughput``
    ``session_throughput`` over μTCP, 40,000 messages of 1 KiB: ``tcp_ratio``.
``heartbeat``
    One steady heartbeat round of ``sessions.py`` with 3,000 sessions:
    ``heartbeat_round_s_100k`` (per session, it does not depend on N: the
    idle tick is flat).
``durable``
    ``delivery.py``'s stream with SQLite stores and ``durability="power"``,
    20,000 messages of 1 KiB: ``durable_ratio`` (beside it, ``memory``: the
    same stream without stores).
``resume``
    ``resume_samples`` with SQLite, ten resumptions: ``resume_tcp_ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from l2session.cli import bench
from l2session.runtime.node import Node

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent

#: (label, substring of a code path); the first that matches names the layer.
LAYERS: tuple[tuple[str, str], ...] = (
    ("crypto (l2session.crypto)", "/l2session/crypto/"),
    ("wire codec (l2session.wire, codec)", "/l2session/wire/"),
    ("wire codec (l2session.wire, codec)", "/l2session/codec.py"),
    ("session core (l2session.core)", "/l2session/core/"),
    ("store (l2session.store)", "/l2session/store/"),
    ("node runtime (l2session.runtime)", "/l2session/runtime/"),
    ("transport (l2session.transports)", "/l2session/transports/"),
    ("simulated network (l2session.testing)", "/l2session/testing/"),
    ("benchmark harness", "/benchmarks/"),
    # asyncio.run's own time is uvloop's C loop (epoll, socket reads and
    # the callbacks' dispatch), which cProfile cannot see into.
    ("event loop (asyncio.run: uvloop's C loop, epoll, reads)", "/asyncio/runners.py"),
    ("asyncio", "/asyncio/"),
    ("uvloop", "uvloop"),
)


def _load(name: str) -> ModuleType:
    """A sibling benchmark script as a module."""
    spec = importlib.util.spec_from_file_location(f"l2s_profile_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _layer(filename: str, function: str) -> str:
    if filename == "~":  # a builtin: named by what it is a method of
        text = function
        if "sqlite3" in text or "fdatasync" in text or "fsync" in text:
            return "SQLite and fsync (C)"
        if "openssl" in text or "blake3" in text or "X25519" in text or "aead" in text:
            return "crypto primitives (C)"
        if "uvloop" in text or "select" in text or "epoll" in text:
            return "uvloop (C)"
        return "builtins (len, dict, list, struct, ...)"
    for label, part in LAYERS:
        if part in filename:
            return label
    return "other Python"


def layer_table(stats: pstats.Stats, events: int, unit: str) -> str:
    """Own time by layer: seconds, share, and µs per ``unit`` (of ``events``)."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    calls: dict[str, int] = {}
    for (filename, _line, function), (_cc, nc, tottime, _ct, _callers) in raw.items():
        layer = _layer(filename, function)
        totals[layer] = totals.get(layer, 0.0) + tottime
        calls[layer] = calls.get(layer, 0) + nc
    whole = sum(totals.values()) or 1.0
    lines = [
        f"| layer | own time (s) | share | µs per {unit} | calls per {unit} |",
        "|---|---|---|---|---|",
    ]
    for layer, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        lines.append(
            f"| {layer} | {seconds:.3f} | {100 * seconds / whole:.1f} % "
            f"| {1e6 * seconds / events:.1f} | {calls[layer] / events:.1f} |"
        )
    total_calls = sum(calls.values())
    lines.append(
        f"| **all** | {whole:.3f} | 100 % | {1e6 * whole / events:.1f} "
        f"| {total_calls / events:.1f} |"
    )
    return "\n".join(lines)


def _top(stats: pstats.Stats, key: str, count: int) -> str:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(key).print_stats(count)
    text = out.getvalue()
    return text[text.find("   ncalls") :] if "   ncalls" in text else text


def _profile(run: Callable[[], Any]) -> tuple[pstats.Stats, Any, float]:
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    result = run()
    profile.disable()
    return pstats.Stats(profile), result, time.perf_counter() - started


# ----------------------------------------------------------------------
# the workloads: each returns (stats, events, unit, note)


async def hop_rtt(rounds: int, size: int = bench.PING_SIZE, warmup: int = 50) -> list[float]:
    """The round trip's floor with the session's event-loop hand-offs and
    nothing else: raw asyncio TCP, 4-byte length framing, and on each leg
    the hand-offs a session packet takes -- the sender's send to the node's
    pump, the pump to the transport's flush, the receiver's data_received
    to its pump, the pump waking the waiting task -- as empty
    ``call_soon`` callbacks; the echo runs in a task, as the session
    benchmark's does."""
    network = _load("network")
    loop = asyncio.get_running_loop()
    data = bench.payload(size)

    def later(hops: int, then: Callable[[], None]) -> None:
        if hops:
            loop.call_soon(later, hops - 1, then)
        else:
            then()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)
            network._nodelay(transport)
            self.frames = network._Frames()
            self.queue: asyncio.Queue[bytes] = asyncio.Queue()
            self.task = loop.create_task(self.run())

        async def run(self) -> None:
            while True:
                frame = await self.queue.get()
                later(2, partial(self.transport.write, network._frame(frame)))

        def data_received(self, chunk: bytes) -> None:
            for frame in self.frames.feed(chunk):
                later(1, partial(self.queue.put_nowait, frame))

        def connection_lost(self, exc: Exception | None) -> None:
            self.task.cancel()

    class Ping(asyncio.Protocol):
        waiter: asyncio.Future[bytes] | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            network._nodelay(transport)
            self.frames = network._Frames()

        def data_received(self, chunk: bytes) -> None:
            for frame in self.frames.feed(chunk):
                later(1, partial(self._wake, frame))

        def _wake(self, frame: bytes) -> None:
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)

    server = await loop.create_server(Echo, bench.HOST, 0)
    port = server.sockets[0].getsockname()[1]
    transport, client = await loop.create_connection(Ping, bench.HOST, port)
    samples: list[float] = []
    try:
        for index in range(warmup + rounds):
            started = time.perf_counter()
            client.waiter = waiter = loop.create_future()
            later(2, partial(transport.write, network._frame(data)))
            if await asyncio.wait_for(waiter, bench.TIMEOUT) != data:
                raise RuntimeError("hop floor: the echo differs from the ping")
            if index >= warmup:
                samples.append(time.perf_counter() - started)
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
    return samples


def _rtt() -> tuple[pstats.Stats, int, str, str]:
    network = _load("network")
    rounds = 3000
    bench.run(bench.session_rtt("tcp", 200))  # warm-up, unprofiled
    runs: dict[str, list[float]] = {"raw": [], "hops": [], "session": []}
    for _ in range(3):  # interleaved, medians
        runs["raw"].append(bench.p50(bench.run(network.raw_tcp_rtt(rounds))))
        runs["hops"].append(bench.p50(bench.run(hop_rtt(rounds))))
        runs["session"].append(bench.p50(bench.run(bench.session_rtt("tcp", rounds))))
    raw, hops, session = (1e6 * statistics.median(runs[k]) for k in ("raw", "hops", "session"))
    stats, samples, _ = _profile(lambda: bench.run(bench.session_rtt("tcp", rounds)))
    note = (
        f"{rounds} round trips of 64 B over μTCP, p50, medians of 3 interleaved runs: "
        f"session {session:.0f} µs; raw asyncio TCP (network.py's baseline) {raw:.0f} µs "
        f"(ratio {session / raw:.2f}); raw TCP through the session's hand-offs "
        f"(hop_rtt: three more per leg, the echo in a task) {hops:.0f} µs "
        f"(ratio {session / hops:.2f}).  Under cProfile the session's p50 was "
        f"{1e6 * bench.p50(samples):.0f} µs.  One event = one leg (a packet one way: seal, "
        "send, receive, open, deliver, wake the task)."
    )
    return stats, 2 * rounds, "leg", note


def _throughput() -> tuple[pstats.Stats, int, str, str]:
    messages = 40_000
    bench.run(bench.session_throughput("tcp", 5000))
    unprofiled = bench.run(bench.session_throughput("tcp", messages)).rate
    stats, result, _ = _profile(lambda: bench.run(bench.session_throughput("tcp", messages)))
    note = (
        f"{messages:,} messages of 1 KiB over μTCP; {unprofiled:,.0f}/s unprofiled, "
        f"{result.rate:,.0f}/s under cProfile."
    )
    return stats, messages, "message", note


def _heartbeat() -> tuple[pstats.Stats, int, str, str]:
    import gc

    sessions = _load("sessions")
    n = 3000
    world, _ = sessions._build(n, "profile")
    hub: list[Any] = []
    for start in range(0, n, 100):
        hub += sessions._establish(world, world.peers[start : start + 100])
    world.runtime.run(world.sim.now + sessions.SETTLE)
    sessions._heartbeat_round(world, hub, instrument=False)  # the first round
    gc.freeze()
    plain = [sessions._heartbeat_round(world, hub, instrument=False).cpu_s for _ in range(3)]
    stats, round_, _ = _profile(lambda: sessions._heartbeat_round(world, hub, instrument=False))
    note = (
        f"one steady heartbeat round, {n:,} sessions (both ends in the process); "
        f"{1e6 * min(plain) / n:.0f} µs CPU per session unprofiled (best of 3), "
        f"{1e6 * round_.cpu_s / n:.0f} µs under cProfile; the bare-ratchet floor of one "
        f"exchange: {sessions._heartbeat_floor_us():.1f} µs."
    )
    return stats, n, "session", note


def _stream(durable: bool) -> tuple[pstats.Stats, int, str, str]:
    delivery = _load("delivery")
    messages = 20_000
    with tempfile.TemporaryDirectory(prefix="l2s-profile-", dir=delivery._disk_dir()) as tmp:
        directory = Path(tmp)

        def once(index: int) -> Any:
            if durable:
                return delivery.durable_stream(1024, messages, directory, index, "power")
            return delivery.stream(1024, messages)

        once(100)
        unprofiled = once(101).rate
        stats, result, _ = _profile(lambda: once(0))
    what = "SQLite stores, durability=power" if durable else "no store"
    note = (
        f"delivery.py's stream, {messages:,} messages of 1 KiB, {what}; "
        f"{unprofiled:,.0f}/s unprofiled, {result.rate:,.0f}/s under cProfile "
        "(store opening and closing are in the profile, not in the benchmark's timer)."
    )
    return stats, messages, "message", note


def _resume() -> tuple[pstats.Stats, int, str, str]:
    """Resumptions with SQLite, each timed as the benchmark times it, with
    every ``fdatasync`` inside that window timed too (the barriers that
    ``durability="power"`` puts before a packet that names stored state)."""
    count = 10
    syncs: list[tuple[float, float, str]] = []  # (start, seconds, file)
    real = os.fdatasync

    def timed(fd: Any) -> None:
        started = time.perf_counter()
        real(fd)
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name if isinstance(fd, int) else "?"
        syncs.append((started, time.perf_counter() - started, name))

    rows: list[tuple[float, list[str], float]] = []

    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="l2s-profile-") as tmp:
            a_path, b_path = Path(tmp) / "a.db", Path(tmp) / "b.db"
            bench._make_store(a_path)
            bench._make_store(b_path)
            async with Node(store=b_path, listen=f"{bench.HOST}:0", paths=("tcp",)) as b:
                a = Node(store=a_path, listen=f"{bench.HOST}:0", paths=("tcp",))
                await a.start()
                try:
                    await a.establish(b.did, b.address, timeout=bench.TIMEOUT)
                    await b.accept(timeout=bench.TIMEOUT)
                    listen = a.address
                    for index in range(count):
                        await a.stop()
                        a = Node(store=a_path, listen=listen, paths=("tcp",))
                        await a.start()
                        t0 = time.perf_counter()
                        restored = a.session(b.did)
                        assert restored is not None
                        await restored.established(bench.TIMEOUT)
                        t1 = time.perf_counter()
                        inside = [(d, f) for s, d, f in syncs if t0 <= s <= t1]
                        rows.append((t1 - t0, [f for _, f in inside], sum(d for d, _ in inside)))
                        restored.send_nowait(b"after resume %d" % index)
                        peer = b.session(a.did)
                        assert peer is not None
                        await peer.receive(timeout=bench.TIMEOUT)
                        await bench.drained(restored, peer)
                finally:
                    await a.stop()

    os.fdatasync = timed
    try:
        bench.run(run())  # timed without the profiler: these are the rows
        timings, rows[:] = list(rows), []
        stats, _, _ = _profile(lambda: bench.run(run()))
    finally:
        os.fdatasync = real
    rows[:] = timings
    lines = [
        "| resumption | ms | fdatasyncs in it (file) | their ms | the rest, ms |",
        "|---|---|---|---|---|",
    ]
    for index, (seconds, files, synced) in enumerate(rows):
        lines.append(
            f"| {index + 1} | {1e3 * seconds:.2f} | {len(files)} ({', '.join(files)}) "
            f"| {1e3 * synced:.2f} "
            f"| {1e3 * (seconds - synced):.2f} |"
        )
    note = (
        f"{count} resumptions over μTCP with SQLite on both sides (durability=power), "
        "timed as network.py times them (from start() returning to established), "
        "without the profiler; every fdatasync is timed and counted in the window it "
        "fell in:\n\n"
        + "\n".join(lines)
        + "\n\nThe layer table below is a second, profiled run of the same loop, restarts "
        "included (store opening, identity loading, binding), which the benchmark's "
        "timer leaves out."
    )
    return stats, count, "resumption", note


WORKLOADS: dict[str, Callable[[], tuple[pstats.Stats, int, str, str]]] = {
    "rtt": _rtt,
    "throughput": _throughput,
    "heartbeat": _heartbeat,
    "durable": lambda: _stream(True),
    "memory": lambda: _stream(False),
    "resume": _resume,
}


def write(name: str) -> Path:
    stats, events, unit, note = WORKLOADS[name]()
    text = "\n\n".join(
        (
            f"# profile: {name}",
            note,
            f"Own time by layer (cProfile tottime; per {unit}: divided by {events:,}):",
            layer_table(stats, events, unit),
            "Top functions by own time:",
            _top(stats, "tottime", 30).rstrip(),
            "Top functions by cumulative time:",
            _top(stats, "cumulative", 30).rstrip(),
        )
    )
    path = HERE / f"{name}.txt"
    # Paths relative to the checkout (and the interpreter's prefix cut),
    # so that the files read the same from any machine.
    text = text.replace(f"{BENCHMARKS.parent}/", "").replace(f"{sys.base_prefix}/", "")
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument(
        "--only", default=",".join(WORKLOADS), help=f"comma-separated ({','.join(WORKLOADS)})"
    )
    args = parser.parse_args(argv)
    names = [name for name in args.only.split(",") if name]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")
    for name in names:
        print(write(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
