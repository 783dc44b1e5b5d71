"""The client commands: ``status``, ``id``, ``sessions``, ``send``,
``listen``, ``peer set|forget`` and ``session close``.

Each asks the running node through its control socket (cli/client.py) and
imports nothing of the node stack, so it starts in a few tens of
milliseconds.  Exit codes: 0 done (``send``: delivered), 1 error (one line
on stderr), 2 ``send``: queued but not yet acknowledged, 3 ``send``: the
peer's Membrane refused the request.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO

from l2session.cli import federation
from l2session.cli.client import (
    Connection,
    Json,
    NoAnswer,
    NodeGone,
    NodeNotRunning,
    add_home,
    fail,
    home_of,
    request,
    socket_of,
)
from l2session.errors import ConfigError

#: ``SessionConfig`` never allows a larger message (core/config.py's
#: MAX_MESSAGE_SIZE; a test keeps the two equal).  Checked here so that an
#: oversized message gets that limit in its error, not the socket's.
MAX_MESSAGE_SIZE: Final = 60_000
#: Exit code of ``send`` for a message queued but not yet acknowledged.
QUEUED: Final = 2
#: Exit code of ``send`` for a request the peer's Membrane refused.
DENIED: Final = 3


# ----------------------------------------------------------------------
# status, id, sessions


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} seconds ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} minutes ago"
    return f"{seconds / 3600:.1f} hours ago"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def render_status(info: Json) -> str:
    """The ``wg show``-like text of a status answer."""
    lines = [
        f"node: {info['did']}",
        f"  listening: {info['address']} ({', '.join(info['paths'])})",
        f"  uptime: {info['uptime_s']:.0f} s; sessions: {info['session_count']}; "
        f"transfer: {_size(info['bytes_received'])} received, {_size(info['bytes_sent'])} sent",
    ]
    rejected = sum(info["rejections"].values())
    if rejected:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(info["rejections"].items()))
        lines.append(f"  rejected packets: {rejected} ({reasons})")
    for row in info["sessions"]:
        epoch = "-" if row["key_epoch"] is None else str(row["key_epoch"])
        rtt = "-" if row["rtt_ms"] is None else f"{row['rtt_ms']:.2f} ms"
        lines += [
            "",
            f"peer: {row['peer']}",
            f"  state: {row['state']} ({row['transport']})",
            f"  endpoint: {row['address'] or '-'}",
            f"  latest handshake: {_ago(row['last_handshake_s'])}",
            f"  latest traffic: received {_ago(row['last_received_s'])}, "
            f"sent {_ago(row['last_sent_s'])}",
            f"  rtt: {rtt}; key epoch: {epoch}",
            f"  transfer: {_size(row['bytes_received'])} received, "
            f"{_size(row['bytes_sent'])} sent; messages: {row['messages_received']} received, "
            f"{row['messages_sent']} sent",
            f"  queue: {row['queued']} unacknowledged, {row['unread']} unread",
        ]
    return "\n".join(lines) + "\n"


def status(args: argparse.Namespace, out: TextIO) -> int:
    path = socket_of(args)
    if args.watch is None:
        info = request(path, {"op": "status"}, timeout=10)
        out.write(json.dumps(info) + "\n" if args.json else render_status(info))
        return 0
    if not args.watch > 0:
        raise ConfigError("--watch SECONDS must be positive")
    with Connection(path) as connection:
        try:
            while True:
                info = connection.request({"op": "status"}, timeout=10)
                if args.json:
                    out.write(json.dumps(info) + "\n")
                else:
                    stamp = time.strftime("%H:%M:%S")
                    out.write("\x1b[H\x1b[2J" + f"every {args.watch:g} s, {stamp}\n\n")
                    out.write(render_status(info))
                out.flush()
                time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def node_id(args: argparse.Namespace, out: TextIO) -> int:
    """The node's DID: from the running node, else from its store (read
    only, the key stays untouched)."""
    try:
        did = str(request(socket_of(args), {"op": "status"}, timeout=10)["did"])
    except NodeGone:
        raise
    except NodeNotRunning as error:  # no node: read the store
        did = _did_from_store(home_of(args), error)
    out.write(json.dumps({"did": did}) + "\n" if args.json else did + "\n")
    return 0


def _did_from_store(home: Path, cause: Exception) -> str:
    import sqlite3

    path = home / "node.db"
    if not path.is_file() or path.stat().st_size == 0:
        raise ConfigError(f"{cause}; and no identity in {home}: create one with: l2session init")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT did FROM identity WHERE id = 1").fetchone()
    except sqlite3.Error as error:
        raise ConfigError(f"cannot read the store {path}: {error}") from None
    if row is None:
        raise ConfigError(f"no identity in {path}: create one with: l2session init")
    return str(row[0])


def sessions(args: argparse.Namespace, out: TextIO) -> int:
    response = request(socket_of(args), {"op": "sessions"}, timeout=10)
    rows = response["sessions"]
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    # What peers told the node about its reachability (runtime/reachability.py
    # makes this line; the client only prints it, with no import of its own).
    reach = response.get("reachability") or {}
    if reach.get("line"):
        out.write(f"{reach['line']}\n")
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
    for row, raw in zip(table, [{}, *rows], strict=True):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
        relays = federation.describe_relays(raw)  # a federated session's relays
        if relays is not None:
            out.write(relays + "\n")
    return 0


# ----------------------------------------------------------------------
# send


def _read_limited(stream: BinaryIO, what: str) -> bytes:
    data = stream.read(MAX_MESSAGE_SIZE + 1)
    if len(data) > MAX_MESSAGE_SIZE:
        raise ConfigError(
            f"{what} holds more than {MAX_MESSAGE_SIZE:,} bytes, the largest message a "
            "session carries; split it"
        )
    return bytes(data)


def _payload(args: argparse.Namespace) -> bytes:
    if args.file is not None:
        if args.message is not None:
            raise ConfigError("give the message or --file, not both")
        try:
            with open(args.file, "rb") as handle:
                return _read_limited(handle, args.file)
        except OSError as error:
            raise ConfigError(f"cannot read {args.file}: {error.strerror}") from None
    if args.message is None:
        raise ConfigError("nothing to send: give a message, - (standard input), --file or --batch")
    if args.message == "-":
        return _read_limited(sys.stdin.buffer, "standard input")
    data = os.fsencode(args.message)  # undecodable argv bytes pass through unchanged
    if len(data) > MAX_MESSAGE_SIZE:
        raise ConfigError(
            f"the message is {len(data):,} bytes; a message is at most {MAX_MESSAGE_SIZE:,} "
            "bytes: split it"
        )
    return data


def _body(args: argparse.Namespace, data: bytes, timeout: float) -> Json:
    body: Json = {
        "op": "send",
        "did": args.did,
        "address": args.to,
        "data_b64": base64.b64encode(data).decode(),
        "timeout": timeout,
    }
    if args.capability is not None:
        body["capability"] = args.capability
    if args.id is not None:
        body["id"] = args.id
    return body


def _report(args: argparse.Namespace, response: Json, out: TextIO) -> int:
    if response.get("note"):
        sys.stderr.write(f"l2session: note: {response['note']}\n")
    if args.json:
        out.write(json.dumps({k: v for k, v in response.items() if k != "ok"}) + "\n")
    seq = response["seq"]
    again = " (a retry: the node had this --id already)" if response.get("duplicate") else ""
    if response.get("denied"):
        if not args.json:
            out.write(f"denied #{seq}: {response['denied']}\n")
        return DENIED
    if response.get("lost"):
        if not args.json:
            out.write(f"#{seq}{again}: its session was closed since; its fate is unknown\n")
        return 1
    if response.get("bridge"):  # a foreign peer: a relay accepting is delivery
        if not args.json:
            federation.write_sent(response, args.timeout, out)
        return 0 if response["delivered"] else QUEUED
    if response["delivered"]:
        if not args.json:
            out.write(f"delivered #{seq} over {response['transport']}{again}\n")
        return 0
    if not args.json:
        out.write(
            f"queued #{seq}{again}: not acknowledged within {args.timeout:g} s; "
            "the node keeps it and delivers it when the peer is reachable\n"
        )
    return QUEUED


def send(args: argparse.Namespace, out: TextIO) -> int:
    if args.batch:
        return _send_batch(args, out)
    body = _body(args, _payload(args), args.timeout)
    try:
        response = request(socket_of(args), body, timeout=args.timeout + 30)
    except NodeGone as error:
        hint = (
            "retry with the same --id to learn its fate"
            if args.id
            else "it may be queued: a retry could deliver it twice (use --id)"
        )
        raise NodeGone(f"{error}; the message's fate is unknown: {hint}") from None
    return _report(args, response, out)


def _send_batch(args: argparse.Namespace, out: TextIO) -> int:
    """Every line of standard input is one message (without its newline),
    sent on one control connection; then wait for the last one's
    acknowledgement (the stream is in order: it covers the batch)."""
    if args.message is not None or args.file is not None or args.id is not None:
        raise ConfigError("--batch reads the messages from standard input, one a line")
    last: Json | None = None
    count = 0
    with Connection(socket_of(args)) as connection:
        for raw in sys.stdin.buffer:
            data = raw[:-1] if raw.endswith(b"\n") else raw
            if len(data) > MAX_MESSAGE_SIZE:
                raise ConfigError(
                    f"line {count + 1} is {len(data):,} bytes; a message is at most "
                    f"{MAX_MESSAGE_SIZE:,} bytes"
                )
            last = connection.request(_body(args, data, 0), timeout=args.timeout + 30)
            count += 1
            if last.get("denied"):
                break
        if last is None:
            raise ConfigError("--batch: standard input held no lines")
        body = {"op": "await", "did": args.did, "seq": last["seq"], "timeout": args.timeout}
        final = connection.request(body, timeout=args.timeout + 30)
    if not args.json:
        out.write(f"{count} message(s) sent, ")
    return _report(args, final, out)


# ----------------------------------------------------------------------
# listen


def _load_cursor(path: str | None) -> dict[str, list[int]]:
    if path is None:
        return {}
    try:
        with open(path) as handle:
            value = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the cursor file {path}: {error}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: a cursor file is a JSON object DID -> [stream, seq]")
    return {str(k): [int(v[0]), int(v[1])] for k, v in value.items()}


def _save_cursor(path: str, cursor: dict[str, list[int]]) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(cursor, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _show(args: argparse.Namespace, item: Json, out: TextIO) -> None:
    data = base64.b64decode(item["data_b64"])
    if args.raw is not None:
        name = f"{item['from'].rsplit(':', 1)[-1]}-{item['stream']:016x}-{item['seq']:010d}.bin"
        target = Path(args.raw) / name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        item = {**item, "file": str(target)}
    if args.json:
        keys = ("from", "stream", "seq", "data_b64", "request", "file")
        out.write(json.dumps({k: item[k] for k in keys if k in item}) + "\n")
    elif args.raw is not None:
        out.write(f"{item['from']} #{item['seq']}: {item['file']}\n")
    else:
        text = data.decode("utf-8", "replace")
        out.write(f"{item['from']}: {text}\n")


def listen(args: argparse.Namespace, out: TextIO) -> int:
    """Print messages as the node hands them over (at least once: a batch
    is confirmed only after it is written).  With ``--cursor``, messages at
    or below the (stream, seq) recorded per sender are skipped, and the
    cursor is saved after each batch and on every exit: a consumer that
    keeps the cursor with what it processed gets each message exactly once
    (docs/NETWORK.md)."""
    if args.raw is not None and not Path(args.raw).is_dir():
        raise ConfigError(f"--raw {args.raw}: not a directory")
    cursor = _load_cursor(args.cursor)
    try:
        return _listen(args, out, cursor)
    finally:
        out.flush()
        if args.cursor is not None:
            _save_cursor(args.cursor, cursor)


def _listen(args: argparse.Namespace, out: TextIO, cursor: dict[str, list[int]]) -> int:
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    seen = 0
    body = {"op": "listen", "events": args.events, "count": args.count}
    with Connection(socket_of(args)) as connection:
        connection.request(body, timeout=10)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return 1 if args.count is not None else 0
            try:
                item = connection.receive(remaining)
            except NoAnswer:  # --timeout reached
                return 1 if args.count is not None else 0
            except NodeGone:
                raise _gone_while_listening(seen) from None
            kind = item.get("type")
            if kind == "message":
                last = cursor.get(item["from"])
                if last is None or last[0] != item["stream"] or item["seq"] > last[1]:
                    _show(args, item, out)
                    cursor[item["from"]] = [item["stream"], item["seq"]]
                seen += 1
            elif kind == "batch":
                # Every message of the batch is written: confirm the hand-off.
                out.flush()
                if args.cursor is not None:
                    _save_cursor(args.cursor, cursor)
                try:
                    connection.send({"ack": item["count"]})
                except NodeGone:  # it died after the batch, before our ack
                    raise _gone_while_listening(seen) from None
                if args.count is not None and seen >= args.count:
                    return 0
            elif args.events:
                out.write((json.dumps(item) if args.json else describe(item) or "") + "\n")
            out.flush()


def _gone_while_listening(seen: int) -> NodeGone:
    return NodeGone(
        f"the node stopped while listen was attached ({seen} message(s) shown); "
        "run listen again when it is back: messages not yet confirmed are handed "
        "over again (--cursor skips those already shown)"
    )


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


# ----------------------------------------------------------------------
# peer, session


def peer(args: argparse.Namespace, out: TextIO) -> int:
    path = socket_of(args)
    if args.peer_command == "set":
        answer = request(path, {"op": "peer_set", "did": args.did, "address": args.address})
        if answer["moved"]:
            out.write(f"{args.did} is now at {args.address}; its {answer['state']} session ")
            out.write("retries there now\n")
        elif answer["state"] is None:
            out.write(f"{args.did} is now at {args.address}\n")
        else:
            out.write(
                f"{args.did} is now at {args.address}; its {answer['state']} session keeps "
                "its working route and tries this one beside it\n"
            )
        return 0
    answer = request(path, {"op": "peer_forget", "did": args.did})
    out.write(f"forgot {args.did}\n" if answer["forgotten"] else f"{args.did} was not known\n")
    return 0 if answer["forgotten"] else 1


def session_close(args: argparse.Namespace, out: TextIO) -> int:
    answer = request(socket_of(args), {"op": "session_close", "did": args.did})
    if not answer["closed"]:
        return fail(f"there is no session with {args.did}")
    out.write(f"closed the session with {args.did}\n")
    return 0


# ----------------------------------------------------------------------
# the parsers


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("status", help="the running node and every session (like wg show)")
    add_home(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=1.0,
        default=None,
        metavar="SECONDS",
        help="redraw every SECONDS (default 1) until interrupted; with --json, one line each",
    )
    p.set_defaults(handler=status)

    p = commands.add_parser("id", help="this node's DID")
    add_home(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=node_id)

    p = commands.add_parser("sessions", help="the running node's sessions")
    add_home(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=sessions)

    p = commands.add_parser("send", help="send a message to a peer (establishes a session)")
    add_home(p)
    p.add_argument("did")
    p.add_argument("message", nargs="?", help="the text to send; - reads bytes from standard input")
    p.add_argument("--file", metavar="PATH", help="send this file's bytes as the message")
    p.add_argument(
        "--batch", action="store_true", help="each line of standard input is one message"
    )
    p.add_argument("--to", metavar="HOST:PORT", help="where the peer listens (updates it)")
    p.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS")
    p.add_argument(
        "--id",
        metavar="KEY",
        help="idempotency key: a retry with the same KEY reports the first message's fate",
    )
    p.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
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
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object a line: from, stream, seq, data_b64, request",
    )
    p.add_argument("--raw", metavar="DIR", help="write each message's bytes to a file in DIR")
    p.add_argument(
        "--cursor",
        metavar="FILE",
        help="skip messages up to the (stream, seq) per sender recorded in FILE; update it",
    )
    p.set_defaults(handler=listen)

    p = commands.add_parser("peer", help="the node's address book")
    sub = p.add_subparsers(dest="peer_command", metavar="SUBCOMMAND", required=True)
    q = sub.add_parser("set", help="DID listens at ADDRESS (wakes a failed session)")
    add_home(q)
    q.add_argument("did")
    q.add_argument("address", metavar="HOST:PORT")
    q.set_defaults(handler=peer)
    q = sub.add_parser("forget", help="drop DID's address and close its session")
    add_home(q)
    q.add_argument("did")
    q.set_defaults(handler=peer)

    p = commands.add_parser("session", help="one session")
    sub = p.add_subparsers(dest="session_command", metavar="SUBCOMMAND", required=True)
    q = sub.add_parser("close", help="close the session with DID (its queue is dropped)")
    add_home(q)
    q.add_argument("did")
    q.set_defaults(handler=session_close)


#: The commands this module registers (main.py builds only these for them).
COMMANDS: Final = ("status", "id", "sessions", "send", "listen", "peer", "session")
