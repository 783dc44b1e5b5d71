"""0-RTT benchmark: a restarted node's first message, 0-RTT against 1-RTT resumption.

What one run measures (``python benchmarks/zero_rtt.py [--json]``), both
modes in the same run on the same pair of real nodes on 127.0.0.1,
interleaved sample by sample (0-RTT, 1-RTT, 0-RTT, ...) so that machine
noise hits both alike:

``zero_rtt_first_message_ms`` / ``one_rtt_first_message_ms``
    p50 of the time from a restarted initiator's ``start()`` returning
    until the peer's application holds the first message that was queued
    before the restart.  Each sample: the initiator (SQLite store) is cut
    off by its fault hook, queues one 64-byte message, stops, and starts
    again on the same store and port; its restored session resumes with
    the message queued.  With 0-RTT (``SessionConfig.early_data_bytes`` >
    0) the message rides in the RESUME (RESUME_EARLY); with 1-RTT
    (``early_data_bytes=0``) it follows RESUME_ACK.  Each 0-RTT sample is
    checked to have arrived in a 0-RTT flight, each 1-RTT sample not.
    Both include the transport connect (μTCP: TCP handshake and HELLO;
    QUIC: the QUIC handshake), which precedes the first packet either way.
``*_ratio``
    ``zero_rtt / one_rtt`` per path: below 1 is the gain.  On loopback a
    round trip costs tens of microseconds, so the gain is mostly the second
    flight's processing and drowns in scheduling noise on a busy machine;
    over a real link 0-RTT saves one round trip.
``zero_rtt_first_message_delayed_ms`` / ``one_rtt_first_message_delayed_ms`` / ``delayed_ratio``
    The same over μTCP with an emulated one-way delay of ``--delay-ms``
    (10 ms) on every session packet: each node hands a received packet to
    its session manager that much later (the benchmark's own Node subclass;
    the TCP connect itself is not delayed).  Expected: 0-RTT one delay
    after the connect, 1-RTT three.
``sim_zero_rtt_first_message_ms`` / ``sim_one_rtt_first_message_ms``
    The same first message on the seeded simulation with a 25 ms one-way
    link (virtual time: a model, not a measurement of this machine): one
    one-way delay against three.

Every figure is the median over ``--repeat`` runs of each run's p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from l2session.cli import bench
from l2session.cli.netdemo import DEMO_CONFIG
from l2session.core.config import SessionConfig
from l2session.core.states import State
from l2session.runtime.node import Node
from l2session.store.memory import MemoryStore
from l2session.testing.network import LinkProfile
from l2session.testing.simulation import Simulation

HOST: Final = bench.HOST
PAYLOAD: Final = b"m" * 64
ZERO_RTT: Final = DEMO_CONFIG
ONE_RTT: Final = replace(DEMO_CONFIG, early_data_bytes=0)
SIM_LATENCY: Final = 0.025


class DelayedNode(Node):
    """A node that hands each received packet to its session manager
    ``delay`` seconds late: an emulated one-way link delay, for the
    benchmark only (no netem needed)."""

    delay = 0.0

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        if self.delay <= 0:
            super().packet_received(data, address, path)
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self.delay, Node.packet_received, self, data, address, path)


def _node(delay: float, **kwargs: Any) -> Node:
    node = DelayedNode(**kwargs)
    node.delay = delay
    return node


async def _first_message(
    b: Node, make_a: Any, listen: str, config: SessionConfig, index: int
) -> float:
    """One sample: restart the initiator with a message queued; seconds
    from ``start()`` returning until ``b`` holds the message."""
    a: Node = make_a(listen, config)
    await a.start()
    try:
        handle = a.session(b.did)
        if handle is None:
            raise RuntimeError("the session was not restored from the store")
        t0 = time.perf_counter()
        peer = b.session(a.did)
        if peer is None:
            raise RuntimeError("the responder lost the session")
        before = b.manager.early_flights
        message = await peer.receive(timeout=bench.TIMEOUT)
        seconds = time.perf_counter() - t0
        if message != PAYLOAD + b"%d" % index:
            raise RuntimeError(f"unexpected first message {message!r}")
        early = b.manager.early_flights > before
        if early != (config.early_data_bytes > 0):
            raise RuntimeError(f"sample {index}: 0-RTT used = {early}, not as configured")
        await handle.flush(timeout=bench.TIMEOUT)
        # Queue the next sample's message while cut off, then stop.
        a.faults.block()
        handle.send_nowait(PAYLOAD + b"%d" % (index + 1))
        await asyncio.sleep(0.01)
    finally:
        await a.stop()
    return seconds


async def samples(path: str, count: int, delay: float = 0.0) -> tuple[list[float], list[float]]:
    """``count`` first-message latencies per mode over ``path``,
    interleaved on one pair of nodes (``delay``: emulated one-way delay)."""
    zero: list[float] = []
    one: list[float] = []
    with tempfile.TemporaryDirectory(prefix="l2session-0rtt-") as tmp:
        a_path = Path(tmp) / "a.db"
        bench._make_store(a_path)

        def make_a(listen: str, config: SessionConfig) -> Node:
            return _node(delay, store=a_path, listen=listen, paths=(path,), config=config)

        async with _node(delay, listen=f"{HOST}:0", paths=(path,), config=ZERO_RTT) as b:
            a = make_a(f"{HOST}:0", ZERO_RTT)
            await a.start()
            try:
                handle = await a.establish(b.did, b.address, timeout=bench.TIMEOUT)
                await b.accept(timeout=bench.TIMEOUT)
                listen = a.address
                a.faults.block()
                handle.send_nowait(PAYLOAD + b"0")
                await asyncio.sleep(0.01)
            finally:
                await a.stop()
            for index in range(2 * count):
                config = ZERO_RTT if index % 2 == 0 else ONE_RTT
                seconds = await _first_message(b, make_a, listen, config, index)
                (zero if config is ZERO_RTT else one).append(seconds)
    return zero, one


def simulated(early: bool) -> float:
    """Virtual seconds from a restart to the first queued message on the
    seeded simulation (25 ms one way)."""
    config = SessionConfig() if early else SessionConfig(early_data_bytes=0)
    sim = Simulation("zero-rtt bench", profile=LinkProfile(latency=SIM_LATENCY))
    store = MemoryStore()
    alice = sim.add_node("alice", config=config, store=store)
    bob = sim.add_node("bob", config=config, store=MemoryStore())
    alice.manager.establish(bob.did)

    def up() -> bool:
        a, b = alice.session(bob), bob.session(alice)
        return a is not None and b is not None and a.state is b.state is State.ESTABLISHED

    sim.run_until(up, timeout=10)
    sim.network.partition("alice", "bob")
    session = alice.session(bob)
    assert session is not None
    session.send(PAYLOAD)
    sim.run_for(0.1)
    store.commit()
    alice = sim.restart("alice", store)
    sim.network.heal("alice", "bob")
    peer = bob.session(alice)
    assert peer is not None
    return sim.run_until(lambda: peer.available > 0, timeout=10)


async def measure(count: int, repeat: int, delay: float) -> dict[str, Any]:
    runs: dict[str, list[float]] = {}
    for _ in range(repeat):
        for path in ("tcp", "quic"):
            zero_samples, one_samples = await samples(path, count)
            runs.setdefault(f"zero_rtt_{path}", []).append(1e3 * statistics.median(zero_samples))
            runs.setdefault(f"one_rtt_{path}", []).append(1e3 * statistics.median(one_samples))
        zero_samples, one_samples = await samples("tcp", count, delay)
        runs.setdefault("zero_rtt_delayed", []).append(1e3 * statistics.median(zero_samples))
        runs.setdefault("one_rtt_delayed", []).append(1e3 * statistics.median(one_samples))
    out: dict[str, Any] = {}
    for path in ("tcp", "quic"):
        zero = statistics.median(runs[f"zero_rtt_{path}"])
        one = statistics.median(runs[f"one_rtt_{path}"])
        out[f"zero_rtt_first_message_{path}_ms"] = round(zero, 3)
        out[f"one_rtt_first_message_{path}_ms"] = round(one, 3)
        out[f"{path}_ratio"] = round(zero / one, 3)
    zero = statistics.median(runs["zero_rtt_delayed"])
    one = statistics.median(runs["one_rtt_delayed"])
    out["delay_ms"] = round(1e3 * delay, 3)
    out["zero_rtt_first_message_delayed_ms"] = round(zero, 3)
    out["one_rtt_first_message_delayed_ms"] = round(one, 3)
    out["delayed_ratio"] = round(zero / one, 3)
    out["zero_rtt_first_message_ms"] = out["zero_rtt_first_message_tcp_ms"]
    out["one_rtt_first_message_ms"] = out["one_rtt_first_message_tcp_ms"]
    out["sim_one_way_ms"] = 1e3 * SIM_LATENCY
    out["sim_zero_rtt_first_message_ms"] = round(1e3 * simulated(True), 3)
    out["sim_one_rtt_first_message_ms"] = round(1e3 * simulated(False), 3)
    out.update(samples=count, repeat=repeat, loop=bench.loop_name())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--samples", type=int, default=20, help="samples per mode per run (20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, median (3)")
    parser.add_argument(
        "--delay-ms", type=float, default=10.0, help="emulated one-way delay (10 ms)"
    )
    args = parser.parse_args(argv)
    if min(args.samples, args.repeat) < 1 or not args.delay_ms > 0:
        parser.error("--samples, --repeat and --delay-ms must be positive")
    figures = bench.run(measure(args.samples, args.repeat, args.delay_ms / 1e3))
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(key) for key in figures)
        print("\n".join(f"{key:<{width}}  {value}" for key, value in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
