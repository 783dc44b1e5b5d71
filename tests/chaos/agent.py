"""One chaos-test node: a real l2session :class:`Node` in its own OS process
(and, for the namespace tests, its own network namespace).

The test drives it through its command line, stdin and stdout:

* stdout: one JSON object per line -- ``ready`` (DID, address), ``session``
  (established, and whether it was restored from the store), ``sent`` /
  ``received`` (the stream finished), ``rebound`` (new address), ``error``;
* stdin: ``rebind HOST:PORT`` (the host changed address: listen there and
  announce MIGRATE) and ``stop``.

Roles:

* ``relay`` serves as a relay (``--relay-max-bytes`` and friends set its
  limits) until told to stop; with ``--count 0`` no session is awaited.

* ``sender`` streams ``--count`` numbered messages to ``--peer``.  After a
  restart it continues from ``Session.sent`` -- what the store says
  survived -- so a crash repeats nothing and skips nothing (the contract of
  core/lifecycle/persistence.py).
* ``receiver`` appends every message it is handed to ``--log`` (one line
  each, written before the next receive).  With ``--die-after K`` it kills
  itself with SIGKILL at a random moment after K messages (between receive
  calls: the library's window, not the application's own handling of a
  batch it was just given, is what the test is about).

Every wait has a timeout; a stuck agent exits non-zero and says why.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import random
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from l2session import Node, SessionConfig
from l2session.runtime.handle import SessionHandle
from l2session.transports.relay_server import RelayLimits

#: Every message is this long by default: its number, zero-padded, then
#: padding (``--size`` changes it: bigger messages mean more packets to lose).
PAYLOAD_SIZE = 32
#: No wait in the agent lasts longer than this (the tests bound it too).
WAIT = 120.0


def payload(index: int, size: int = PAYLOAD_SIZE) -> bytes:
    return (b"%010d|" % index).ljust(size, b".")


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def say(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def config(args: argparse.Namespace) -> SessionConfig:
    """Short liveness timers, so a partition of seconds degrades the
    session and its end restores it within the test's budget."""
    return SessionConfig(
        heartbeat_interval=args.heartbeat,
        heartbeat_timeout=args.heartbeat / 2,
        max_rto=2.0,
        # A short queue makes the sender wait for acknowledgements, so a
        # crash finds messages in every stage: unsent, in flight, unacked.
        max_queued=args.queue,
        recovery_interval=2.0,
        degraded_timeout=60.0,
        hole_punching=not args.no_punch,
    )


