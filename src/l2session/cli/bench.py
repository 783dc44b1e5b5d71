"""``l2session bench``: sessions between two real nodes on loopback.

The session side of ``benchmarks/network.py`` (which adds the raw TCP and
raw QUIC baselines and the ratios); run alone it prints only the session
figures, quickly.  Every measurement builds real :class:`Node` s (real
PQXDH, Double Ratchet, wire codec, QUIC or μTCP on 127.0.0.1) and times
only what its name says -- node start-up (identity, prekeys, binding
ports) is outside every timer.

Both ends of every session run in this process on ONE event loop (uvloop
when installed), so a throughput figure is what one CPU core achieves
doing the work of both ends, and a round trip includes both ends'
processing.  The baselines in ``benchmarks/network.py`` are measured the
same way (same process, same loop) so that the ratios are fair.

What is timed:

establishment (:func:`establish_once`)
    Two fresh nodes (new identities, so never a resumption) on one path;
    from the call to ``a.establish(b.did, b.address)`` until it returns,
    i.e. until the initiator's session is ``established``: the
    connection (TCP connect / QUIC handshake), the prekey bundle fetch and
    the PQXDH INIT/RESPONSE exchange.
resumption (:func:`resume_samples`)
    A session between two nodes with SQLite stores; the initiator node is
    stopped and started again (same store file, same port) and
    ``start()`` returns with the RESUME already built by
    ``SessionManager.restore()`` but not yet sent (it leaves in the node's
    first pump).  Timed from ``start()`` returning until the restored
    session is ``established`` again -- and checked to be by RESUME, not by
    a new PQXDH: the TCP connect, HELLO, RESUME, the peer's RESUME_ACK
    (with its store commit) and ours.  Store opening and port binding are
    outside (inside ``start()``).  ``core_seconds`` is the same interval as
    the session's own transition records see it (``restored from store``
    to ``resumed``, wall clock), which also includes building the RESUME.
    ``durable=False``: the same with a MemoryStore on each side, i.e.
    without the SQLite commits on the critical path (``resume_tcp_mem_ms``).
throughput (:func:`session_throughput`)
    One established session; the sender queues ``messages`` messages of
    ``size`` bytes (at most ``window`` unacknowledged: the core has no
    flight window of its own and the transports' queues are bounded), the
    receiver takes them with ``receive_many``; timed from the first send
    until the receiver holds the last message.  (Acknowledgements are
    awaited by polling ``queued``: see :func:`drained`.)
round trip (:func:`session_rtt`)
    One established session; ``a`` sends ``size`` bytes, ``b`` echoes every
    message it receives, ``a`` waits for the echo.  One sample per round
    trip (after ``warmup`` untimed ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from l2session.core.states import State
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.runtime.clock import SystemClock
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.handle import SessionHandle
from l2session.runtime.node import Node
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore

T = TypeVar("T")

HOST: Final = "127.0.0.1"
#: Seconds any single wait may take before the benchmark gives up.
TIMEOUT: Final = 30.0
#: Unacknowledged messages the throughput sender allows at most.
WINDOW: Final = 4096
#: Messages queued per event-loop iteration by a throughput sender (the
#: baselines use the same burst).
BURST: Final = 256
#: Message sizes: bulk and ping-pong.
BULK_SIZE: Final = 1024
PING_SIZE: Final = 64


def loop_name() -> str:
    """The event loop the benchmarks run on."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def payload(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


@dataclass(frozen=True, slots=True)
class Throughput:
    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass(frozen=True, slots=True)
class Resumption:
    seconds: float
    core_seconds: float


# ----------------------------------------------------------------------
# pairs of nodes


@contextlib.asynccontextmanager
async def session_pair(path: str) -> AsyncIterator[tuple[SessionHandle, SessionHandle]]:
    """Two fresh nodes on ``path`` with an established session, warmed up
    (a message each way, everything acknowledged): (initiator's handle,
    responder's handle)."""
    async with (
        Node(listen=f"{HOST}:0", paths=(path,)) as a,
        Node(listen=f"{HOST}:0", paths=(path,)) as b,
    ):
        h = await a.establish(b.did, b.address, timeout=TIMEOUT)
        bh = await b.accept(timeout=TIMEOUT)
        h.send_nowait(b"warm-up")
        await bh.receive(timeout=TIMEOUT)
        bh.send_nowait(b"warm-up")
        await h.receive(timeout=TIMEOUT)
        await drained(h, bh)
        yield h, bh


