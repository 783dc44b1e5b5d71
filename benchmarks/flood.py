"""Handshake-flood benchmark: an established session's round trip while one
address floods its node with PQXDH INITs, with and without admission control.

What one run measures (``python benchmarks/flood.py [--json]``), all on
127.0.0.1, each party in its own process so that the flood's CPU cost is
real (two cores are shared by three processes; nothing is pinned):

* the *victim* (``--role victim``): a :class:`Node` on one path (μTCP by
  default, ``--path quic``) that echoes every message of one session;
* *A*, this process: a :class:`Node` with an established session to the
  victim, sending 64-byte pings and timing each echo;
* the *flooder* (``--role flooder``): a bare transport of the same kind
  (so μTCP framing with its HELLO, or QUIC), sending well-formed INITs to
  the victim from one address at ``--rate`` per second (2,000).  The INITs
  are built beforehand with the project's own encoders, each from a fresh
  did:key (so the (DID, address) quarantine never sees a DID twice):
  ``--valid-share`` of them (0.5) are genuine, correctly signed INITs
  against the victim's published prekeys (each one costs the victim the
  whole responder handshake, ~1 ms, and a half-open session); the others
  carry a garbage signature (each costs a DID resolution and an Ed25519
  verification, ~0.15 ms).  The victim's identity and prekeys derive from
  a seed, so the flooder rebuilds its public bundle without asking.

Each round starts a fresh victim and runs two phases: ``--rounds`` pings
with nothing else going on (the idle baseline, after 50 untimed ones), then
pings back to back for ``--flood-seconds`` (3) while the flood runs.  The
rounds alternate between the victim's default limits (admission control as
shipped, core/management/admission.py) and limits so high they never refuse anything
(``no_admission``), ``--repeat`` (3) rounds each, interleaved so machine
noise hits both; every figure is the median over its rounds.

``rtt_idle_p50_ms`` / ``rtt_idle_p99_ms``
    The idle round trip (baseline, same rounds).
``rtt_flood_p50_ms`` / ``rtt_flood_p99_ms`` / ``rtt_ratio`` (target <= 2)
    The round trip during the flood; ratio = flood p50 / idle p50.
    ``rtt_ratio_p99``: the same for p99.  ``rtt_flood_samples``: pings
    completed during the flood window, and ``rtt_flood_mean_ms`` their
    mean: when the victim stalls, the few pings that complete are mostly
    the quick ones before the stall, so p50 alone understates it.
``flood_packets_sent`` / ``flood_packets_dropped`` / ``flood_rate_per_s``
    INITs the flooder's transport wrote to the socket during the window
    (and dropped: its queue was full because the victim read too slowly),
    and the rate that makes.
``rate_limited`` / ``rate_limited_global`` / ``quarantined`` / ``hosts_quarantined``
    The victim's admission counters over the flood: packets refused by the
    host's bucket, by the global one, and as coming from a quarantined
    host; and how often the host was quarantined.  They are read by asking
    the victim once the window is over.  A victim that fell behind answers
    late (``victim_busy_after_s``: how long after the window's end), and
    may answer before it has read every flood packet sent (its control
    pipe and the flood's socket are read in no fixed order; over QUIC, flow
    control holds packets at the sender), so the counters can add up to
    fewer than ``flood_packets_sent``.
``handshakes_processed``
    Opening packets admitted to their crypto (``admission.admitted``; with
    the limits off, every INIT).  ``victim_sessions``: sessions the victim
    then holds (the half-open ones the genuine INITs made, and A's).
``victim_cpu_share``
    The victim's CPU time from the flood's start until it answered,
    divided by that wall time (1.0 is one core; the echo's own work is in
    it, so compare with the other mode rather than with zero).
``..._no_admission``
    The same figures with admission control effectively off.
``cost_valid_init_us`` / ``cost_forged_init_us`` / ``cost_refused_init_us``
    In this process, on the sans-I/O core alone (no sockets): the median
    cost of one ``SessionManager.receive_datagram`` for a genuine INIT from
    a fresh DID, for one with a garbage signature, and for an INIT refused
    by admission control (host quarantined).

Run it twice and compare: the figures are from a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, Final

from l2session.cli import bench
from l2session.core.config import SessionConfig
from l2session.core.management.context import Context, LocalKeys
from l2session.core.management.manager import SessionManager
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.handshake_messages import HandshakeInit
from l2session.crypto.pqxdh import InitiatorHandshake
from l2session.crypto.rng import RandomSource, SeededRandom
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.runtime.clock import SystemClock
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.handle import SessionHandle
from l2session.runtime.node import Node
from l2session.store.memory import MemoryStore
from l2session.testing.clock import ManualClock
from l2session.transports.base import Transport
from l2session.transports.quic import QuicTransport
from l2session.transports.tcp import TcpTransport
from l2session.wire.packets import HandshakePacket, encode_packet

HOST: Final = bench.HOST
SCRIPT: Final = Path(__file__).resolve()
#: Seconds any single wait may take before the benchmark gives up.
TIMEOUT: Final = 60.0
WARMUP: Final = 50
#: Most pings in one flood window (a bound; the window ends it first).
MAX_FLOOD_PINGS: Final = 1_000_000
#: The flooder sends what is due at most every this many seconds.
FLOOD_TICK: Final = 0.002
#: INITs are fresh for 300 s (crypto/handshake_guard.py); the pool is
#: rebuilt when it is older than this.
POOL_MAX_AGE: Final = 200.0

#: Limits so high that admission control never refuses (the comparison).
NO_ADMISSION: Final = SessionConfig(
    admission_host_rate=1e9,
    admission_host_burst=1 << 30,
    admission_global_rate=1e9,
    admission_global_burst=1 << 30,
    admission_failure_limit=1 << 30,
)

TARGETS: Final = {"rtt_ratio": ("<=", 2.0)}

COUNTERS: Final = (
    "rate_limited",
    "rate_limited_global",
    "quarantined",
    "hosts_quarantined",
    "failures",
)


def _quiet_logs() -> None:
    """Child processes: the flood makes the node log a warning per forged
    INIT (its DID is quarantined); keep stderr for real errors."""
    logging.getLogger("l2session").setLevel(logging.ERROR)


def victim_keys(seed: str, t0: float) -> tuple[Identity, PrekeyStore]:
    """The victim's identity and prekeys, rebuilt identically by the
    flooder (which needs only the public bundle)."""
    identity = Identity.generate(SeededRandom(f"{seed}/identity"))
    prekeys = PrekeyStore.create(identity, rng=SeededRandom(f"{seed}/prekeys"), now=t0)
    return identity, prekeys


def _make_transport(path: str) -> Transport:
    return QuicTransport() if path == "quic" else TcpTransport()


class _Ignore:
    """A transport listener that drops everything (the flooder's)."""

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        pass

    def path_up(self, address: str, path: str) -> None:
        pass

    def path_down(self, address: str, path: str, reason: str) -> None:
        pass


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------
# the victim process


async def run_victim(seed: str, t0: float, path: str, admission: bool) -> None:
    """Listen, echo the session named by ``echo DID``, answer ``stats``,
    stop at ``quit`` (or when stdin closes)."""
    identity, prekeys = victim_keys(seed, t0)
    store = MemoryStore()
    store.put_prekeys(prekeys.to_bytes())
    store.commit()
    config = SessionConfig() if admission else NO_ADMISSION
    commands = await _stdin_lines()
    async with Node(
        identity, store=store, listen=f"{HOST}:0", paths=(path,), config=config
    ) as node:
        _say({"did": node.did, "address": node.address})
        echoes: set[asyncio.Task[None]] = set()
        while line := (await commands.readline()).decode().split():
            if line[0] == "echo":
                handle = node.session(line[1])
                if handle is None:
                    raise RuntimeError(f"no session with {line[1]}")
                task = asyncio.create_task(_echo(handle))
                echoes.add(task)
                _say({"ok": True})
            elif line[0] == "stats":
                manager = node.manager
                _say(
                    {
                        "rejections": dict(manager.rejections),
                        "admission": manager.admission.snapshot(),
                        "sessions": len(manager.sessions),
                        "cpu_s": time.process_time(),
                        "wall_s": time.monotonic(),
                    }
                )
            else:
                break
        for task in echoes:
            task.cancel()


async def _echo(handle: SessionHandle) -> None:
    while True:
        for message in await handle.receive_many(1024):
            handle.send_nowait(message)


# ----------------------------------------------------------------------
# the flooder process


def build_pool(
    seed: str, t0: float, count: int, valid_share: float, rng: RandomSource
) -> list[bytes]:
    """``count`` INIT packets to the victim, each from a fresh did:key:
    ``valid_share`` of them genuine, the others with a garbage signature
    (alternating, so any stretch of the flood has the same mix)."""
    identity, prekeys = victim_keys(seed, t0)
    bundle = prekeys.bundle()
    victim_key = resolve_signing_key(default_resolver(), identity.did_text)
    now = time.time()
    pool: list[bytes] = []
    template: HandshakeInit | None = None
    credit = 0.0
    for _ in range(count):
        sender = Identity.generate(rng)
        credit += valid_share
        if credit >= 1.0 or template is None:
            credit = max(0.0, credit - 1.0)
            handshake, init = InitiatorHandshake.start(
                local=sender,
                peer_did=identity.did_text,
                peer_signing_key=victim_key,
                signed_prekeys=bundle.signed_prekeys,
                one_time_prekey=None,
                rng=rng,
                now=now,
            )
            template = HandshakeInit.decode(init)
            pool.append(encode_packet(HandshakePacket(handshake.session_id, init)))
            continue
        # The same keys and ciphertext under another DID: the signature no
        # longer verifies, which the victim finds out only by checking it.
        forged = dataclasses.replace(template, initiator_did=sender.did_text)
        pool.append(encode_packet(HandshakePacket(rng.random_bytes(16), forged.encode())))
    return pool


async def run_flooder(seed: str, t0: float, path: str, count: int, valid_share: float) -> None:
    """Build the pool, then on ``flood ADDRESS RATE SECONDS`` send it (each
    time from a new transport: a new source port, the same host)."""
    _quiet_logs()
    rng = SystemRandom()
    started = time.perf_counter()
    pool = build_pool(seed, t0, count, valid_share, rng)
    built_at = time.monotonic()
    _say({"prepared": len(pool), "prepare_s": round(time.perf_counter() - started, 3)})
    commands = await _stdin_lines()
    while line := (await commands.readline()).decode().split():
        if line[0] != "flood":
            break
        if time.monotonic() - built_at > POOL_MAX_AGE:
            pool, built_at = build_pool(seed, t0, count, valid_share, rng), time.monotonic()
        address, rate, seconds = line[1], float(line[2]), float(line[3])
        _say(await _flood(path, pool, address, rate, seconds))


async def _flood(
    path: str, pool: list[bytes], address: str, rate: float, seconds: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    transport = _make_transport(path)
    await transport.start(_Ignore(), HOST, 0)
    try:
        start = loop.time()
        end = start + seconds
        attempted = 0
        for _ in range(int(seconds / FLOOD_TICK) * 4 + 10):
            now = loop.time()
            if now >= end:
                break
            due = int((now - start) * rate)
            for _ in range(due - attempted):
                transport.send(address, pool[attempted % len(pool)])
                attempted += 1
            await asyncio.sleep(FLOOD_TICK)
        elapsed = loop.time() - start
        stats = transport.stats
        return {
            "attempted": attempted,
            "sent": stats.packets_sent,
            "dropped": stats.dropped,
            "seconds": elapsed,
            "unique": min(attempted, len(pool)),
        }
    finally:
        await transport.close()


# ----------------------------------------------------------------------
# the parent: processes


class Child:
    """A child process of this script, spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: IO[bytes]) -> None:
        self.process = process
        self.stderr = stderr

    @classmethod
    async def start(cls, *args: str) -> Child:
        # A file, not a pipe: a chatty child never blocks on it.  Closed by stop().
        stderr = tempfile.TemporaryFile()  # noqa: SIM115
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        return cls(process, stderr)

    async def read(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        line = await asyncio.wait_for(stdout.readline(), timeout)
        if not line:
            self.stderr.seek(0)
            tail = self.stderr.read()[-4000:].decode(errors="replace")
            raise RuntimeError(f"a benchmark process ended early:\n{tail}")
        value = json.loads(line)
        assert isinstance(value, dict)
        return value

    def tell(self, line: str) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")

    async def ask(self, line: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        self.tell(line)
        return await self.read(timeout)

    async def stop(self) -> None:
        with contextlib.suppress(ConnectionError, ProcessLookupError):
            self.tell("quit")
            stdin = self.process.stdin
            assert stdin is not None
            stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10.0)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self.stderr.close()


@contextlib.asynccontextmanager
async def child(*args: str) -> AsyncIterator[Child]:
    process = await Child.start(*args)
    try:
        yield process
    finally:
        await process.stop()


# ----------------------------------------------------------------------
# the parent: one round


def _percentile(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


async def _ping(handle: SessionHandle, data: bytes, timeout: float) -> float:
    t0 = time.perf_counter()
    handle.send_nowait(data)
    answer = await handle.receive(timeout=timeout)
    elapsed = time.perf_counter() - t0
    if answer != data:
        raise RuntimeError("the echo differs from the ping")
    return elapsed


@dataclasses.dataclass(frozen=True, slots=True)
class Round:
    idle: list[float]
    flood: list[float]
    flooder: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]

    def figures(self) -> dict[str, float]:
        window = self.flooder["seconds"]
        admission_before, admission_after = self.before["admission"], self.after["admission"]
        out = {
            "rtt_idle_p50_ms": 1e3 * statistics.median(self.idle),
            "rtt_idle_p99_ms": 1e3 * _percentile(self.idle, 99),
            "rtt_flood_p50_ms": 1e3 * statistics.median(self.flood),
            "rtt_flood_p99_ms": 1e3 * _percentile(self.flood, 99),
            "rtt_flood_mean_ms": 1e3 * statistics.fmean(self.flood),
            "rtt_flood_samples": float(len(self.flood)),
            "flood_packets_attempted": float(self.flooder["attempted"]),
            "flood_packets_sent": float(self.flooder["sent"]),
            "flood_packets_dropped": float(self.flooder["dropped"]),
            "flood_rate_per_s": self.flooder["sent"] / window,
            "handshakes_processed": float(
                admission_after["admitted"] - admission_before["admitted"]
            ),
            "victim_cpu_share": (self.after["cpu_s"] - self.before["cpu_s"])
            / (self.after["wall_s"] - self.before["wall_s"]),
            "victim_busy_after_s": max(
                0.0, self.after["wall_s"] - self.before["wall_s"] - self.flooder["seconds"]
            ),
            "victim_sessions": float(self.after["sessions"]),
        }
        for key in COUNTERS:
            out[key] = float(admission_after[key] - admission_before[key])
        return out


async def run_round(
    flooder: Child,
    *,
    seed: str,
    t0: float,
    path: str,
    admission: bool,
    rounds: int,
    rate: float,
    flood_seconds: float,
) -> Round:
    data = bench.payload(bench.PING_SIZE)
    mode = "on" if admission else "off"
    args = ("--role", "victim", "--seed", seed, "--t0", repr(t0), "--path", path)
    async with (
        child(*args, "--admission", mode) as victim,
        Node(listen=f"{HOST}:0", paths=(path,)) as node,
    ):
        hello = await victim.read()
        handle = await node.establish(hello["did"], hello["address"], timeout=TIMEOUT)
        await victim.ask(f"echo {node.did}")
        for _ in range(WARMUP):
            await _ping(handle, data, TIMEOUT)
        idle = [await _ping(handle, data, TIMEOUT) for _ in range(rounds)]
        before = await victim.ask("stats")
        flooder.tell(f"flood {hello['address']} {rate} {flood_seconds}")
        report = asyncio.ensure_future(flooder.read(TIMEOUT + flood_seconds))
        flood: list[float] = []
        for _ in range(MAX_FLOOD_PINGS):
            if report.done():
                break
            flood.append(await _ping(handle, data, TIMEOUT + flood_seconds))
        flooded = await report
        after = await victim.ask("stats", TIMEOUT + flood_seconds)
        if not flood:
            raise RuntimeError("no ping completed during the flood")
        return Round(idle, flood, flooded, before, after)


# ----------------------------------------------------------------------
# the sans-I/O cost of one INIT


def core_costs(samples: int) -> dict[str, float]:
    """Median µs per ``receive_datagram`` of a genuine INIT, a forged one
    and a refused one, on a bare manager (no sockets, no store)."""
    seed, t0 = "flood/core", time.time()
    identity, prekeys = victim_keys(seed, t0)
    clock = ManualClock(t0)
    rng = SeededRandom("flood/core/rng")

    def manager(config: SessionConfig) -> SessionManager:
        ctx = Context(
            rng=rng,
            time=clock,
            did_resolve=default_resolver(),
            crypto_pqxdh=LocalKeys(identity, prekeys, HandshakeReplayGuard()),
        )
        return SessionManager(ctx, config=config)

    pool = build_pool(seed, t0, 2 * samples, 0.5, rng)
    valid, forged = pool[0::2], pool[1::2]

    def cost(target: SessionManager, packets: list[bytes], source: str) -> float:
        times: list[float] = []
        for packet in packets:
            t = time.perf_counter()
            target.receive_datagram(packet, source, "tcp")
            times.append(time.perf_counter() - t)
            target.events()
            target.datagrams_to_send()
        return 1e6 * statistics.median(times)

    logger = logging.getLogger("l2session")
    level = logger.level
    logger.setLevel(logging.ERROR)  # a warning per forged INIT is not what is measured
    try:
        out = {
            "cost_valid_init_us": cost(manager(NO_ADMISSION), valid, "192.0.2.1:1"),
            "cost_forged_init_us": cost(manager(NO_ADMISSION), forged, "192.0.2.2:1"),
        }
        refusing = manager(SessionConfig(admission_failure_limit=1))
        refusing.admission.failure("192.0.2.3:1", clock.now())
        out["cost_refused_init_us"] = cost(refusing, valid, "192.0.2.3:1")
    finally:
        logger.setLevel(level)
    if refusing.admission.stats.quarantined != len(valid):
        raise RuntimeError("the refused INITs were not all refused by the quarantine")
    return out


# ----------------------------------------------------------------------
# the run


async def measure(
    *,
    path: str,
    repeat: int,
    rounds: int,
    rate: float,
    flood_seconds: float,
    valid_share: float,
    core_samples: int,
) -> dict[str, Any]:
    seed = f"flood/{time.time_ns()}"
    t0 = SystemClock().now()
    pool_size = max(1, int(rate * flood_seconds * 1.1))
    per_mode: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    flooder_args = ("--role", "flooder", "--seed", seed, "--t0", repr(t0), "--path", path)
    async with child(
        *flooder_args, "--count", str(pool_size), "--valid-share", repr(valid_share)
    ) as flooder:
        prepared = await flooder.read(TIMEOUT + pool_size / 100)
        for _ in range(repeat):
            for admission in (True, False):
                result = await run_round(
                    flooder,
                    seed=seed,
                    t0=t0,
                    path=path,
                    admission=admission,
                    rounds=rounds,
                    rate=rate,
                    flood_seconds=flood_seconds,
                )
                per_mode[admission].append(result.figures())

    def median(admission: bool, key: str) -> float:
        return statistics.median(r[key] for r in per_mode[admission])

    out: dict[str, Any] = {}
    keys = list(per_mode[True][0])
    for admission, suffix in ((True, ""), (False, "_no_admission")):
        for key in keys:
            value = median(admission, key)
            rounded = key.endswith(("_ms", "_share", "_s"))
            out[key + suffix] = round(value, 3) if rounded else value
        idle, flood = out[f"rtt_idle_p50_ms{suffix}"], out[f"rtt_flood_p50_ms{suffix}"]
        out[f"rtt_ratio{suffix}"] = round(flood / idle, 3)
        idle99, flood99 = out[f"rtt_idle_p99_ms{suffix}"], out[f"rtt_flood_p99_ms{suffix}"]
        out[f"rtt_ratio_p99{suffix}"] = round(flood99 / idle99, 3)
    for key, value in list(out.items()):
        if (
            isinstance(value, float)
            and value.is_integer()
            and not key.endswith(("_ms", "_s", "_share"))
        ):
            out[key] = int(value)
    out["flood_rate_per_s"] = round(out["flood_rate_per_s"])
    out["flood_rate_per_s_no_admission"] = round(out["flood_rate_per_s_no_admission"])
    out.update({k: round(v, 1) for k, v in core_costs(core_samples).items()})
    out["targets"] = {
        key: {
            "target": f"{op} {bound}",
            "met": out[key] <= bound if op == "<=" else out[key] >= bound,
        }
        for key, (op, bound) in TARGETS.items()
    }
    defaults = SessionConfig()
    out.update(
        path=path,
        repeat=repeat,
        rtt_rounds=rounds,
        flood_target_rate=rate,
        flood_seconds=flood_seconds,
        flood_valid_share=valid_share,
        flood_pool=prepared["prepared"],
        flood_pool_prepare_s=prepared["prepare_s"],
        admission_limits={
            f.name: getattr(defaults, f.name)
            for f in dataclasses.fields(defaults)
            if f.name.startswith("admission_")
        },
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
    parser.add_argument("--path", choices=("tcp", "quic"), default="tcp", help="transport (tcp)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per mode, median (3)")
    parser.add_argument("--rounds", type=int, default=500, help="idle pings per round (500)")
    parser.add_argument("--rate", type=float, default=2000.0, help="INITs per second (2,000)")
    parser.add_argument(
        "--flood-seconds", type=float, default=3.0, help="flood window per round (3)"
    )
    parser.add_argument(
        "--valid-share", type=float, default=0.5, help="share of genuine INITs (0.5)"
    )
    parser.add_argument(
        "--core-samples", type=int, default=200, help="INITs per sans-I/O cost figure (200)"
    )
    # Internal: the child processes.
    parser.add_argument("--role", choices=("main", "victim", "flooder"), default="main")
    parser.add_argument("--seed", default="", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--admission", choices=("on", "off"), default="on", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "victim":
        _quiet_logs()
        bench.run(run_victim(args.seed, args.t0, args.path, args.admission == "on"))
        return 0
    if args.role == "flooder":
        bench.run(run_flooder(args.seed, args.t0, args.path, args.count, args.valid_share))
        return 0
    if min(args.repeat, args.rounds, args.core_samples) < 1:
        parser.error("--repeat, --rounds and --core-samples must be positive")
    if not (args.rate > 0 and args.flood_seconds > 0 and 0.0 <= args.valid_share <= 1.0):
        parser.error("--rate and --flood-seconds must be positive, --valid-share in [0, 1]")
    figures = bench.run(
        measure(
            path=args.path,
            repeat=args.repeat,
            rounds=args.rounds,
            rate=args.rate,
            flood_seconds=args.flood_seconds,
            valid_share=args.valid_share,
            core_samples=args.core_samples,
        )
    )
    print(json.dumps(figures) if args.json else _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
