"""Where an idle QUIC connection's memory goes (issue 23), measured in one
process with qh3 connections paired in memory (no sockets, no loop).

``python benchmarks/quic_memory.py [--json] [--n 2000] [--variant ...]``

For each variant of the project's QUIC configuration
(``transports/quic.py`` ``make_configurations``): N client/server pairs
handshake by passing datagrams in memory, then exchange one 100-byte
message on one bidirectional stream (as a session's first packet does);
the clients are dropped and the memory still held by the N server
connections is measured:

``rss_kb_per_conn``
    Process RSS after, minus before, over N (after ``gc.collect`` and
    ``malloc_trim``): everything, qh3's native (Rust) core included.
``python_kb_per_conn``
    What tracemalloc sees (Python objects only) over N; ``native_kb_per_conn``
    is the difference: qh3 2.x keeps its packet core (streams, buffers,
    recovery, crypto keys) in Rust, invisible to tracemalloc.
``top_python``
    The largest Python allocation sites per connection (file:line, bytes).

Variants: ``default`` (the project's configuration), ``small_windows``
(max_data / max_stream_data of 256 KiB / 64 KiB instead of qh3's 15 MiB /
6 MiB), ``no_tls`` (default, and after the handshake the connection's
Python TLS bridge state is released) -- the last only measures what the
TLS state costs; it is not something the transport does.
Baseline: the same N of plain Python dicts is not meaningful; the figure to
compare is the hub's RSS per session from benchmarks/hub.py.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from l2session.transports.quic import make_configurations
from l2session.transports.quic_library import QuicConnection, events

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_kb() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE // 1024


def trim() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def pair(server_cfg: Any, client_cfg: Any, index: int, now: float) -> QuicConnection:
    """One client/server pair handshaken in memory; the server returned."""
    client = QuicConnection(configuration=client_cfg)
    caddr = (f"127.0.{index // 250}.{index % 250 + 1}", 40000)
    saddr = ("127.0.0.1", 7700)
    client.connect(saddr, now)
    server: QuicConnection | None = None
    for _ in range(20):
        moved = False
        for data, _addr in client.datagrams_to_send(now):
            if server is None:
                server = QuicConnection(
                    configuration=server_cfg,
                    original_destination_connection_id=client.original_destination_connection_id,
                )
            server.receive_datagram(data, caddr, now)
            moved = True
        if server is not None:
            for data, _addr in server.datagrams_to_send(now):
                client.receive_datagram(data, saddr, now)
                moved = True
        done = False
        while (event := client.next_event()) is not None:
            if isinstance(event, events.HandshakeCompleted):
                done = True
        if done and not moved:
            break
        now += 0.001
    assert server is not None
    stream = client.get_next_available_stream_id()
    client.send_stream_data(stream, b"m" * 100)
    for data, _addr in client.datagrams_to_send(now):
        server.receive_datagram(data, caddr, now)
    for data, _addr in server.datagrams_to_send(now):
        client.receive_datagram(data, saddr, now)
    while server.next_event() is not None:
        pass
    return server


def build(variant: str, n: int) -> list[QuicConnection]:
    server_cfg, client_cfg = make_configurations(90.0)
    if variant == "small_windows":
        for cfg in (server_cfg, client_cfg):
            cfg.max_data = 256 * 1024
            cfg.max_stream_data = 64 * 1024
    servers = []
    for i in range(n):
        server = pair(server_cfg, client_cfg, i, 1000.0)
        if variant == "no_tls":
            server._tls = None  # what the TLS state costs (measurement only)
        servers.append(server)
    return servers


def phase_rss(variant: str, n: int) -> dict[str, Any]:
    """RSS per connection, without tracemalloc (whose own traces are big)."""
    build(variant, 20)  # warm up: imports, caches, the certificate
    trim()
    rss0 = rss_kb()
    servers = build(variant, n)
    trim()
    rss1 = rss_kb()
    assert len(servers) == n
    return {"rss_kb_per_conn": round((rss1 - rss0) / n, 2)}


def phase_python(variant: str, n: int) -> dict[str, Any]:
    """What tracemalloc sees per connection, and where."""
    build(variant, 20)
    trim()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    servers = build(variant, n)
    trim()
    stats = tracemalloc.take_snapshot().compare_to(before, "lineno")
    tracemalloc.stop()
    assert len(servers) == n
    top = [
        {
            "where": f"{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno}",
            "bytes_per_conn": round(s.size_diff / n),
        }
        for s in sorted(stats, key=lambda s: -s.size_diff)[:10]
    ]
    total = sum(s.size_diff for s in stats)
    return {"python_kb_per_conn": round(total / n / 1024, 2), "top_python": top}


def measure(variant: str, n: int) -> dict[str, Any]:
    """Each phase in a fresh process (an allocator's history skews RSS)."""
    out: dict[str, Any] = {"n": n}
    for phase in ("rss", "python"):
        result = subprocess.run(
            [sys.executable, __file__, "--phase", phase, "--variant", variant, "--n", str(n)],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        )
        out.update(json.loads(result.stdout))
    out["native_kb_per_conn"] = round(out["rss_kb_per_conn"] - out["python_kb_per_conn"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--variant", default="default,small_windows,no_tls")
    parser.add_argument("--phase", choices=["rss", "python"], help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.phase:
        phase = phase_rss if opts.phase == "rss" else phase_python
        print(json.dumps(phase(opts.variant, opts.n)))
        return
    results = {v: measure(v, opts.n) for v in opts.variant.split(",")}
    print(json.dumps(results, indent=None if opts.json else 2))


if __name__ == "__main__":
    main()
