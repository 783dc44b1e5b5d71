"""The node commands: ``init``, ``node``, ``sessions``, ``send``, ``listen``.

``init`` and ``node`` work on the data directory (``--home``, default
``$XDG_DATA_HOME/l2session``): the SQLite store ``node.db`` holds the
identity, prekeys and sessions.  The other commands talk to the running
node through its control socket ``control.sock`` in the same directory
(mode 0600, see :mod:`l2session.runtime.control`).  Every failure a user can
cause prints one line saying what is wrong and what to do, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from l2session.core.config import SessionConfig
from l2session.core.envelope import Request
from l2session.errors import ConfigError, L2SessionError, PolicyError
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.runtime import control
from l2session.runtime.clock import SystemClock
from l2session.runtime.directory import parse_peer
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.events import NodeEvent
from l2session.runtime.loop import run
from l2session.runtime.node import Node
from l2session.runtime.policyfile import load_policy
from l2session.runtime.reachability import Reachability
from l2session.store.files import data_home, make_private_dirs
from l2session.store.sqlite import SqliteStore
from l2session.transports.address import parse_address

STORE_NAME = "node.db"


def home_of(args: argparse.Namespace) -> Path:
    return Path(args.home) if args.home else data_home()


def socket_of(args: argparse.Namespace) -> Path:
    return home_of(args) / control.SOCKET_NAME


def passphrase_of(args: argparse.Namespace) -> str | None:
    name = getattr(args, "passphrase_env", None)
    if not name:
        return None
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"--passphrase-env {name}: that environment variable is not set")
    return value


# ----------------------------------------------------------------------
# init


def init(args: argparse.Namespace, out: TextIO) -> int:
    home = home_of(args)
    make_private_dirs(home)
    path = home / STORE_NAME
    rng = SystemRandom()
    with SqliteStore.open(path) as store:
        identity = Identity.generate(rng)
        store.save_identity(identity, passphrase_of(args), overwrite=args.force)
        prekeys = PrekeyStore.create(identity, rng=rng, now=SystemClock().now())
        store.put_prekeys(prekeys.to_bytes())
        store.commit()
    out.write(f"created identity {identity.did_text}\n  store: {path}\n")
    return 0


# ----------------------------------------------------------------------
# node


def describe(line: dict[str, Any] | None) -> str | None:
    """One state or path line (as the control socket sends them) as text."""
    if line is None:
        return None
    if line["type"] == "state":
        return f"{line['peer']}: {line['from']} -> {line['to']} ({line['reason']})"
    if line["type"] == "path":
        verb = "up" if line["up"] else f"down: {line['reason']}"
        return f"path {line['path']} to {line['address']} {verb}"
    if line["type"] == "refused":
        return f"{line['peer']}: refused #{line['seq']} {line['request']}: {line['reason']}"
    if line["type"] == "denied":
        return f"{line['peer']}: denied our #{line['seq']}: {line['reason']}"
    return None


def session_config(args: argparse.Namespace) -> SessionConfig:
    interval = getattr(args, "heartbeat_interval", None)
    if interval is None:
        return SessionConfig()
    return SessionConfig(heartbeat_interval=interval, heartbeat_timeout=min(2.0, interval / 2))


async def _run_node(args: argparse.Namespace, out: TextIO) -> int:
    home = home_of(args)
    path = home / STORE_NAME
    if not path.exists():
        raise ConfigError(f"no identity in {home}: create one first with: l2session init")
    peers = dict(parse_peer(p) for p in args.peer)
    parse_address(args.listen, allow_zero_port=True)
    control.check_socket_path(home / control.SOCKET_NAME)
    node = Node(
        store=path,
        passphrase=passphrase_of(args),
        listen=args.listen,
        peers=peers,
        config=session_config(args),
        discovery=args.discovery or (f"{host_of(args.listen)}:0" if args.discover_via else None),
        discovery_targets=args.discover_via,
        policy=args.policy,
        durability=args.durability,
        outbound_only=args.outbound_only,
        relay=args.relay,
        relays=args.reserve_on,
    )

    def show(event: NodeEvent) -> None:
        line = describe(control.event_line(event))
        if line and not args.quiet:
            out.write(line + "\n")
            out.flush()

    node.add_listener(show)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def reload_policy() -> None:
        """SIGHUP: read the policy file and the trust graph again; a bad
        policy file keeps the old policy."""
        if node.membrane is None or args.policy is None:
            return
        try:
            node.membrane.set_policy(load_policy(args.policy))
        except PolicyError as error:
            out.write(f"policy not reloaded, the old one stays: {error}\n")
        else:
            out.write(f"policy reloaded from {args.policy}\n")
        try:
            node.reload_trust()
        except L2SessionError as error:
            out.write(f"trust graph not reloaded: {error}\n")
        out.flush()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload_policy)
    async with node:
        server = control.ControlServer(node, home / control.SOCKET_NAME)
        await server.start()
        out.write(f"node {node.did} listening on {node.address} (quic, tcp)\n")
        if args.policy is not None:
            out.write(
                f"capability requests screened by {args.policy} "
                "(SIGHUP reloads it and the trust graph)\n"
            )
        if node.discovery is not None:
            out.write(f"discovery on {node.discovery.address}\n")
        out.flush()
        try:
            stopping = asyncio.ensure_future(stop.wait())
            failed = asyncio.ensure_future(node.stopped.wait())
            await asyncio.wait({stopping, failed}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            failed.cancel()
        finally:
            await server.close()
    if node.failure is not None:
        return fail(f"the node stopped: {node.failure}")
    out.write("node stopped\n")
    return 0


def host_of(listen: str) -> str:
    host, _ = parse_address(listen, allow_zero_port=True)
    return f"[{host}]" if ":" in host else host


def run_node(args: argparse.Namespace, out: TextIO) -> int:
    return run(_run_node(args, out))


# ----------------------------------------------------------------------
# control-socket commands


def sessions(args: argparse.Namespace, out: TextIO) -> int:
    response = run(control.request(socket_of(args), {"op": "sessions"}))
    rows = response["sessions"]
    if args.json:
        import json

        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    reach = response.get("reachability") or {}
    if reach.get("checked_at") is not None:
        out.write(Reachability(**{**reach, "by": tuple(reach["by"])}).describe() + "\n")
    for line in response.get("relaying") or []:
        out.write(f"{line}\n")
    if not rows:
        out.write("no sessions\n")
        return 0
    header = ("PEER", "STATE", "TRANSPORT", "AGE", "EPOCH", "QUEUED")
    table = [header] + [
        (
            r["peer"],
            r["state"],
            r["transport"],
            f"{r['age_s']:.0f}s",
            "-" if r["key_epoch"] is None else str(r["key_epoch"]),
            str(r["queued"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    return 0


def send(args: argparse.Namespace, out: TextIO) -> int:
    if args.to is not None:
        parse_address(args.to.removeprefix("relay://"))
    text = sys.stdin.read() if args.message == "-" else args.message
    body = {
        "op": "send",
        "did": args.did,
        "address": args.to,
        "data_b64": base64.b64encode(text.encode()).decode(),
        "timeout": args.timeout,
    }
    if args.capability is not None:
        Request.parse(args.capability)  # a clear error before the node is asked
        body["capability"] = args.capability
    response = run(control.request(socket_of(args), body, timeout=args.timeout + 5))
    if response.get("denied"):
        out.write(f"denied #{response['seq']}: {response['denied']}\n")
        return 3
    if response["delivered"]:
        out.write(f"delivered #{response['seq']} over {response['transport']}\n")
    else:
        out.write(
            f"queued #{response['seq']}: not acknowledged within {args.timeout} s; "
            "the node keeps it and delivers it when the peer is reachable\n"
        )
    return 0


async def _listen(args: argparse.Namespace, out: TextIO) -> int:
    seen = 0
    loop = asyncio.get_running_loop()
    deadline = None if args.timeout is None else loop.time() + args.timeout
    stream = control.listen(socket_of(args), events=args.events, count=args.count)
    try:
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return 1 if args.count is not None else 0
            try:
                item = await asyncio.wait_for(anext(stream), remaining)
            except (StopAsyncIteration, TimeoutError):
                return 1 if args.count is not None else 0
            if item.get("type") == "message":
                text = base64.b64decode(item["data_b64"]).decode("utf-8", "replace")
                out.write(f"{item['from']}: {text}\n")
                seen += 1
            elif item.get("type") == "acked" and args.count is not None and seen >= args.count:
                return 0  # the node took the messages only now that they are shown
            elif (shown := describe(item)) is not None:
                out.write(shown + "\n")
            out.flush()
    finally:
        await stream.aclose()
    return 0


def listen(args: argparse.Namespace, out: TextIO) -> int:
    return run(_listen(args, out))


def add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=os.environ.get("L2SESSION_HOME"),
        help="the node's data directory (default $L2SESSION_HOME, else $XDG_DATA_HOME/l2session)",
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("init", help="create an identity and prekeys in the data directory")
    add_home(p)
    p.add_argument("--force", action="store_true", help="replace an existing identity (lost!)")
    p.add_argument("--passphrase-env", metavar="VAR", help="encrypt the key with $VAR")
    p.set_defaults(handler=init)

    p = commands.add_parser("node", help="run a node in the foreground (QUIC and μTCP)")
    add_home(p)
    p.add_argument("--listen", default="127.0.0.1:7700", help="host:port (default %(default)s)")
    p.add_argument("--peer", action="append", default=[], metavar="DID@HOST:PORT")
    p.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in $VAR")
    p.add_argument("--heartbeat-interval", type=float, default=None, metavar="SECONDS")
    p.add_argument(
        "--discovery",
        metavar="HOST:PORT",
        help="answer UDP discovery (who has my DID?) on this address",
    )
    p.add_argument(
        "--discover-via",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="ask here (unicast or broadcast) where an unknown DID is; repeatable",
    )
    p.add_argument("--quiet", action="store_true", help="do not print state changes")
    p.add_argument(
        "--relay",
        action="store_true",
        help="also serve as a relay for others (off by default; limits: docs/NETWORK.md)",
    )
    p.add_argument(
        "--reserve-on",
        action="append",
        default=[],
        metavar="DID@HOST:PORT",
        help="hold a reservation on this relay (peers reach us as relay://HOST:PORT); repeatable",
    )
    p.add_argument(
        "--outbound-only",
        action="store_true",
        help="not reachable where it listens (behind a NAT): peers never dial this node",
    )
    p.add_argument(
        "--policy",
        metavar="FILE",
        help="screen peers' capability requests with this TOML policy (SIGHUP reloads it)",
    )
    p.add_argument(
        "--durability",
        choices=("power", "process"),
        default="power",
        help="power (default): acknowledgements survive power loss (one fsync per burst); "
        "process: no fsyncs, survives crashes only -- a power cut may lose messages peers "
        "were told had arrived (docs/STORE.md)",
    )
    p.set_defaults(handler=run_node)

    p = commands.add_parser("sessions", help="the running node's sessions")
    add_home(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=sessions)

    p = commands.add_parser("send", help="send a message to a peer (establishes a session)")
    add_home(p)
    p.add_argument("did")
    p.add_argument("message", help="the text to send; - reads it from standard input")
    p.add_argument(
        "--to",
        metavar="HOST:PORT",
        help="where the peer listens, if not known (relay://HOST:PORT: through that relay)",
    )
    p.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS")
    p.add_argument(
        "--capability",
        metavar="'ACTION RESOURCE [UNITS]'",
        help="ask the peer's Membrane for this capability (exit 3 if it refuses)",
    )
    p.set_defaults(handler=send)

    p = commands.add_parser("listen", help="print messages as the running node receives them")
    add_home(p)
    p.add_argument("--count", type=int, default=None, help="exit after this many messages")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    p.add_argument("--events", action="store_true", help="also print state and path changes")
    p.set_defaults(handler=listen)


def fail(message: str) -> int:
    sys.stderr.write(f"l2session: error: {message}\n")
    return 1
