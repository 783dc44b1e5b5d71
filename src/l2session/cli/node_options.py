"""Every option of ``l2session node``, in one table shared by the command
line and the node's config file (``node --config node.toml``).

A row gives the TOML key (the flag's long name with ``_`` for ``-``), its
type, default and help; :func:`add_arguments` makes the argparse flags from
the table and :func:`load_config` reads a file against it, with
``file:line:`` errors (as policy files have).  A new node option is one new
row: the flag, the config key, ``config check`` and the docs table in
docs/NETWORK.md (a test compares them) follow from it.

Precedence: a flag given on the command line wins over the file, the file
over the default.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from l2session.errors import ConfigError

#: Largest config file read (bytes).
MAX_CONFIG_FILE: Final = 1 << 20


@dataclass(frozen=True)
class Option:
    """One node option: ``key`` in the file, ``--key`` (dashes) as a flag."""

    key: str
    kind: type  # str, float, int, bool or list (of str)
    default: Any
    help: str
    metavar: str | None = None
    #: Checks a value (raises ConfigError with the reason, no location).
    check: Callable[[Any], None] | None = None
    #: The class a limit is a field of ("NodeLimits", "SessionConfig"),
    #: listed under "limits" in --help; None for the other options.
    group: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


def _positive(value: Any) -> None:
    if not value > 0:
        raise ConfigError(f"must be positive, got {value!r}")


def _durability(value: Any) -> None:
    if value not in ("power", "process"):
        raise ConfigError(f"is 'power' or 'process', got {value!r}")


def _log_format(value: Any) -> None:
    if value not in ("text", "json"):
        raise ConfigError(f"is 'text' or 'json', got {value!r}")


_GENERAL: Final[tuple[Option, ...]] = (
    Option(
        "home",
        str,
        None,
        "the node's data directory (default $L2SESSION_HOME, else $XDG_DATA_HOME/l2session)",
        "DIR",
    ),
    Option("listen", str, "127.0.0.1:7700", "host:port to listen on (QUIC and μTCP)", "HOST:PORT"),
    Option("peer", list, [], "a known peer; repeatable", "DID@HOST:PORT"),
    Option("passphrase_env", str, None, "the key's passphrase is in $VAR", "VAR"),
    Option("heartbeat_interval", float, None, "seconds between heartbeats", "SECONDS", _positive),
    Option("discovery", str, None, "answer UDP discovery (who has my DID?) here", "HOST:PORT"),
    Option(
        "discover_via",
        list,
        [],
        "ask here (unicast or broadcast) where an unknown DID is; repeatable",
        "HOST:PORT",
    ),
    Option("quiet", bool, False, "do not print state changes"),
    Option(
        "policy",
        str,
        None,
        "screen peers' capability requests with this TOML policy (SIGHUP reloads it)",
        "FILE",
    ),
    Option(
        "relay",
        bool,
        False,
        "also serve as a relay for others (off by default; limits: docs/NETWORK.md)",
    ),
    Option(
        "reserve_on",
        list,
        [],
        "hold a reservation on this relay (peers reach us as relay://HOST:PORT); repeatable",
        "DID@HOST:PORT",
    ),
    Option(
        "outbound_only",
        bool,
        False,
        "not reachable where it listens (behind a NAT): peers never dial this node",
    ),
    Option(
        "nostr_relay",
        list,
        [],
        "bridge to Nostr through this relay (repeatable); then 'l2session send nostr:npub1… "
        "TEXT' works (needs l2session[nostr]; docs/FEDERATION.md)",
        "ws://HOST:PORT",
    ),
    Option(
        "durability",
        str,
        "power",
        "power: acknowledgements survive power loss (one fsync per burst); process: no "
        "fsyncs, survives crashes only -- a power cut may lose messages peers were told had "
        "arrived (docs/STORE.md)",
        "MODE",
        _durability,
    ),
    Option(
        "metrics",
        str,
        None,
        "serve Prometheus metrics on http://HOST:PORT/metrics (needs l2session[metrics])",
        "HOST:PORT",
    ),
    Option(
        "log_format",
        str,
        "text",
        "log lines as 'text' (with timestamps) or 'json' (one object a line)",
        "FORMAT",
        _log_format,
    ),
    Option(
        "log_interval",
        float,
        60.0,
        "the same warning about one peer is logged at most once per SECONDS",
        "SECONDS",
        _positive,
    ),
)


def _field_check(owner: str, key: str) -> Callable[[Any], None]:
    """Validate one field as ``NodeLimits(key=value)`` (or SessionConfig)
    would, giving the reason without the class name (the caller prefixes
    the flag or file:line).  The classes are imported only here: client
    commands build this parser and must not import the node stack."""

    def check(value: Any) -> None:
        from l2session.core.config import SessionConfig
        from l2session.runtime.limits import NodeLimits

        try:
            (NodeLimits if owner == "NodeLimits" else SessionConfig)(**{key: value})
        except ConfigError as error:
            raise ConfigError(str(error).removeprefix(f"{owner}.{key} ")) from None

    return check


def _limit(owner: str, key: str, kind: type, default: Any, why: str) -> Option:
    return Option(
        key,
        kind,
        default,
        why,
        "SECONDS" if kind is float else "N",
        _field_check(owner, key),
        owner,
    )


#: Every cap a node enforces, under its field's name: the NodeLimits fields
#: (runtime/limits.py) and SessionConfig's admission fields (core/config.py;
#: its other fields are per-session tuning, not an operator's caps).  The
#: defaults repeat the classes' (a test compares them): importing either
#: here would load the node stack into every client command.
LIMIT_OPTIONS: Final[tuple[Option, ...]] = (
    _limit("NodeLimits", "tcp_max_connections", int, 32_768,
           "μTCP connections open at once, both directions; a peer holds two (beyond: REFUSE)"),
    _limit("NodeLimits", "tcp_max_unidentified", int, 1_024,
           "inbound μTCP connections without their HELLO yet (beyond: REFUSE)"),
    _limit("NodeLimits", "tcp_listen_backlog", int, 4_096,
           "connections the kernel queues for the μTCP listener (listen(2) backlog)"),
    _limit("NodeLimits", "tcp_max_buffered_bytes", int, 64 << 20,
           "bytes of incomplete μTCP frames held across all connections"),
    _limit("NodeLimits", "tcp_max_queue_bytes", int, 16 << 20,
           "bytes queued per μTCP connection before packets drop"),
    _limit("NodeLimits", "tcp_hello_timeout", float, 10.0,
           "seconds an inbound μTCP connection may take to send its HELLO"),
    _limit("NodeLimits", "tcp_frame_timeout", float, 30.0,
           "seconds a started μTCP frame may take to arrive"),
    _limit("NodeLimits", "quic_max_connections", int, 16_384,
           "QUIC connections of both roles (beyond: CONNECTION_REFUSED)"),
    _limit("NodeLimits", "quic_max_queue", int, 16 << 20,
           "bytes queued per QUIC connection before packets drop"),
    _limit("NodeLimits", "max_pending_accepts", int, 1_024,
           "sessions peers opened that accept() has not taken"),
    _limit("NodeLimits", "max_tracked_addresses", int, 65_536,
           "path failure reasons kept, and addresses the QUIC stall watch follows"),
    _limit("SessionConfig", "admission_host_rate", float, 20.0,
           "opening packets (INIT, RESUME, BUNDLE_REQ) per second per source host"),
    _limit("SessionConfig", "admission_host_burst", int, 40,
           "burst of admission_host_rate"),
    _limit("SessionConfig", "admission_cpu_share", float, 0.75,
           "share of one core that handshakes with unknown sources may take"),
    _limit("SessionConfig", "admission_cpu_burst", float, 2.0,
           "burst of admission_cpu_share, in seconds of CPU"),
    _limit("SessionConfig", "admission_global_rate", float, 5_000.0,
           "opening packets per second from all unknown sources together"),
    _limit("SessionConfig", "admission_global_burst", int, 10_000,
           "burst of admission_global_rate"),
    _limit("SessionConfig", "admission_failure_limit", int, 100,
           "failed or excess opening packets in admission_failure_window that quarantine a host"),
    _limit("SessionConfig", "admission_failure_window", float, 10.0,
           "seconds over which admission_failure_limit counts"),
    _limit("SessionConfig", "admission_quarantine", float, 60.0,
           "seconds a host stays quarantined"),
    _limit("SessionConfig", "admission_max_hosts", int, 4_096,
           "hosts with an admission bucket, and hosts quarantined"),
)  # fmt: skip


NODE_OPTIONS: Final[tuple[Option, ...]] = _GENERAL + LIMIT_OPTIONS


def limits_of(args: argparse.Namespace) -> Any:
    """The NodeLimits the merged options give (after :func:`merge`)."""
    from l2session.runtime.limits import NodeLimits

    return NodeLimits(**_values(args, "NodeLimits"))


def admission_of(args: argparse.Namespace) -> dict[str, Any]:
    """The SessionConfig admission fields the merged options give."""
    return _values(args, "SessionConfig")


def _values(args: argparse.Namespace, owner: str) -> dict[str, Any]:
    return {o.key: getattr(args, o.key) for o in LIMIT_OPTIONS if o.group == owner}


#: Options naming files: relative paths in a config file are relative to it.
PATHS: Final = frozenset({"home", "policy"})

BY_KEY: Final[Mapping[str, Option]] = {o.key: o for o in NODE_OPTIONS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The table's flags on ``parser``; each defaults to None ("not given")
    so that :func:`merge` can tell a flag from the file's value."""
    limits = parser.add_argument_group(
        "limits",
        "the node's caps (NodeLimits and SessionConfig admission fields; each also a "
        "config file key; reasons and costs: docs/NETWORK.md, Limits)",
    )
    for option in NODE_OPTIONS:
        target: Any = parser if option.group is None else limits
        text = option.help
        if option.default not in (None, [], False):
            text += f" (default {option.default})"
        if option.kind is bool:
            target.add_argument(option.flag, action="store_true", default=None, help=text)
        elif option.kind is list:
            target.add_argument(
                option.flag, action="append", default=None, metavar=option.metavar, help=text
            )
        else:
            target.add_argument(
                option.flag,
                type=option.kind,
                default=None,
                metavar=option.metavar,
                help=text,
            )
    parser.add_argument(
        "--config", metavar="FILE", help="read these options from a TOML file (flags win)"
    )


