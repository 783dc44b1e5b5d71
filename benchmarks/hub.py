"""Hub benchmark: one hub process and N real peers over loopback sockets,
μTCP and QUIC, each beside a raw baseline measured in the same run.

``python benchmarks/hub.py [--json] [--quick] [--n 1000,10000] [--transports tcp,quic]
[--durability power|process] [--hub-limits tcp_listen_backlog=100,...]``

One run, per transport and per N:

* the **hub** (``--role hub``): one process, one :class:`Node` on
  127.0.0.1 with a SQLite store (as a busy node runs), one path (the
  transport measured), default :class:`NodeLimits` and
  :class:`SessionConfig`; it accepts every session and reads every
  message.
* the **peers** (``--role clients``): ``--client-procs`` processes, each
  hosting its share of N client Nodes, every one on its own loopback
  address (127.a.b.c) with its own identity and no store.  They are built
  and listening before the clock starts (identity, sockets and, for QUIC,
  a certificate per node; then ``gc.freeze()``, so that the collector
  does not stall a process holding thousands of Nodes); then each process
  establishes its nodes with at most ``--inflight`` attempts in flight.
  Peers run without a QUIC stall watch (runtime/stall.py) and with
  one-time-prekey pools of 0: what they would spend on those is client
  cost, not the hub's.
* the **baseline** (same roles, ``--mode raw``): the same N addresses and
  processes, but plain connections and no sessions -- asyncio TCP
  connections (4-byte length framing, an 8-byte keepalive every 30 s
  answered by the hub, as a heartbeat would be) for μTCP; for QUIC, qh3
  connections through the project's QUIC endpoint (``QuicTransport``: one
  UDP socket per node, qh3 underneath, frames on one stream; no session
  layer), with the same keepalive.

Figures (``--json``: one object; each ``<figure>`` is given per
``<transport>_<N>`` and ``raw_<transport>_<N>``):

``established`` / ``failed_first_attempts`` (target: all, 0)
    Peers whose first ``establish`` (baseline: connect) returned, and those
    whose first one raised; ``failure_reasons``: their errors by kind.
    ``listen_overflows_establish``: connections the kernel dropped because
    a listener's accept queue was full (TcpExt ListenOverflows over the
    establishment, every process in this network namespace: a hint only
    on a shared machine).
``establish_per_s`` (target >= 300 at 10,000)
    At the hub: sessions accepted per second, from its first to its last
    (``(N - 1) / (t_last - t_first)``).  ``establish_wall_s``: from "go" to
    the last peer done, as the peers saw it.
``rss_per_session_kb`` (target <= 20 over μTCP, <= 40 over QUIC)
    Hub RSS once every peer is established (after a ``gc.collect``), minus
    its RSS before the first peer arrived, over N.
``idle_cpu_ms_per_30s`` / ``idle_cpu_share`` (target share <= 0.05)
    Hub CPU time (user + system) over ``--idle`` seconds (30) of idleness,
    scaled to 30 s, and as a share of one core.  ``clients_idle_cpu_share``:
    the peers' processes together over the same window.
``msg_cpu_us`` / ``delivered`` / ``sent``
    Every peer sends one 100-byte message every 10 s for ``--msg-window``
    seconds (60), spread evenly; ``msg_cpu_us`` is the hub's CPU over the
    window and a drain (until every sent message arrived, at most 20 s)
    beyond its idle rate, per message delivered; ``msg_cpu_us_gross``
    without subtracting idleness.  ``delivered`` / ``sent``: messages the
    hub read / the peers sent.  ``clients_msg_cpu_share``: the peers'
    share of one core in that window.
``hub_cpu_share_establish`` / ``clients_cpu_share_establish``
    CPU shares of the hub and of the peers' processes together during
    establishment: which side was the bottleneck.
    ``hub_runqueue_wait_share_establish``: the share of that time the
    hub's event loop was runnable but waiting for a CPU (schedstat): on a
    shared machine, what held it back.  ``establish_per_hub_cpu_s``:
    sessions established per second of hub CPU -- the rate one core would
    sustain were the hub alone on it.
``hub_stalls_establish`` / ``clients_stalls_establish``
    While establishing (l2session only): the longest event-loop lag (how
    late a 50 ms ticker ran), the longest garbage-collector pause and the
    GC time in all, of the hub and of the worst peer process.  A loop
    stalled past the peers' 5 s handshake timeout fails the attempts it
    holds however fast the other side answered.
``admission``
    The hub's admission counters after establishment (l2session only).

``--quick`` runs N = 200 with a 5 s idle window and a 10 s message window
(the test suite runs a smaller one still).
Everything shares the machine: two cores, the peers' processes included;
compare each figure with its baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
PAYLOAD = b"m" * 100
KEEPALIVE = b"k" * 8
KEEPALIVE_EVERY = 30.0
MSG_EVERY = 10.0
CLK = os.sysconf("SC_CLK_TCK")


#: File descriptors wanted: the hub holds two μTCP connections per peer
#: (its own and the one dialled back for the BUNDLE), 20,000 at N = 10,000.
WANT_NOFILE = 65_536


def _raise_nofile() -> None:
    """At least WANT_NOFILE descriptors if the process may raise its hard
    limit (root), else as many as the hard limit allows (a peer holds two
    or three, the hub two per μTCP peer)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        if hard != resource.RLIM_INFINITY and hard < WANT_NOFILE:
            resource.setrlimit(resource.RLIMIT_NOFILE, (WANT_NOFILE, WANT_NOFILE))
            return
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def address_of(index: int) -> str:
    """The loopback address of peer ``index`` (127.0.0.1 is the hub)."""
    return f"127.{1 + index // 62_500}.{(index // 250) % 250}.{index % 250 + 1}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's main thread spent runnable but waiting for a CPU
    (/proc/<pid>/schedstat): how much a shared machine held it back."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listener's
    accept queue was full (TcpExt ListenOverflows, this network namespace:
    every process in it, so only a hint on a shared machine)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            table = dict(zip(head.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ----------------------------------------------------------------------
# stalls: what keeps a process's event loop from running


class Stalls:
    """The longest event-loop lag (a 50 ms ticker's lateness) and the
    garbage collector's pauses in this process since :meth:`reset`: a
    process whose loop stalls past a handshake timeout fails its pending
    attempts however fast the other side answered (libuv runs expired
    timers before it polls for the answers)."""

    def __init__(self) -> None:
        self.reset()
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def reset(self) -> dict[str, Any]:
        self.max_lag = 0.0
        self.gc_pauses = 0
        self.gc_total = 0.0
        self.gc_max = 0.0
        return {}

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.gc_pauses += 1
        self.gc_total += pause
        self.gc_max = max(self.gc_max, pause)

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.05)
            self.max_lag = max(self.max_lag, loop.time() - before - 0.05)

    def snapshot(self) -> dict[str, float]:
        return {
            "max_loop_lag_s": round(self.max_lag, 3),
            "gc_max_pause_s": round(self.gc_max, 3),
            "gc_total_s": round(self.gc_total, 3),
        }


STALLS: Stalls | None = None


def _stalls() -> Stalls:
    """This process's stall watch, started on first use (in the loop)."""
    global STALLS
    if STALLS is None:
        STALLS = Stalls()
        task = asyncio.get_running_loop().create_task(STALLS.watch())
        _KEEP.add(task)
    return STALLS


_KEEP: set[asyncio.Task[None]] = set()


# ----------------------------------------------------------------------
# the control channel: one JSON line per command and per answer


async def _stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _serve(handlers: dict[str, Callable[..., Any]]) -> None:
    commands = await _stdin()
    while True:
        line = await commands.readline()
        if not line:
            return
        request = json.loads(line)
        name = request.pop("cmd")
        if name == "quit":
            _say({"ok": True})
            return
        result = handlers[name](**request)
        if asyncio.iscoroutine(result):
            result = await result
        _say(result or {})


# ----------------------------------------------------------------------
# the hub


def _profiling() -> dict[str, Callable[..., Any]]:
    """``prof_on`` / ``prof_off(path)``: cProfile (CPU time) one window."""
    import cProfile

    profiler = cProfile.Profile(time.process_time)

    def on() -> dict[str, Any]:
        profiler.enable()
        return {}

    def off(path: str) -> dict[str, Any]:
        profiler.disable()
        profiler.dump_stats(path)
        return {}

    return {"prof_on": on, "prof_off": off}


class HubCounters:
    def __init__(self) -> None:
        self.accepted = 0
        self.t_first = 0.0
        self.t_last = 0.0
        self.delivered = 0

    def accept(self) -> None:
        now = time.monotonic()
        if not self.accepted:
            self.t_first = now
        self.accepted += 1
        self.t_last = now

    def snapshot(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "t_first": self.t_first,
            "t_last": self.t_last,
            "delivered": self.delivered,
        }


async def hub_l2s(transport: str, durability: str = "power", limits: str = "") -> None:
    from l2session.runtime.limits import NodeLimits
    from l2session.runtime.node import Node

    changed = dict(item.split("=", 1) for item in limits.split(",") if item)
    kinds = {f.name: f.type for f in dataclasses.fields(NodeLimits)}
    values: dict[str, Any] = {
        k: float(v) if kinds[k] == "float" else int(v) for k, v in changed.items()
    }
    node_limits = NodeLimits(**values)

    counters = HubCounters()
    readers: set[asyncio.Task[None]] = set()
    with tempfile.TemporaryDirectory(prefix="l2s-hub-") as tmp:
        async with Node(
            store=Path(tmp) / "hub.db",
            listen="127.0.0.1:0",
            paths=(transport,),
            durability=durability,  # type: ignore[arg-type]
            limits=node_limits,
        ) as node:

            async def read(handle: Any) -> None:
                with contextlib.suppress(Exception):
                    while True:
                        got = await handle.receive_many()
                        counters.delivered += len(got)

            async def accept() -> None:
                while True:
                    handle = await node.accept()
                    counters.accept()
                    task = asyncio.create_task(read(handle))
                    readers.add(task)
                    task.add_done_callback(readers.discard)

            acceptor = asyncio.create_task(accept())

            stalls = _stalls()

            def stats() -> dict[str, Any]:
                out = counters.snapshot()
                out["stalls"] = stalls.snapshot()
                out["admission"] = node.manager.admission.snapshot()
                out["rejections"] = dict(node.manager.rejections)
                out["sessions"] = len(node.manager.sessions)
                out["transport"] = dataclasses.asdict(node.transports[transport].stats)
                return out

            _say({"ready": True, "address": node.address, "did": node.did})
            await _serve(
                {
                    "stats": stats,
                    "gc": lambda: {"collected": gc.collect()},
                    "stalls_reset": stalls.reset,
                    **_profiling(),
                }
            )
            acceptor.cancel()


class _RawTcpHub(asyncio.Protocol):
    def __init__(self, counters: HubCounters) -> None:
        self.counters = counters
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.counters.accept()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while len(buffer) >= 4:
            size = int.from_bytes(buffer[:4], "big")
            if len(buffer) < 4 + size:
                break
            frame, buffer = buffer[4 : 4 + size], buffer[4 + size :]
            if frame == KEEPALIVE:
                self.transport.write(len(KEEPALIVE).to_bytes(4, "big") + KEEPALIVE)
            else:
                self.counters.delivered += 1
        self.buffer = buffer


async def hub_raw(transport: str) -> None:
    counters = HubCounters()
    if transport == "tcp":
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _RawTcpHub(counters), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _say({"ready": True, "address": f"127.0.0.1:{port}", "did": ""})
        await _serve({"stats": counters.snapshot, "gc": lambda: {"collected": gc.collect()}})
        server.close()
        return
    from l2session.transports.quic import QuicTransport

    quic = QuicTransport(idle_timeout=90.0, max_connections=1 << 20)

    class Listener:
        def packet_received(self, data: bytes, address: str, path: str) -> None:
            if data == KEEPALIVE:
                quic.send(address, KEEPALIVE)
            else:
                counters.delivered += 1

        def path_up(self, address: str, path: str) -> None:
            counters.accept()

        def path_down(self, address: str, path: str, reason: str) -> None:
            pass

    port = await quic.start(Listener(), "127.0.0.1", 0)
    _say({"ready": True, "address": f"127.0.0.1:{port}", "did": ""})
    await _serve({"stats": counters.snapshot, "gc": lambda: {"collected": gc.collect()}})
    await quic.close()


# ----------------------------------------------------------------------
# the peers


#: Why first attempts failed in this process: "Type: message start" -> count.
FAILURES: dict[str, int] = {}


async def _bounded(jobs: list[Callable[[], Any]], inflight: int) -> list[bool]:
    """Run ``jobs`` with at most ``inflight`` at once; which succeeded."""
    results = [False] * len(jobs)
    queue = list(enumerate(jobs))
    queue.reverse()

    async def worker() -> None:
        while queue:
            index, job = queue.pop()
            try:
                await job()
                results[index] = True
            except Exception as error:  # a failed first attempt: counted
                print(f"peer {index}: {type(error).__name__}: {error}", file=sys.stderr)
                why = f"{type(error).__name__}: {str(error)[:80]}"
                FAILURES[why] = FAILURES.get(why, 0) + 1

    await asyncio.gather(*(worker() for _ in range(inflight)))
    return results


async def _send_schedule(send: list[Callable[[], None]], window: float) -> int:
    """Each sender sends every MSG_EVERY seconds for ``window`` seconds,
    the senders spread evenly over the period; the number sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = len(send)
    rounds = int(window / MSG_EVERY)
    sent = 0
    for r in range(rounds):
        for i, fn in enumerate(send):
            at = start + r * MSG_EVERY + MSG_EVERY * i / max(1, count)
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                fn()
                sent += 1
            except Exception as error:
                print(f"send failed: {error}", file=sys.stderr)
    return sent


async def clients_l2s(
    transport: str, hub: str, hub_did: str, first: int, count: int, inflight: int
) -> None:
    from l2session.crypto.rng import SeededRandom
    from l2session.identity.identity import Identity
    from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
    from l2session.runtime.node import Node
    from l2session.store.memory import MemoryStore

    rng = SeededRandom(f"hub peers {first}")
    policy = PrekeyPolicy(one_time_pool_size=0, one_time_refill_threshold=0)
    nodes: list[Node] = []
    for index in range(first, first + count):
        identity = Identity.generate(rng)
        store = MemoryStore()
        store.put_prekeys(
            PrekeyStore.create(identity, rng=rng, now=time.time(), policy=policy).to_bytes()
        )
        store.commit()
        node = Node(
            identity,
            store=store,
            listen=f"{address_of(index)}:0",
            paths=(transport,),
            quic_stall_timeout=None,
        )
        await node.start()
        nodes.append(node)
    # The peers are the load, not what is measured: with 3,333 Nodes a
    # process holds ~1.8 million objects and a full collection stalls it
    # ~1.8 s (more while it waits for a CPU), failing every attempt it has
    # in flight once the stall passes the 5 s handshake timeout (libuv runs
    # expired timers before it reads the answers).  Freezing what was built
    # keeps the collector off it; the hub is left as an operator runs it.
    gc.freeze()
    handles: list[Any] = []

    stalls = _stalls()

    async def go() -> dict[str, Any]:
        started = time.monotonic()
        stalls.reset()

        def job(node: Node) -> Callable[[], Any]:
            async def run() -> None:
                handles.append(await node.establish(hub_did, hub, timeout=60))

            return run

        results = await _bounded([job(n) for n in nodes], inflight)
        return {
            "ok": sum(results),
            "failed": len(results) - sum(results),
            "wall": time.monotonic() - started,
            "why": FAILURES,
            "stalls": stalls.snapshot(),
        }

    async def msgs(window: float) -> dict[str, Any]:
        sent = await _send_schedule([partial(h.send_nowait, PAYLOAD) for h in handles], window)
        return {"sent": sent}

    _say({"ready": True})
    await _serve({"go": go, "msgs": msgs})
    for node in nodes:
        with contextlib.suppress(Exception):
            await node.stop()


class _RawTcpPeer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        pass  # keepalive answers

    def send(self, frame: bytes) -> None:
        self.transport.write(len(frame).to_bytes(4, "big") + frame)


async def clients_raw(transport: str, hub: str, first: int, count: int, inflight: int) -> None:
    loop = asyncio.get_running_loop()
    host, port = hub.rsplit(":", 1)
    senders: list[Callable[[bytes], None]] = []
    quics: list[Any] = []
    keepalive: asyncio.Task[None] | None = None
    if transport == "quic":
        from l2session.transports.quic import QuicTransport

        class Quiet:
            def packet_received(self, data: bytes, address: str, path: str) -> None:
                pass

            def path_up(self, address: str, path: str) -> None:
                pass

            def path_down(self, address: str, path: str, reason: str) -> None:
                pass

        for index in range(first, first + count):
            quic = QuicTransport(idle_timeout=90.0)
            await quic.start(Quiet(), address_of(index), 0)
            quics.append(quic)

    async def go() -> dict[str, Any]:
        started = time.monotonic()
        if transport == "tcp":

            def job(index: int) -> Callable[[], Any]:
                async def run() -> None:
                    _, peer = await loop.create_connection(
                        _RawTcpPeer, host, int(port), local_addr=(address_of(index), 0)
                    )
                    senders.append(peer.send)

                return run

            results = await _bounded([job(i) for i in range(first, first + count)], inflight)
        else:

            def qjob(quic: Any) -> Callable[[], Any]:
                async def run() -> None:
                    quic.send(hub, KEEPALIVE)
                    for _ in range(6000):  # bounded: 60 s
                        if quic.is_connected(hub):
                            break
                        await asyncio.sleep(0.01)
                    else:
                        raise TimeoutError("no QUIC connection within 60 s")
                    senders.append(partial(quic.send, hub))

                return run

            results = await _bounded([qjob(q) for q in quics], inflight)

        async def keep() -> None:
            while True:
                await _send_schedule([partial(s, KEEPALIVE) for s in senders], KEEPALIVE_EVERY)

        nonlocal keepalive
        keepalive = asyncio.create_task(keep())
        return {
            "ok": sum(results),
            "failed": len(results) - sum(results),
            "wall": time.monotonic() - started,
            "why": FAILURES,
        }

    async def msgs(window: float) -> dict[str, Any]:
        sent = await _send_schedule([partial(s, PAYLOAD) for s in senders], window)
        return {"sent": sent}

    _say({"ready": True})
    await _serve({"go": go, "msgs": msgs})
    if keepalive is not None:
        keepalive.cancel()
    for quic in quics:
        with contextlib.suppress(Exception):
            await quic.close()


# ----------------------------------------------------------------------
# the orchestrator


class Child:
    def __init__(self, *args: str) -> None:
        self.label = " ".join(args[:4])
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def read(self, timeout: float = 600.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child {self.label} exited with {self.proc.wait(timeout)}")
        return json.loads(line)  # type: ignore[no-any-return]

    def send(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        self.send(cmd, **args)
        return self.read()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("quit")
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def scenario(mode: str, transport: str, n: int, opts: argparse.Namespace) -> dict[str, Any]:
    hub = Child(
        "--role", "hub", "--mode", mode, "--transport", transport,
        "--durability", opts.durability, "--hub-limits", opts.hub_limits,
    )  # fmt: skip
    clients: list[Child] = []
    try:
        ready = hub.read()
        procs = max(1, min(opts.client_procs, n))
        share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        first = 0
        for count in share:
            clients.append(
                Child(
                    "--role", "clients", "--mode", mode, "--transport", transport,
                    "--hub", ready["address"], "--hub-did", ready["did"],
                    "--first", str(first), "--count", str(count),
                    "--inflight", str(opts.inflight),
                )
            )  # fmt: skip
            first += count
        for client in clients:
            client.read()  # built and listening
        hub.ask("gc")
        rss_before = rss_kb(hub.proc.pid)
        pids = [c.proc.pid for c in clients]

        def clients_cpu() -> float:
            return sum(cpu_seconds(p) for p in pids)

        hub_cpu0, clients_cpu0, t0 = cpu_seconds(hub.proc.pid), clients_cpu(), time.monotonic()
        hub_wait0 = runqueue_wait_seconds(hub.proc.pid)
        overflows0 = listen_overflows()
        if mode == "l2s":
            hub.ask("stalls_reset")
        for client in clients:
            client.send("go")
        answers = [client.read(1200) for client in clients]
        wall = time.monotonic() - t0
        hub_cpu1, clients_cpu1 = cpu_seconds(hub.proc.pid), clients_cpu()
        hub_wait1 = runqueue_wait_seconds(hub.proc.pid)
        overflows = listen_overflows() - overflows0
        why: dict[str, int] = {}
        for answer in answers:
            for reason, count in answer.get("why", {}).items():
                why[reason] = why.get(reason, 0) + count
        time.sleep(2.0)  # the last FINISHes are processed
        hub.ask("gc")
        stats = hub.ask("stats")
        established = sum(a["ok"] for a in answers)
        rss_after = rss_kb(hub.proc.pid)
        out: dict[str, Any] = {
            "established": established,
            "failed_first_attempts": sum(a["failed"] for a in answers),
            "failure_reasons": why,
            "listen_overflows_establish": overflows,
            "hub_accepted": stats["accepted"],
            "establish_per_s": round(
                (stats["accepted"] - 1) / (stats["t_last"] - stats["t_first"]), 1
            )
            if stats["accepted"] > 1 and stats["t_last"] > stats["t_first"]
            else None,
            "establish_wall_s": round(wall, 2),
            "hub_cpu_share_establish": round((hub_cpu1 - hub_cpu0) / wall, 3),
            "hub_runqueue_wait_share_establish": round((hub_wait1 - hub_wait0) / wall, 3),
            "establish_per_hub_cpu_s": round(established / (hub_cpu1 - hub_cpu0), 1)
            if hub_cpu1 > hub_cpu0
            else None,
            "clients_cpu_share_establish": round((clients_cpu1 - clients_cpu0) / wall, 3),
            "rss_per_session_kb": round((rss_after - rss_before) / max(1, established), 2),
            "hub_rss_mb": round(rss_after / 1024, 1),
        }
        if "stalls" in stats:
            # The longest stall of each side while establishing: a loop
            # stalled past the 5 s handshake timeout fails what it waits for.
            out["hub_stalls_establish"] = stats["stalls"]
            out["clients_stalls_establish"] = {
                key: max(a["stalls"][key] for a in answers) for key in stats["stalls"]
            }
        if "admission" in stats:
            out["admission"] = stats["admission"]
            out["rejections"] = stats["rejections"]
        # idle
        profile = os.environ.get("L2S_HUB_PROFILE_IDLE")  # cProfile the idle window into it
        if profile and mode == "l2s":
            hub.ask("prof_on")
        hub_cpu0, clients_cpu0, t0 = cpu_seconds(hub.proc.pid), clients_cpu(), time.monotonic()
        time.sleep(opts.idle)
        span = time.monotonic() - t0
        if profile and mode == "l2s":
            hub.ask("prof_off", path=f"{profile}.{transport}_{n}")
        idle_share = (cpu_seconds(hub.proc.pid) - hub_cpu0) / span
        out["idle_cpu_ms_per_30s"] = round(idle_share * 30_000, 1)
        out["idle_cpu_share"] = round(idle_share, 4)
        out["clients_idle_cpu_share"] = round((clients_cpu() - clients_cpu0) / span, 3)
        # messages
        delivered0 = hub.ask("stats")["delivered"]
        hub_cpu0, clients_cpu0, t0 = cpu_seconds(hub.proc.pid), clients_cpu(), time.monotonic()
        for client in clients:
            client.send("msgs", window=opts.msg_window)
        sent = sum(client.read(opts.msg_window + 600)["sent"] for client in clients)
        delivered = 0
        for _ in range(200):  # at most 20 s of drain
            delivered = hub.ask("stats")["delivered"] - delivered0
            if delivered >= sent:
                break
            time.sleep(0.1)
        span = time.monotonic() - t0
        gross = cpu_seconds(hub.proc.pid) - hub_cpu0
        out["sent"] = sent
        out["delivered"] = delivered
        out["msg_cpu_us_gross"] = round(gross / max(1, delivered) * 1e6, 1)
        out["msg_cpu_us"] = round(max(0.0, gross - idle_share * span) / max(1, delivered) * 1e6, 1)
        out["clients_msg_cpu_share"] = round((clients_cpu() - clients_cpu0) / span, 3)
        return out
    finally:
        for child in clients:
            child.close()
        hub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="N = 200, 5 s windows")
    parser.add_argument("--n", default=None, help="peer counts, comma separated (1000,10000)")
    parser.add_argument("--transports", default="tcp,quic")
    parser.add_argument("--modes", default="l2s,raw", help="l2s (sessions) and/or raw (baseline)")
    parser.add_argument("--client-procs", type=int, default=3)
    parser.add_argument(
        "--inflight", type=int, default=32, help="establishments in flight per process"
    )
    parser.add_argument("--idle", type=float, default=None, help="idle window, s (30)")
    parser.add_argument("--msg-window", type=float, default=None, help="message window, s (60)")
    parser.add_argument(
        "--durability",
        default="power",
        choices=["power", "process"],
        help="the hub store's durability (Node(durability=...); default power)",
    )
    parser.add_argument(
        "--hub-limits",
        default="",
        metavar="KEY=VALUE,...",
        help="NodeLimits fields of the hub (e.g. tcp_listen_backlog=100); default NodeLimits()",
    )
    parser.add_argument("--role", choices=["hub", "clients"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="l2s", help=argparse.SUPPRESS)
    parser.add_argument("--transport", default="tcp", help=argparse.SUPPRESS)
    parser.add_argument("--hub", help=argparse.SUPPRESS)
    parser.add_argument("--hub-did", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    _raise_nofile()
    if opts.role == "hub":
        profile = os.environ.get("L2S_HUB_PROFILE")  # a file: cProfile the hub into it
        if profile:
            import cProfile

            with cProfile.Profile(time.process_time) as profiler:
                _run(
                    hub_l2s(opts.transport, opts.durability, opts.hub_limits)
                    if opts.mode == "l2s"
                    else hub_raw(opts.transport)
                )
            profiler.dump_stats(profile)
            return
        _run(
            hub_l2s(opts.transport, opts.durability, opts.hub_limits)
            if opts.mode == "l2s"
            else hub_raw(opts.transport)
        )
        return
    if opts.role == "clients":
        if opts.mode == "l2s":
            _run(
                clients_l2s(
                    opts.transport, opts.hub, opts.hub_did, opts.first, opts.count, opts.inflight
                )
            )
        else:
            _run(clients_raw(opts.transport, opts.hub, opts.first, opts.count, opts.inflight))
        return
    quick = opts.quick
    opts.n = opts.n or ("200" if quick else "1000,10000")
    opts.idle = opts.idle or (5.0 if quick else 30.0)
    opts.msg_window = opts.msg_window or (10.0 if quick else 60.0)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]},
        "durability": opts.durability,
        "hub_limits": opts.hub_limits,
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }
    for transport in opts.transports.split(","):
        for n in (int(x) for x in opts.n.split(",")):
            for mode in opts.modes.split(","):
                key = f"{'raw_' if mode == 'raw' else ''}{transport}_{n}"
                if not opts.json:
                    print(f"{key} ...", file=sys.stderr, flush=True)
                results[key] = scenario(mode, transport, n, opts)
                # Each scenario as it completes (a long run keeps what it has).
                print(f"{key}: {json.dumps(results[key])}", file=sys.stderr, flush=True)
    results["machine"]["load_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=None if opts.json else 2))


if __name__ == "__main__":
    main()