def read_commands(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str]) -> None:
    """stdin lines onto ``lines`` (a daemon thread: a blocked read must not
    keep the process alive, as the default executor's thread would)."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line.strip())
    loop.call_soon_threadsafe(lines.put_nowait, "stop")


async def commands(node: Node, stop: asyncio.Event) -> None:
    """Obey stdin until ``stop`` (or end of file)."""
    lines: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    threading.Thread(target=read_commands, args=(loop, lines), daemon=True).start()
    while not stop.is_set():
        line = await lines.get()
        verb, _, argument = line.partition(" ")
        if verb == "stop":
            stop.set()
        elif verb == "stats" and node.relaying.server is not None:
            say("relayed", **dataclasses.asdict(node.relaying.server.stats))
        elif verb == "rebind":
            address = await node.rebind(argument)
            say("rebound", address=address)
        else:
            say("error", message=f"unknown command {line!r}")


async def session_of(node: Node, args: argparse.Namespace) -> tuple[SessionHandle, bool]:
    """The stream's session: restored from the store, else established
    (sender) or accepted (receiver)."""
    restored = node.sessions()
    if restored:
        handle = restored[0]
        await handle.established(timeout=WAIT)
        return handle, True
    if args.role == "sender":
        timeout = args.establish_timeout or WAIT
        return await node.establish(args.peer, args.peer_address, timeout=timeout), False
    handle = await node.accept(timeout=WAIT)
    await handle.established(timeout=WAIT)
    return handle, False


async def watch_route(handle: SessionHandle) -> None:
    """Say ``route`` whenever the session's primary route changes, so a
    test can wait for a fallback or a migration without polling a store
    the node holds open (the audit log is read after the node stops)."""
    last = (handle.address, handle.path)
    while True:
        await asyncio.sleep(0.05)
        now = (handle.address, handle.path)
        if now != last:
            last = now
            say("route", address=now[0], path=now[1])


async def send(handle: SessionHandle, count: int, size: int) -> None:
    start = handle.session.sent
    for index in range(start, count):
        await handle.send(payload(index, size), timeout=WAIT)
    await handle.flush(timeout=WAIT)
    say("sent", start=start, count=count)


async def receive(handle: SessionHandle, args: argparse.Namespace) -> None:
    log = Path(args.log)
    received = len(log.read_bytes().splitlines()) if log.exists() else 0
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    doomed = False
    try:
        while received < args.count:
            batch = await handle.receive_many(1024, timeout=WAIT)
            os.write(fd, b"".join(message + b"\n" for message in batch))
            received += len(batch)
            if args.die_after and received >= args.die_after and not doomed:
                doomed = True
                delay = random.uniform(0.0, 0.3)
                asyncio.get_running_loop().call_later(delay, os.kill, os.getpid(), signal.SIGKILL)
    finally:
        os.close(fd)
    say("received", count=received)


def relay_limits(args: argparse.Namespace) -> RelayLimits:
    return RelayLimits(
        circuit_max_bytes=args.relay_max_bytes,
        max_reservations=args.relay_max_reservations,
        max_reservations_per_ip=args.relay_max_per_ip,
    )


async def reserved(node: Node) -> None:
    """Wait until every relay we reserve on has answered RESERVE_OK."""
    client = node.relaying.client
    assert client is not None
    for _ in range(int(WAIT / 0.05)):
        if all(client.reserved(relay) for relay in client.reservations):
            observed = {r: v.observed for r, v in client.reservations.items()}
            say("reserved", observed=observed)
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("no reservation within the wait")


async def main(args: argparse.Namespace) -> int:
    node = Node(
        store=Path(args.home) / "node.db",
        listen=args.listen,
        config=config(args),
        peers={args.peer: args.peer_address} if args.peer else None,
        connect_timeout=args.connect_timeout,
        quic_idle_timeout=args.quic_idle,
        quic_probe_interval=args.quic_probe,
        quic_stall_timeout=args.quic_stall,
        relay=args.role == "relay",
        relays=args.reserve_on,
        relay_limits=relay_limits(args),
        discovery=args.discovery,
        discovery_targets=args.discover_via,
    )
    stop = asyncio.Event()
    async with node:
        say("ready", did=node.did, address=node.address)
        reader = asyncio.create_task(commands(node, stop))
        if args.reserve_on:
            await reserved(node)
        if args.discover_via:
            seen = await node.check_reachability()
            say("reachability", **seen.as_json())
        if args.role == "relay":
            await asyncio.wait_for(stop.wait(), timeout=4 * WAIT)
            server = node.relaying.server
            assert server is not None
            say("relayed", **dataclasses.asdict(server.stats))
            reader.cancel()
            return 0
        started = loop_time()
        handle, restored = await session_of(node, args)
        seconds = round(loop_time() - started, 3)
        say("session", peer=handle.peer_did, restored=restored, path=handle.path, seconds=seconds)
        for relay in args.standby_relay:
            node.add_relay_route(handle.peer_did, relay)
        watcher = asyncio.create_task(watch_route(handle))
        if args.role == "sender":
            await send(handle, args.count, args.size)
        else:
            await receive(handle, args)
        await asyncio.wait_for(stop.wait(), timeout=WAIT)
        reader.cancel()
        watcher.cancel()
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--role", choices=("sender", "receiver", "relay"), required=True)
    parser.add_argument("--peer", help="the receiver's DID (sender)")
    parser.add_argument("--peer-address", help="the receiver's address (sender)")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--reserve-on", action="append", default=[], metavar="DID@HOST:PORT")
    parser.add_argument("--standby-relay", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--no-punch", action="store_true", help="keep relayed sessions relayed")
    parser.add_argument("--discovery", metavar="HOST:PORT", help="answer discovery here")
    parser.add_argument("--discover-via", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--relay-max-bytes", type=int, default=1 << 30)
    parser.add_argument("--relay-max-reservations", type=int, default=1024)
    parser.add_argument("--relay-max-per-ip", type=int, default=4)
    parser.add_argument("--log", help="where the receiver appends what it is handed")
    parser.add_argument("--die-after", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log at info level to stderr")
    parser.add_argument("--size", type=int, default=PAYLOAD_SIZE)
    parser.add_argument("--queue", type=int, default=256)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--connect-timeout", type=float, default=2.0)
    parser.add_argument("--quic-idle", type=float, default=4.0)
    parser.add_argument("--quic-probe", type=float, default=2.0)
    parser.add_argument("--quic-stall", type=float, default=1.0)
    parser.add_argument(
        "--establish-timeout", type=float, default=0.0, help="establish() timeout (0: the default)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    logging.basicConfig(
        level=logging.INFO if arguments.verbose else logging.WARNING,
        format="%(relativeCreated)8.0f %(name)s %(message)s",
    )
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(arguments), timeout=4 * WAIT)))
    except Exception as error:  # the test reads why, then fails
        say("error", message=f"{type(error).__name__}: {error}")
        sys.exit(1)
