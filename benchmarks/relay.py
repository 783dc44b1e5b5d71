"""Relay benchmark: a session through a relay beside the same session direct.

What one run measures (``python benchmarks/relay.py [--json]``), all on
127.0.0.1, the relay in its own process (so its CPU is its own):

``direct_1k_msgs_per_s`` / ``relay_1k_msgs_per_s`` / ``relay_throughput_ratio``
    One session, 1 KiB messages one way (at most ``window`` unacknowledged),
    timed from the first send until the receiver holds the last; the same
    receiver node, once reached directly over QUIC and once through the
    relay (a second sender node, so both sessions are fresh and alike).
``direct_rtt_64_us`` / ``relay_rtt_64_us`` / ``relay_rtt_ratio``
    64-byte ping-pong round trip p50 over each of the two sessions (the
    receiver echoes every message).
``relay_cpu_us_per_packet``
    The relay process's CPU time (user + system, read from the process
    itself) over the relayed throughput and round-trip runs, divided by the
    RELAY_DATA packets it forwarded in that time.

Direct and relayed runs alternate (twice); each figure is the best of its
runs, so that a shared machine's noise does not favour either.
``establish_udp_blocked_ms`` (target <= 1000) / ``establish_quic_ms``
    ``establish()`` p50 to a fresh peer whose QUIC datagrams are dropped
    (the test hook of the QUIC transport), so the path race must carry the
    handshake over μTCP; beside it, the same establishment with QUIC
    working.
``hole_punch_ms``
    p50 from a relayed session's establishment (its first packets went
    through the relay) until it switched to the direct path (both sides'
    offers crossed, the direct route validated); on loopback, so no NAT is
    in the way: what the protocol itself costs.  The punch is timed as
    DCUtR's: MIGRATE out and back through the relay, PUNCH_SYNC, the
    leader's challenge half a relayed round trip later, then one direct
    round trip.
``hole_punch_relay_rtt_ms``
    p50 of the relayed round trip the punch's leader measured (the MIGRATE
    exchange) and fired half of after its PUNCH_SYNC.

The machine may be shared: compare the ratios, which are taken within one
run, rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from l2session.cli.netdemo import DEMO_CONFIG
from l2session.runtime.handle import SessionHandle
from l2session.runtime.node import Node
from l2session.transports.quic import QuicTransport

#: Direct and relayed runs alternate this many times (the best of each counts).
ROUNDS = 2
CONFIG = replace(DEMO_CONFIG, ttl=3600.0, rotation_window=60.0, heartbeat_interval=5.0)
CONFIG = replace(CONFIG, heartbeat_timeout=2.0, connectivity_timeout=10.0, degraded_timeout=20.0)
#: The relayed session must stay relayed while it is measured.
RELAYED = replace(CONFIG, hole_punching=False)

RELAY_SCRIPT = """
import asyncio, json, sys, time
from l2session.runtime.node import Node
from l2session.transports.relay_server import RelayLimits