def _type_name(kind: type) -> str:
    return {
        str: "text",
        float: "a number",
        int: "an integer",
        bool: "true or false",
        list: "a list of text",
    }[kind]


def _typed(option: Option, value: Any) -> Any:
    kind = option.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
        if kind is list
        else isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    )
    if not ok:
        raise ConfigError(f"is {_type_name(kind)}, got {value!r}")
    if option.check is not None:
        option.check(value)
    return value


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The options in the TOML file ``path``: key -> value.  Raises
    ConfigError ``FILE:LINE: what is wrong`` for an unknown key, a wrong
    type, a bad value or bad TOML."""
    from l2session.membrane.toml_lines import LineLocator

    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_FILE + 1)
    except OSError as error:
        raise ConfigError(f"{name}: cannot read it: {error.strerror}") from None
    if len(raw) > MAX_CONFIG_FILE:
        raise ConfigError(f"{name}: larger than {MAX_CONFIG_FILE} bytes; not a node config")
    try:
        text = raw.decode()
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        # tomllib says "... (at line 3, column 7)": keep its words, lead with file:line.
        message = str(error)
        line = message.rsplit("line ", 1)[-1].split(",")[0] if "(at line" in message else "0"
        raise ConfigError(f"{name}:{line}: not valid TOML: {message}") from None
    lines = LineLocator(text)
    out: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{name}:{lines.line((key,))}"
        option = BY_KEY.get(key.replace("-", "_"))
        if option is None:
            known = ", ".join(o.key for o in NODE_OPTIONS)
            raise ConfigError(f"{where}: unknown option {key!r}; the options are: {known}")
        try:
            out[option.key] = _typed(option, value)
        except ConfigError as error:
            raise ConfigError(f"{where}: {key} {error}") from None
    return out


def merge(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every option not given as a flag from ``--config`` (paths in it
    are relative to the file), else from the table's default."""
    from_file: dict[str, Any] = {}
    base = Path()
    if getattr(args, "config", None):
        from_file = load_config(args.config)
        base = Path(args.config).parent
    for option in NODE_OPTIONS:
        if getattr(args, option.key) is not None:
            try:
                _typed(option, getattr(args, option.key))
            except ConfigError as error:
                raise ConfigError(f"{option.flag} {error}") from None
            continue
        value = from_file.get(option.key, option.default)
        if option.key in PATHS and option.key in from_file:
            value = str(base / value)
        if option.key == "home" and value is None:
            value = os.environ.get("L2SESSION_HOME")
        setattr(args, option.key, list(value) if isinstance(value, list) else value)
    return args
