"""The local control socket of a running node (what the CLI talks to).

A Unix stream socket, created mode 0600 in the node's 0700 data directory,
so only the node's owner can drive it.  The protocol is JSON lines: one
request object per line, answered by one response object (``{"ok": true,
...}`` or ``{"ok": false, "error": "<ErrorType>", "message": "..."}``), or
for ``listen`` by a stream of objects until the client goes away.  Many
requests may share one connection (``send`` in batch mode does).

Requests: ``status``, ``sessions``, ``send``, ``await``, ``peer_set``,
``peer_forget``, ``session_close`` (runtime/control_ops.py) and ``listen``
(here).  docs/NETWORK.md gives every field.  A request line is at most
:data:`MAX_LINE` bytes; anything else gets a clear error, never a crash.
The client side is :mod:`l2session.cli.client`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Final

from l2session.core.events import MessageDenied, MessagesAvailable, RequestRefused, StateChanged
from l2session.errors import ConfigError, L2SessionError
from l2session.runtime import control_ops as ops
from l2session.runtime.events import NodeEvent, PathChanged
from l2session.runtime.federation_control import federated_rows
from l2session.runtime.node import Node

_log = logging.getLogger("l2session.control")

MAX_LINE: Final = 256 * 1024
#: Longest Unix socket path (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH: Final = 107
#: State and path lines kept for a slow ``listen --events`` client.
MAX_PENDING_EVENTS: Final = 10_000
#: How long the node waits for a listener to acknowledge a batch.
ACK_WAIT: Final = 30.0
SOCKET_NAME: Final = "control.sock"

Json = dict[str, Any]


def _error(error: BaseException) -> Json:
    return {"ok": False, "error": type(error).__name__, "message": str(error)}


#: The umask the control socket is bound under: it is created 0600.
SOCKET_UMASK: Final = 0o177


class ControlServer:
    """Serves the control protocol for ``node`` on ``path``."""

    def __init__(self, node: Node, path: Path, *, send_ids: Path | None = None) -> None:
        self.node = node
        self.path = path
        self.started = time.monotonic()
        #: ``send --id`` keys (control_ops.SendIds), in ``send_ids`` if given.
        self.send_ids = ops.SendIds(send_ids)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._listening = False

    async def start(self) -> None:
        """Listen on the socket.  It is created 0600 by ``bind`` itself,
        under a umask of 0177, so there is no moment in which it is open to
        others (a chmod after bind leaves one); and its directory is the
        node's 0700 data directory besides."""
        path = self.path
        check_socket_path(path)
        if path.exists():
            if await _answers(path):
                raise ConfigError(f"a node is already running with control socket {path}")
            path.unlink()  # left behind by a node that died
        # The umask is process-wide: hold it only around the synchronous
        # bind, never across an await (asyncio.start_unix_server yields to
        # the loop after binding, and any task or thread creating a file or
        # directory then would get mode & ~0177: a directory without x).
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            previous = os.umask(SOCKET_UMASK)
            try:
                sock.bind(str(path))
            finally:
                os.umask(previous)
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                line = await reader.readuntil(b"\n")
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ConfigError("a request is a JSON object")
                    if request.get("op") == "listen":
                        count = request.get("count")
                        if count is not None and (not isinstance(count, int) or count < 1):
                            raise ConfigError("listen: 'count' must be a positive integer")
                        await self._listen(reader, writer, bool(request.get("events")), count)
                        return
                    response = await self._answer(request)
                except (ValueError, TypeError, L2SessionError) as error:
                    response = _error(error)
                writer.write(json.dumps(response).encode() + b"\n")
                await writer.drain()
        except asyncio.LimitOverrunError:
            with contextlib.suppress(ConnectionError):
                refusal = ConfigError(f"a control request is at most {MAX_LINE} bytes")
                writer.write(json.dumps(_error(refusal)).encode() + b"\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, request: Json) -> Json:
        node = self.node
        op = request.get("op")
        if op == "status":
            return ops.status(node, self.started)
        if op == "sessions":
            return {
                "ok": True,
                "sessions": [ops.session_row(node, h) for h in node.sessions()]
                + federated_rows(node),
                "reachability": node.reachability.as_json(),
                "relaying": node.relaying.describe(),
            }
        if op == "send":
            return await ops.send(node, self.send_ids, request)
        if op == "await":
            return await ops.await_ack(node, request)
        if op == "peer_set":
            return ops.peer_set(node, request)
        if op == "peer_forget":
            return ops.peer_forget(node, request)
        if op == "session_close":
            return ops.session_close(node, request)
        raise ConfigError(f"unknown control request {op!r}")

    async def _listen(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        events: bool,
        count: int | None,
    ) -> None:
        """Hand messages to one client, at least once: a batch is sent
        (peeked, left in its session) and taken from the session -- which
        commits it as delivered -- only when the client acknowledges it.  A
        client that dies before acknowledging gets the batch again next
        time; nothing is lost.  One listener at a time."""
        if self._listening:
            raise ConfigError("another 'listen' is attached to this node; stop it first")
        self._listening = True
        node = self.node
        wake = asyncio.Event()
        lines: list[Json] = []
        left = count

        def on_event(event: NodeEvent) -> None:
            if isinstance(event, MessagesAvailable):
                wake.set()
            elif events and len(lines) < MAX_PENDING_EVENTS:
                line = event_line(event)
                if line is not None:
                    lines.append(line)
                    wake.set()

        node.add_listener(on_event)
        try:
            writer.write(json.dumps({"ok": True, "did": node.did}).encode() + b"\n")
            while left is None or left > 0:
                wake.clear()
                for handle in node.sessions():
                    if left is not None and left <= 0:
                        break
                    batch = handle.session.peek_deliveries(1024 if left is None else left)
                    if not batch:
                        continue
                    for stream, message in batch:
                        item = {
                            "type": "message",
                            "from": handle.peer_did,
                            "stream": stream,
                            "seq": message.seq,
                            "data_b64": base64.b64encode(message.payload).decode(),
                            "request": None if message.request is None else str(message.request),
                        }
                        writer.write(json.dumps(item).encode() + b"\n")
                    writer.write(json.dumps({"type": "batch", "count": len(batch)}).encode())
                    writer.write(b"\n")
                    await writer.drain()
                    ack = json.loads(await asyncio.wait_for(reader.readuntil(b"\n"), ACK_WAIT))
                    if not isinstance(ack, dict) or ack.get("ack") != len(batch):
                        raise ConfigError("listen: the client must acknowledge each batch")
                    handle.session.receive_many(len(batch))  # committed: delivered
                    node.kick()
                    if left is not None:
                        left -= len(batch)
                pending, lines[:] = list(lines), []
                for item in pending:
                    writer.write(json.dumps(item).encode() + b"\n")
                await writer.drain()
                if (left is not None and left <= 0) or reader.at_eof():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
        finally:
            node.remove_listener(on_event)
            self._listening = False


def event_line(event: NodeEvent) -> Json | None:
    if isinstance(event, StateChanged):
        record = event.record
        return {
            "type": "state",
            "peer": event.peer_did,
            "from": record.source.value,
            "to": record.target.value if record.target else "removed",
            "reason": record.reason,
        }
    if isinstance(event, PathChanged):
        return {
            "type": "path",
            "address": event.address,
            "path": event.path,
            "up": event.up,
            "reason": event.reason,
        }
    if isinstance(event, RequestRefused):
        return {
            "type": "refused",
            "peer": event.peer_did,
            "seq": event.seq,
            "request": None if event.request is None else str(event.request),
            "reason": event.reason,
        }
    if isinstance(event, MessageDenied):
        return {"type": "denied", "peer": event.peer_did, "seq": event.seq, "reason": event.reason}
    return None


def check_socket_path(path: Path) -> None:
    """Unix socket paths are limited (about 107 bytes on Linux)."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"the control socket path {path} is longer than {MAX_SOCKET_PATH} bytes, "
            "the limit of Unix sockets; use a shorter data directory (--home)"
        )


async def _answers(path: Path) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