async def drained(*handles: SessionHandle) -> None:
    """Wait until every message the handles sent is acknowledged.

    Polled, not ``SessionHandle.flush``: the node wakes a handle's waiters
    on state changes and arriving messages only, so ``flush`` does not
    notice a bare ACK and returns only at its timeout."""
    deadline = time.monotonic() + TIMEOUT
    while any(handle.queued for handle in handles):
        if time.monotonic() > deadline:
            raise RuntimeError(f"messages not acknowledged within {TIMEOUT} s")
        await asyncio.sleep(0.001)


async def establish_once(path: str) -> float:
    """Seconds to establish a session with a fresh peer (see module doc)."""
    async with (
        Node(listen=f"{HOST}:0", paths=(path,)) as a,
        Node(listen=f"{HOST}:0", paths=(path,)) as b,
    ):
        t0 = time.perf_counter()
        await a.establish(b.did, b.address, timeout=TIMEOUT)
        seconds = time.perf_counter() - t0
        await b.accept(timeout=TIMEOUT)
        return seconds


def _make_store(path: Path) -> None:
    """An SQLite store with an identity and prekeys (``l2session init``)."""
    rng = SystemRandom()
    with SqliteStore.open(path) as store:
        identity = Identity.generate(rng)
        store.save_identity(identity, None)
        store.put_prekeys(PrekeyStore.create(identity, rng=rng, now=SystemClock().now()).to_bytes())
        store.commit()


async def resume_samples(count: int, *, durable: bool = True) -> list[Resumption]:
    """``count`` resumptions over μTCP (see module doc): one session, its
    initiator restarted ``count`` times.  ``durable``: both nodes keep their
    sessions in SQLite files (reopened by each restart); else in a
    :class:`MemoryStore` each (kept across the restarts, the identity
    passed in again)."""
    if not durable:
        identity = Identity.generate(SystemRandom())
        a_store = MemoryStore()
        return await _resume_samples(
            count,
            lambda listen: Node(identity, store=a_store, listen=listen, paths=("tcp",)),
            MemoryStore(),
        )
    with tempfile.TemporaryDirectory(prefix="l2session-bench-") as tmp:
        a_path, b_path = Path(tmp) / "a.db", Path(tmp) / "b.db"
        _make_store(a_path)
        _make_store(b_path)
        return await _resume_samples(
            count, lambda listen: Node(store=a_path, listen=listen, paths=("tcp",)), b_path
        )


async def _resume_samples(
    count: int, make_a: Callable[[str], Node], b_store: Path | MemoryStore
) -> list[Resumption]:
    samples: list[Resumption] = []
    async with Node(store=b_store, listen=f"{HOST}:0", paths=("tcp",)) as b:
        a = make_a(f"{HOST}:0")
        await a.start()
        try:
            await a.establish(b.did, b.address, timeout=TIMEOUT)
            await b.accept(timeout=TIMEOUT)
            listen = a.address
            for index in range(count):
                await a.stop()
                a = make_a(listen)
                await a.start()
                t0 = time.perf_counter()
                restored = a.session(b.did)
                if restored is None:
                    raise RuntimeError("the session was not restored from the store")
                await restored.established(TIMEOUT)
                seconds = time.perf_counter() - t0
                samples.append(Resumption(seconds, _resumed(restored)))
                # Messages flow again, and everything settles before the
                # next restart.
                restored.send_nowait(b"after resume %d" % index)
                peer = b.session(a.did)
                if peer is None:
                    raise RuntimeError("the responder lost the session")
                await peer.receive(timeout=TIMEOUT)
                await drained(restored, peer)
        finally:
            await a.stop()
    return samples


def _resumed(handle: SessionHandle) -> float:
    """Seconds from ``restored from store`` to ``resumed`` in the session's
    transition records; raises if the session did not come up by RESUME."""
    history = handle.history
    start = end = None
    for record in history:
        if record.reason == "restored from store":
            start, end = record.at, None
        elif record.reason == "resumed" and record.target is State.ESTABLISHED:
            end = record.at
    if start is None or end is None:
        reasons = [r.reason for r in history[-4:]]
        raise RuntimeError(f"the session was not established by RESUME: {reasons}")
    return end - start