async def main():
    # Every node of the run reserves from 127.0.0.1: lift the per-IP limit.
    limits = RelayLimits(max_reservations_per_ip=1024)
    async with Node(relay=True, listen="127.0.0.1:0", relay_limits=limits) as node:
        print(json.dumps({"did": node.did, "address": node.address}), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "stop":
                return
            stats = node.relaying.server.stats
            cpu = time.process_time()
            print(json.dumps({"cpu": cpu, "packets": stats.packets_forwarded}), flush=True)

asyncio.run(main())
"""


class RelayProcess:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", RELAY_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        first = json.loads(self._line())
        self.did, self.address = first["did"], first["address"]

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the relay process exited")
        return line

    def sample(self) -> tuple[float, int]:
        """(CPU seconds, packets forwarded) of the relay so far."""
        assert self.process.stdin is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        got = json.loads(self._line())
        return float(got["cpu"]), int(got["packets"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


async def throughput(
    sender: SessionHandle, receiver: SessionHandle, count: int, window: int
) -> float:
    payload = bytes(1024)
    got = 0
    started = time.perf_counter()
    sent = 0
    while got < count:
        while sent < count and sent - got < window:
            sender.send_nowait(payload)
            sent += 1
        got += len(await receiver.receive_many(1024, timeout=30))
    return count / (time.perf_counter() - started)


async def round_trips(sender: SessionHandle, echo: SessionHandle, rounds: int) -> float:
    async def echoing() -> None:
        for _ in range(rounds):
            echo.send_nowait(await echo.receive(timeout=30))

    task = asyncio.create_task(echoing())
    times: list[float] = []
    message = bytes(64)
    for _ in range(rounds):
        started = time.perf_counter()
        sender.send_nowait(message)
        await sender.receive(timeout=30)
        times.append(time.perf_counter() - started)
    await task
    return statistics.median(times) * 1e6


async def punch_time(relay: RelayProcess) -> tuple[float, float]:
    """ms from a relayed session's establishment (its first relayed packets)
    until the first packet goes on the direct path (the punch validated),
    and the relayed round trip the punch's leader measured to time it."""
    via = f"{relay.did}@{relay.address}"
    async with Node(config=CONFIG, relays=[via]) as a, Node(config=CONFIG) as b:
        client = a.relaying.client
        assert client is not None
        for _ in range(1000):
            if client.reserved(relay.address):
                break
            await asyncio.sleep(0.01)
        session = await b.establish(a.did, f"relay://{relay.address}", timeout=10)
        started = time.perf_counter()
        for _ in range(10_000):
            if session.path == "quic":
                took = (time.perf_counter() - started) * 1000
                rtts = [
                    s.validation.punch_rtt
                    for s in (a.manager.session(b.did), b.manager.session(a.did))
                    if s is not None and s.validation is not None
                    if s.validation.punch_rtt is not None
                ]
                return took, (rtts[0] * 1000 if rtts else float("nan"))
            await asyncio.sleep(0.001)
    raise RuntimeError("the relayed session never punched through")


async def establish_times(runs: int, *, blocked: bool) -> list[float]:
    times: list[float] = []
    for _ in range(runs):
        async with Node(config=CONFIG, connect_timeout=20.0) as a, Node(config=CONFIG) as b:
            if blocked:
                quic_a, quic_b = a.transports["quic"], b.transports["quic"]
                assert isinstance(quic_a, QuicTransport)
                assert isinstance(quic_b, QuicTransport)
                quic_a.drop_filter = lambda address, b=b: address == b.address
                quic_b.drop_filter = lambda address, a=a: address == a.address
            started = time.perf_counter()
            session = await a.establish(b.did, b.address, timeout=10)
            times.append((time.perf_counter() - started) * 1000)
            if session.path != ("tcp" if blocked else session.path):
                raise RuntimeError(f"expected the race to pick tcp, got {session.path}")
    return times


async def measure(messages: int, rounds: int, runs: int, window: int) -> dict[str, Any]:
    relay = RelayProcess()
    try:
        via = f"{relay.did}@{relay.address}"
        async with (
            Node(config=RELAYED, relays=[via]) as a,
            Node(config=RELAYED) as direct,
            Node(config=RELAYED) as relayed,
        ):
            client = a.relaying.client
            assert client is not None
            for _ in range(1000):
                if client.reserved(relay.address):
                    break
                await asyncio.sleep(0.01)
            d_send = await direct.establish(a.did, a.address, timeout=10)
            d_recv = await a.accept(timeout=10)
            r_send = await relayed.establish(a.did, f"relay://{relay.address}", timeout=10)
            r_recv = await a.accept(timeout=10)
            if r_send.path != "relay" or d_send.path != "quic":
                raise RuntimeError(f"paths: direct {d_send.path}, relayed {r_send.path}")
            await throughput(d_send, d_recv, min(500, messages), window)  # warm up
            await throughput(r_send, r_recv, min(500, messages), window)
            # Alternate direct and relayed runs (ROUNDS times) and keep each
            # one's best: a shared machine's noise hits both alike.
            direct_tputs, relay_tputs, direct_rtts, relay_rtts = [], [], [], []
            cpu, forwarded = 0.0, 0
            for _ in range(ROUNDS):
                direct_tputs.append(await throughput(d_send, d_recv, messages, window))
                direct_rtts.append(await round_trips(d_send, d_recv, rounds))
                cpu0, packets0 = relay.sample()
                relay_tputs.append(await throughput(r_send, r_recv, messages, window))
                relay_rtts.append(await round_trips(r_send, r_recv, rounds))
                cpu1, packets1 = relay.sample()
                cpu, forwarded = cpu + cpu1 - cpu0, forwarded + packets1 - packets0
            direct_tput, relay_tput = max(direct_tputs), max(relay_tputs)
            direct_rtt, relay_rtt = min(direct_rtts), min(relay_rtts)
        punches = [await punch_time(relay) for _ in range(runs)]
    finally:
        relay.close()
    blocked = await establish_times(runs, blocked=True)
    working = await establish_times(runs, blocked=False)
    return {
        "messages": messages,
        "direct_1k_msgs_per_s": round(direct_tput),
        "relay_1k_msgs_per_s": round(relay_tput),
        "relay_throughput_ratio": round(relay_tput / direct_tput, 3),
        "direct_rtt_64_us": round(direct_rtt),
        "relay_rtt_64_us": round(relay_rtt),
        "relay_rtt_ratio": round(relay_rtt / direct_rtt, 3),
        "relay_packets_forwarded": forwarded,
        "relay_cpu_us_per_packet": round(cpu / max(1, forwarded) * 1e6, 1),
        "establish_udp_blocked_ms": round(statistics.median(blocked), 1),
        "establish_udp_blocked_max_ms": round(max(blocked), 1),
        "establish_quic_ms": round(statistics.median(working), 1),
        "establish_target_ms": 1000,
        "hole_punch_ms": round(statistics.median(p[0] for p in punches), 1),
        "hole_punch_relay_rtt_ms": round(statistics.median(p[1] for p in punches), 1),
        "notes": "hole punch on loopback (no NAT); the machine may be shared",
    }


def _table(figures: dict[str, Any]) -> str:
    return "\n".join(f"{key:28} {value}" for key, value in figures.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--runs", type=int, default=9, help="establishments per path")
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.messages, args.rounds, args.runs, args.window))
    print(json.dumps(figures) if args.json else _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
