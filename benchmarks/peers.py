"""Peer benchmark: l2session against raw TCP, CurveZMQ and py-libp2p, in one run.

``python benchmarks/peers.py [--json]`` measures, interleaved round by round
(raw TCP, CurveZMQ, libp2p, l2session over μTCP, l2session over QUIC, then
again) so that the noise of a shared machine hits every contender alike,
two figures for each, all on 127.0.0.1:

* 1 KiB messages one way, messages per second (``*_msgs_per_s``);
* 64-byte ping-pong round trip, p50 in µs (``*_rtt_us``).

Contenders and how each is run:

``raw_tcp``
    asyncio Protocols over plain TCP with 4-byte length framing, both ends
    in this process on one loop -- ``benchmarks/network.py``'s baseline,
    imported from it.
``curvezmq``
    pyzmq DEALER sockets with CURVE security (CurveZMQ: X25519 +
    XSalsa20-Poly1305 per message), the server in a second process
    (``_peer_child.py zmq-server``), the client here with blocking calls;
    throughput timed from the first send until the server's count of all
    of them comes back.  ZeroMQ's own I/O threads do the socket work.
``libp2p``
    py-libp2p over TCP with Noise (XX, ChaCha20-Poly1305) and yamux, one
    stream, both ends in their own processes (``_peer_child.py``: trio);
    each message one ``stream.write`` of a length-framed frame.  Run with
    ``--libp2p-python`` (default: this interpreter); skipped, with the
    reason printed, when that interpreter cannot import libp2p.
``l2s_tcp`` / ``l2s_quic``
    l2session sessions between two real nodes (PQXDH, Double Ratchet with
    the default sparse DH steps, delivery with acks) over μTCP and QUIC,
    both nodes in this process on one loop -- :mod:`l2session.cli.bench`,
    as ``benchmarks/network.py`` measures them.

Ratios (l2session over μTCP against each peer): ``l2s_vs_<peer>_msgs`` =
l2session's messages per second / the peer's (above 1: l2session
faster); ``l2s_vs_<peer>_rtt`` = l2session's round trip / the peer's
(below 1: l2session faster), as ``rtt_ratio`` in network.py.

Caveat, stated in the output as ``layout``: CurveZMQ and libp2p get two
processes (on this 2-core machine, two cores); l2session and raw TCP do
both ends' work on one core.  The comparison is therefore conservative for
l2session.  No peer offers what l2session does (post-quantum keys, a
ratchet per message, exactly-once delivery across restarts): these are the
costs of transports of a similar shape, not of equals.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from l2session.cli import bench

HERE: Final = Path(__file__).resolve().parent
CHILD: Final = HERE / "_peer_child.py"
BULK: Final = bench.BULK_SIZE
PING: Final = bench.PING_SIZE
TARGETS: Final = {"l2s_vs_curvezmq_msgs": (">=", 0.5)}
CONTENDERS: Final = ("raw_tcp", "curvezmq", "libp2p", "l2s_tcp", "l2s_quic")


def _network() -> ModuleType:
    """``benchmarks/network.py`` as a module (its raw TCP baseline)."""
    name = "l2session_benchmark_network_for_peers"
    spec = importlib.util.spec_from_file_location(name, HERE / "network.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _Child:
    """A peer process that prints ``READY ...`` once it serves."""

    def __init__(self, python: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [python, str(CHILD), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] != "READY":
            self.close()
            error = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"peer {args[0]} did not start: {error.strip()[-500:]}")
        self.ready = line[1:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


# ----------------------------------------------------------------------
# CurveZMQ


def curvezmq(messages: int, rounds: int) -> tuple[float, float]:
    """(messages per second, p50 round trip in µs) over CurveZMQ."""
    import zmq

    child = _Child(sys.executable, "zmq-server")
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    try:
        port, server_key = child.ready
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey = public
        sock.curve_secretkey = secret
        sock.rcvtimeo = int(bench.TIMEOUT * 1000)
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(b"e")  # the CURVE handshake, outside the timers
        sock.recv()
        data = b"d" + bench.payload(BULK - 1)
        send = sock.send
        t0 = time.perf_counter()
        for _ in range(messages):
            send(data)
        send(b"s")
        answer = sock.recv()
        seconds = time.perf_counter() - t0
        if answer != b"s%d" % messages:
            raise RuntimeError(f"CurveZMQ: the server counted {answer!r} of {messages}")
        ping = b"e" + bench.payload(PING - 1)
        samples: list[float] = []
        for index in range(rounds + 50):
            t0 = time.perf_counter()
            send(ping)
            echo = sock.recv()
            elapsed = time.perf_counter() - t0
            if echo != ping:
                raise RuntimeError("CurveZMQ: the echo differs from the ping")
            if index >= 50:
                samples.append(elapsed)
        send(b"q")
        return messages / seconds, 1e6 * statistics.median(samples)
    finally:
        sock.close(linger=0)
        context.term()
        child.close()


# ----------------------------------------------------------------------
# py-libp2p


def libp2p_missing(python: str) -> str | None:
    """Why ``python`` cannot run the libp2p peer (None: it can)."""
    try:
        probe = subprocess.run(
            [python, "-c", "import libp2p, trio, multiaddr"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except OSError as error:
        return f"{python} cannot be run: {error}"
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {probe.returncode}"


def libp2p(python: str, messages: int, rounds: int) -> tuple[float, float]:
    """(messages per second, p50 round trip in µs) over py-libp2p."""
    child = _Child(python, "libp2p-server")
    try:
        args = [str(CHILD), "libp2p-client", child.ready[0], str(messages), str(rounds)]
        done = subprocess.run(
            [python, *args, str(BULK), str(PING)],
            capture_output=True,
            text=True,
            check=False,
            timeout=bench.TIMEOUT * 4,
        )
        if done.returncode != 0:
            raise RuntimeError(f"libp2p client failed: {done.stderr.strip()[-500:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        return float(figures["msgs_per_s"]), float(figures["rtt_us"])
    finally:
        child.close()


# ----------------------------------------------------------------------
# one run


def _l2s(path: str, messages: int, rounds: int) -> tuple[float, float]:
    async def both() -> tuple[float, float]:
        result = await bench.session_throughput(path, messages)
        samples = await bench.session_rtt(path, rounds)
        return messages / result.seconds, 1e6 * bench.p50(samples)

    return bench.run(both())


def _raw_tcp(network: ModuleType, messages: int, rounds: int) -> tuple[float, float]:
    async def both() -> tuple[float, float]:
        result = await network.raw_tcp_throughput(messages)
        samples = await network.raw_tcp_rtt(rounds)
        return messages / float(result.seconds), 1e6 * bench.p50(samples)

    return bench.run(both())


def measure(messages: int, rounds: int, repeat: int, libp2p_python: str) -> dict[str, Any]:
    network = _network()
    skipped: dict[str, str] = {}
    reason = libp2p_missing(libp2p_python)
    if reason is not None:
        skipped["libp2p"] = f"py-libp2p cannot be imported by {libp2p_python}: {reason}"
        print(f"libp2p skipped: {skipped['libp2p']}", file=sys.stderr)
    try:
        import zmq  # noqa: F401
    except ImportError as error:
        skipped["curvezmq"] = f"pyzmq is not installed: {error}"
        print(f"CurveZMQ skipped: {skipped['curvezmq']}", file=sys.stderr)
    runners: dict[str, Callable[[], tuple[float, float]]] = {
        "raw_tcp": lambda: _raw_tcp(network, messages, rounds),
        "curvezmq": lambda: curvezmq(messages, rounds),
        "libp2p": lambda: libp2p(libp2p_python, min(messages, LIBP2P_MESSAGES), rounds),
        "l2s_tcp": lambda: _l2s("tcp", messages, rounds),
        "l2s_quic": lambda: _l2s("quic", messages, rounds),
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in CONTENDERS}
    for _ in range(repeat):
        for name in CONTENDERS:
            if name not in skipped:
                runs[name].append(runners[name]())
    out: dict[str, Any] = {}
    for name in CONTENDERS:
        if name in skipped:
            continue
        out[f"{name}_1k_msgs_per_s"] = round(statistics.median(r[0] for r in runs[name]))
        out[f"{name}_rtt_64_us"] = round(statistics.median(r[1] for r in runs[name]), 1)
    l2s_msgs, l2s_rtt = out["l2s_tcp_1k_msgs_per_s"], out["l2s_tcp_rtt_64_us"]
    for peer in ("raw_tcp", "curvezmq", "libp2p"):
        if peer in skipped:
            continue
        key = "raw" if peer == "raw_tcp" else peer
        out[f"l2s_vs_{key}_msgs"] = round(l2s_msgs / out[f"{peer}_1k_msgs_per_s"], 3)
        out[f"l2s_vs_{key}_rtt"] = round(l2s_rtt / out[f"{peer}_rtt_64_us"], 3)
    out["targets"] = {
        key: {"target": f"{op} {bound}", "met": key in out and out[key] >= bound}
        for key, (op, bound) in TARGETS.items()
    }
    out.update(
        skipped=skipped,
        messages=messages,
        libp2p_messages=min(messages, LIBP2P_MESSAGES),
        rtt_rounds=rounds,
        repeat=repeat,
        layout="curvezmq and libp2p: two processes; raw_tcp and l2s: both ends in one process",
        loop=bench.loop_name(),
        cpus=os.cpu_count(),
    )
    return out


#: py-libp2p moves about 1,500 messages per second here: a throughput run
#: of 40,000 would take half a minute per round, so it sends fewer (the
#: figure is a rate; ``libp2p_messages`` in the output says how many).
LIBP2P_MESSAGES: Final = 5_000


def _table(figures: dict[str, Any]) -> str:
    shown = {k: v for k, v in figures.items() if k not in ("targets", "skipped")}
    width = max(len(key) for key in shown)
    lines = [f"{key:<{width}}  {value}" for key, value in shown.items()]
    lines += [f"skipped: {name}: {why}" for name, why in figures["skipped"].items()]
    for key, target in figures["targets"].items():
        verdict = "met" if target["met"] else "MISSED"
        lines.append(f"target: {key} {target['target']}: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--messages", type=int, default=40_000, help="messages per throughput run (40,000)"
    )
    parser.add_argument("--rounds", type=int, default=2_000, help="ping-pongs per run (2,000)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds, median (3)")
    parser.add_argument(
        "--libp2p-python",
        default=os.environ.get("L2S_LIBP2P_PYTHON", sys.executable),
        help="interpreter with py-libp2p installed (default: $L2S_LIBP2P_PYTHON or this one)",
    )
    args = parser.parse_args(argv)
    if min(args.messages, args.rounds, args.repeat) < 1:
        parser.error("--messages, --rounds and --repeat must be positive")
    figures = measure(args.messages, args.rounds, args.repeat, args.libp2p_python)
    print(json.dumps(figures) if args.json else _table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
