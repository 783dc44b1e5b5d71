"""The client side of the control socket: what ``status``, ``send``,
``listen`` and the other client commands use.

A client command asks a running node and prints its answer; it must start
fast (``l2session status`` in a watch loop, ``send`` from a script), so this
module and the client commands import only the standard library and
:mod:`l2session.errors` -- never the node stack (core, crypto, QUIC,
SQLite), which costs about 0.4 s to import.  ``tests/test_architecture.py``
holds that boundary.  The protocol itself is described in
:mod:`l2session.runtime.control`: JSON lines over a Unix stream socket.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, Final

from l2session.errors import ConfigError, L2SessionError, TransportFailed

#: The control socket's name in the node's data directory.
SOCKET_NAME: Final = "control.sock"
#: Longest line either side sends (a request, a response, a message line).
MAX_LINE: Final = 256 * 1024

Json = dict[str, Any]


class NodeNotRunning(TransportFailed):
    """No node answers on the control socket."""


class NodeGone(NodeNotRunning):
    """The node closed the connection before it answered (it stopped or
    died): a request's outcome is unknown."""


class NoAnswer(NodeNotRunning):
    """The node did not answer within the time the client allowed."""


class ControlError(L2SessionError):
    """The node refused a control request; ``kind`` is its error type (for
    scripts), the message is what to show a person."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def data_home() -> Path:
    """``$XDG_DATA_HOME/l2session`` (absolute values only), else
    ``~/.local/share/l2session`` (as :func:`l2session.store.files.data_home`,
    which the client must not import)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "l2session"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        home = Path()
    if not home.is_absolute():
        raise ConfigError(
            "cannot find the home directory for the default data directory; "
            "set HOME or XDG_DATA_HOME, or pass --home"
        )
    return home / ".local" / "share" / "l2session"


def home_of(args: argparse.Namespace) -> Path:
    return Path(args.home) if args.home else data_home()


def socket_of(args: argparse.Namespace) -> Path:
    return home_of(args) / SOCKET_NAME


def add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=os.environ.get("L2SESSION_HOME"),
        help="the node's data directory (default $L2SESSION_HOME, else $XDG_DATA_HOME/l2session)",
    )


def fail(message: str) -> int:
    """One line on stderr, exit status 1: how every user error ends."""
    sys.stderr.write(f"l2session: error: {message}\n")
    return 1


class Connection:
    """One connection to a node's control socket (blocking: a client
    command does one thing at a time, and asyncio costs import time)."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise NodeNotRunning(
                f"no node is running for {path.parent} (start one with: l2session node)"
            ) from None
        except OSError as error:
            sock.close()
            if len(os.fsencode(path)) > 107:
                raise ConfigError(
                    f"the control socket path {path} is longer than 107 bytes, "
                    "the limit of Unix sockets; use a shorter data directory (--home)"
                ) from None
            raise NodeNotRunning(
                f"cannot reach the node's control socket {path}: {error.strerror or error}"
            ) from None
        self._sock = sock
        self._file = sock.makefile("rb")

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def send(self, body: Json) -> None:
        try:
            self._sock.sendall(json.dumps(body).encode() + b"\n")
        except OSError:
            raise NodeGone(
                f"the node at {self.path.parent} closed the connection (did it stop?)"
            ) from None

    def receive(self, timeout: float | None) -> Json:
        """The next line from the node.  Raises NodeGone when the node
        closes the connection (it stopped or died), SessionTimeout-like
        NodeNotRunning when it does not answer within ``timeout``."""
        self._sock.settimeout(timeout)
        try:
            line = self._file.readline(MAX_LINE + 1)
        except TimeoutError:
            raise NoAnswer(
                f"the node at {self.path.parent} did not answer within {timeout} s"
            ) from None
        except OSError:
            line = b""
        if not line.endswith(b"\n"):
            raise NodeGone(
                f"the node at {self.path.parent} closed the connection before it answered "
                "(did it stop? see its log)"
            )
        try:
            value = json.loads(line)
        except ValueError:
            raise ControlError("ProtocolError", "the node sent a line that is not JSON") from None
        if not isinstance(value, dict):
            raise ControlError("ProtocolError", "the node sent a line that is not an object")
        return value

    def request(self, body: Json, timeout: float | None = 60.0) -> Json:
        """Send one request and return its (successful) response."""
        self.send(body)
        return check(self.receive(timeout))


def check(response: Json) -> Json:
    if not response.get("ok"):
        raise ControlError(str(response.get("error")), str(response.get("message")))
    return response


def request(path: Path, body: Json, timeout: float = 60.0) -> Json:
    """One request on a fresh connection, one response."""
    with Connection(path) as connection:
        return connection.request(body, timeout)
