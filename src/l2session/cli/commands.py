"""The node commands: ``init``, ``node`` and ``config check``.

``init`` and ``node`` work on the data directory (``--home``, default
``$XDG_DATA_HOME/l2session``): the SQLite store ``node.db`` holds the
identity, prekeys and sessions.  The client commands (``status``, ``send``,
``listen``...) talk to the running node through its control socket
``control.sock`` in the same directory (cli/control_commands.py).  Every
failure a user can cause prints one line saying what is wrong and what to
do, and exits 1.  ``node``'s options come from one table
(cli/node_options.py), as flags or from ``--config FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import TextIO

from l2session.cli import federation, node_options
from l2session.cli.client import SOCKET_NAME, add_home, fail, home_of
from l2session.cli.control_commands import describe
from l2session.cli.node_log import NodeLog, setup_logging
from l2session.core.config import SessionConfig
from l2session.errors import ConfigError, L2SessionError, PolicyError, StoreError
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
from l2session.store.files import make_private_dirs
from l2session.store.sqlite import SqliteStore
from l2session.transports.address import parse_address

STORE_NAME = "node.db"
#: Idempotency keys of ``send --id`` (runtime/control_ops.py).
SEND_IDS_NAME = "send-ids.json"

__all__ = ["STORE_NAME", "add_home", "fail", "home_of", "passphrase_of", "register"]


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
        try:
            store.save_identity(identity, passphrase_of(args), overwrite=args.force)
        except StoreError as error:
            if "already holds the identity" not in str(error):
                raise
            did = str(error).split("identity ", 1)[1].split(";", 1)[0]
            raise StoreError(
                f"{path} already holds the identity {did}; init --force replaces it "
                "(that identity and its sessions are lost for good)"
            ) from None
        prekeys = PrekeyStore.create(identity, rng=rng, now=SystemClock().now())
        store.put_prekeys(prekeys.to_bytes())
        store.commit()
    out.write(f"created identity {identity.did_text}\n  store: {path}\n")
    return 0


# ----------------------------------------------------------------------
# node


def session_config(args: argparse.Namespace) -> SessionConfig:
    """The node's SessionConfig: the heartbeat option and the admission
    limits (node_options.LIMIT_OPTIONS), the rest SessionConfig's defaults."""
    values = node_options.admission_of(args)
    interval = getattr(args, "heartbeat_interval", None)
    if interval is not None:
        values.update(heartbeat_interval=interval, heartbeat_timeout=min(2.0, interval / 2))
    return SessionConfig(**values)


def _event_key(line: dict[str, object]) -> tuple[str, ...] | None:
    """The rate-limit key of a node line: path failures repeat once per
    reconnect attempt while a peer is away; state changes are each news."""
    if line["type"] == "path" and not line["up"]:
        return ("path", str(line["address"]), str(line["path"]), str(line["reason"]))
    return None


async def _run_node(args: argparse.Namespace, out: TextIO) -> int:
    log = NodeLog(out, fmt=args.log_format, interval=args.log_interval)
    setup_logging(log, getattr(args, "verbose", 0))
    home = home_of(args)
    path = home / STORE_NAME
    if not path.exists():
        raise ConfigError(f"no identity in {home}: create one first with: l2session init")
    peers = dict(parse_peer(p) for p in args.peer)
    parse_address(args.listen, allow_zero_port=True)
    control.check_socket_path(home / SOCKET_NAME)
    metrics_at = None if args.metrics is None else parse_address(args.metrics)
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
        bridges=federation.bridges_of(args),
        create_identity=False,
        outbound_only=args.outbound_only,
        relay=args.relay,
        relays=args.reserve_on,
        limits=node_options.limits_of(args),
    )

    def show(event: NodeEvent) -> None:
        line = control.event_line(event)
        text = describe(line)
        if line is not None and text and not args.quiet:
            log.line(text, key=_event_key(line), **line)

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
            log.line(f"policy not reloaded, the old one stays: {error}")
        else:
            log.line(f"policy reloaded from {args.policy}")
        try:
            node.reload_trust()
        except L2SessionError as error:
            log.line(f"trust graph not reloaded: {error}")

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload_policy)
    async with node:
        server = control.ControlServer(node, home / SOCKET_NAME, send_ids=home / SEND_IDS_NAME)
        server.send_ids.prune(node)  # keys whose message the store never committed
        await server.start()
        exporter = None
        if metrics_at is not None:
            from l2session.runtime.metrics import serve_metrics

            exporter = serve_metrics(node, *metrics_at)
        log.line(f"node {node.did} listening on {node.address} (quic, tcp)")
        if node.federation is not None:
            for bridge in node.federation.bridges.values():
                relays = ", ".join(link.url for link in bridge.links())
                log.line(f"{bridge.protocol} bridge as {bridge.local_id.text} via {relays}")
        if args.policy is not None:
            log.line(
                f"capability requests screened by {args.policy} "
                "(SIGHUP reloads it and the trust graph)"
            )
        if node.discovery is not None:
            log.line(f"discovery on {node.discovery.address}")
        if exporter is not None:
            log.line(f"metrics on http://{args.metrics}/metrics")
        _notify_systemd(b"READY=1\nSTATUS=listening on " + node.address.encode())
        try:
            stopping = asyncio.ensure_future(stop.wait())
            failed = asyncio.ensure_future(node.stopped.wait())
            await asyncio.wait({stopping, failed}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            failed.cancel()
        finally:
            _notify_systemd(b"STOPPING=1")
            await server.close()
            if exporter is not None:
                exporter.close()
    if node.failure is not None:
        return fail(f"the node stopped: {node.failure}")
    log.line("node stopped")
    return 0


def _notify_systemd(message: bytes) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET
    (Type=notify units wait for READY=1 before starting what depends on
    the node).  Nothing happens outside systemd."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target or target[0] not in "@/":
        return
    import socket

    address = "\0" + target[1:] if target[0] == "@" else target
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.sendto(message, address)


def host_of(listen: str) -> str:
    host, _ = parse_address(listen, allow_zero_port=True)
    return f"[{host}]" if ":" in host else host


def run_node(args: argparse.Namespace, out: TextIO) -> int:
    node_options.merge(args)
    return run(_run_node(args, out))


def config_check(args: argparse.Namespace, out: TextIO) -> int:
    """Read a node config file as ``node --config`` would; name the first
    problem as ``file:line: ...``."""
    values = node_options.load_config(args.file)
    policy = values.get("policy")
    if policy is not None:
        load_policy(Path(args.file).parent / policy)  # its own file:line: errors
    for key in ("listen", "discovery", "metrics"):
        if values.get(key) is not None:
            parse_address(values[key], allow_zero_port=key != "metrics")
    for peer in values.get("peer", []):
        parse_peer(peer)
    out.write(f"{args.file}: ok ({len(values)} option(s) set)\n")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("init", help="create an identity and prekeys in the data directory")
    add_home(p)
    p.add_argument("--force", action="store_true", help="replace an existing identity (lost!)")
    p.add_argument("--passphrase-env", metavar="VAR", help="encrypt the key with $VAR")
    p.set_defaults(handler=init)

    p = commands.add_parser("node", help="run a node in the foreground (QUIC and μTCP)")
    node_options.add_arguments(p)
    p.set_defaults(handler=run_node)

    p = commands.add_parser("config", help="node config files")
    sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    q = sub.add_parser("check", help="read FILE as node --config would; file:line: errors")
    q.add_argument("file")
    q.set_defaults(handler=config_check)