async def session_throughput(
    path: str, messages: int, size: int = BULK_SIZE, window: int = WINDOW
) -> Throughput:
    """``messages`` messages of ``size`` bytes one way (see module doc)."""
    data = payload(size)
    async with session_pair(path) as (h, bh):

        async def receive() -> bytes:
            got, last = 0, b""
            while got < messages:
                batch = await bh.receive_many(8192, timeout=TIMEOUT)
                got += len(batch)
                last = batch[-1]
            if got != messages:
                raise RuntimeError(f"received {got} of {messages} messages")
            return last

        cpu0, t0 = time.process_time(), time.perf_counter()
        receiver = asyncio.create_task(receive())
        sent = 0
        send = h.send_nowait
        while sent < messages:
            room = min(window - h.queued, messages - sent, BURST)
            for _ in range(room):
                send(data)
            sent += max(0, room)
            await asyncio.sleep(0)
        last = await receiver
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if last != data:
            raise RuntimeError("the last message arrived corrupted")
        return Throughput(messages, seconds, cpu)


async def session_rtt(
    path: str, rounds: int, size: int = PING_SIZE, warmup: int = 50
) -> list[float]:
    """``rounds`` ping-pong round trips in seconds (see module doc)."""
    data = payload(size)
    async with session_pair(path) as (h, bh):

        async def echo() -> None:
            while True:
                for message in await bh.receive_many(1024):
                    bh.send_nowait(message)

        echoing = asyncio.create_task(echo())
        try:
            samples: list[float] = []
            for index in range(warmup + rounds):
                t0 = time.perf_counter()
                h.send_nowait(data)
                answer = await h.receive(timeout=TIMEOUT)
                elapsed = time.perf_counter() - t0
                if answer != data:
                    raise RuntimeError("the echo differs from the ping")
                if index >= warmup:
                    samples.append(elapsed)
            return samples
        finally:
            echoing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await echoing


# ----------------------------------------------------------------------
# the figures


async def measure(
    messages: int,
    repeat: int = 1,
    connects: int = 5,
    rtt_rounds: int = 1000,
) -> dict[str, Any]:
    """The session figures: medians over ``repeat`` interleaved runs."""
    figures: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    for _ in range(repeat):
        for path in ("tcp", "quic"):
            add(
                f"establish_{path}_ms",
                1e3 * p50([await establish_once(path) for _ in range(connects)]),
            )
        resumptions = await resume_samples(connects)
        add("resume_tcp_ms", 1e3 * p50([r.seconds for r in resumptions]))
        add("resume_tcp_core_ms", 1e3 * p50([r.core_seconds for r in resumptions]))
        resumptions = await resume_samples(connects, durable=False)
        add("resume_tcp_mem_ms", 1e3 * p50([r.seconds for r in resumptions]))
        for path in ("tcp", "quic"):
            add(f"{path}_1k_msgs_per_s", (await session_throughput(path, messages)).rate)
        add("rtt_64_us", 1e6 * p50(await session_rtt("tcp", rtt_rounds)))
    out: dict[str, Any] = {key: round(statistics.median(v), 3) for key, v in figures.items()}
    for key in ("tcp_1k_msgs_per_s", "quic_1k_msgs_per_s", "rtt_64_us"):
        out[key] = round(out[key])
    out.update(messages=messages, repeat=repeat, window=WINDOW, loop=loop_name())
    return out


def _table(figures: dict[str, Any]) -> str:
    width = max(len(key) for key in figures)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in figures.items())


def main(messages: int = 5000, as_json: bool = False) -> int:
    """``l2session bench``: the session figures (one run, a few seconds).
    The baselines and ratios: ``python benchmarks/network.py``."""
    if messages < 1:
        sys.stderr.write("l2session: error: --messages must be positive\n")
        return 1
    figures = run(measure(messages, repeat=1, connects=5, rtt_rounds=min(1000, messages)))
    if as_json:
        print(json.dumps(figures))
    else:
        print(_table(figures))
        print("baselines and ratios: python benchmarks/network.py")
    return 0
