"""Every node limit is a node option (cli/node_options.py LIMIT_OPTIONS):
the NodeLimits fields and SessionConfig's admission fields, each a config
file key and an ``l2session node`` flag under its field's name, validated
with ``file:line:`` (or flag) errors, and reaching the Node and its
SessionConfig.  The μTCP listener's backlog is one of them, checked on a
real socket."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from l2session.cli.commands import session_config
from l2session.cli.main import build_parser
from l2session.cli.node_options import (
    LIMIT_OPTIONS,
    NODE_OPTIONS,
    limits_of,
    load_config,
    merge,
)
from l2session.core.config import SessionConfig
from l2session.errors import ConfigError
from l2session.runtime.limits import MAX_LISTEN_BACKLOG, NodeLimits
from l2session.transports.tcp import TcpTransport

ADMISSION = [f.name for f in dataclasses.fields(SessionConfig) if f.name.startswith("admission_")]


def test_every_limit_is_an_option_with_the_fields_default_and_type() -> None:
    fields = {f.name: f for f in dataclasses.fields(NodeLimits)}
    fields.update({f.name: f for f in dataclasses.fields(SessionConfig) if f.name in ADMISSION})
    assert {o.key for o in LIMIT_OPTIONS} == set(fields)
    for option in LIMIT_OPTIONS:
        field = fields[option.key]
        assert option.default == field.default, option.key
        assert option.kind.__name__ == field.type, option.key
        assert option in NODE_OPTIONS
    keys = [o.key for o in NODE_OPTIONS]
    assert len(keys) == len(set(keys))


def parse(*argv: str) -> argparse.Namespace:
    return merge(build_parser().parse_args(["node", *argv]))


def test_defaults_give_the_default_limits_and_admission() -> None:
    args = parse()
    assert limits_of(args) == NodeLimits()
    assert session_config(args) == SessionConfig()


def test_the_file_sets_limits_and_flags_win(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        "tcp_max_connections = 20000\n"
        "tcp_listen_backlog = 1024\n"
        "quic_max_connections = 12000\n"
        "tcp_hello_timeout = 5\n"
        "admission_cpu_share = 0.5\n"
        "admission_host_burst = 80\n"
        "heartbeat_interval = 10.0\n"
    )
    args = parse("--config", str(path), "--quic-max-connections", "9000")
    limits = limits_of(args)
    assert (limits.tcp_max_connections, limits.tcp_listen_backlog) == (20_000, 1_024)
    assert limits.quic_max_connections == 9_000  # the flag wins
    assert limits.tcp_hello_timeout == 5.0
    assert isinstance(limits.tcp_hello_timeout, float)
    config = session_config(args)
    assert (config.admission_cpu_share, config.admission_host_burst) == (0.5, 80)
    assert config.heartbeat_interval == 10.0
    assert config.admission_global_rate == SessionConfig().admission_global_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp_max_connections = 0\n", ":1: tcp_max_connections must be an integer from 1"),
        ("x = 1\ntcp_listen_backlog = 70000\n", ":2: tcp_listen_backlog must be at most 65535"),
        ("tcp_max_connections = 1.5\n", ":1: tcp_max_connections is an integer, got 1.5"),
        ("tcp_max_connections = true\n", ":1: tcp_max_connections is an integer, got True"),
        ("tcp_frame_timeout = -1\n", ":1: tcp_frame_timeout must be a positive number"),
        ("admission_cpu_share = 100.0\n", ":1: admission_cpu_share must be a share of one core"),
        ("admission_max_hosts = 0\n", ":1: admission_max_hosts must be an integer >= 1"),
    ],
)
def test_a_bad_limit_in_the_file_names_file_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text.replace("x = 1\n", 'listen = "127.0.0.1:1"\n'))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}{expected}"), str(caught.value)


def test_a_bad_limit_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--tcp-max-unidentified must be an integer from 1"):
        parse("--tcp-max-unidentified", "0")
    with pytest.raises(ConfigError, match=r"^--admission-quarantine must be a positive number"):
        parse("--admission-quarantine", "0")


def test_limits_are_listed_in_their_own_help_section(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["node", "--help"])
    text = capsys.readouterr().out
    section = text.split("\nlimits:\n", 1)[1]
    for option in LIMIT_OPTIONS:
        assert option.flag in section, option.flag


def test_every_limit_is_documented_in_the_limits_table() -> None:
    network = (Path(__file__).parent.parent / "docs" / "NETWORK.md").read_text()
    table = network.split("## Limits", 1)[1].split("\n## ", 1)[0]
    for option in LIMIT_OPTIONS:
        assert f"| `{option.key}` |" in table, option.key


def _listen_backlog(port: int) -> int:
    """The backlog of the listener on ``port`` (ss shows it as Send-Q)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.split()
    return int(out[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_listen_backlog_reaches_the_socket() -> None:
    """asyncio's default backlog is 100; the μTCP listener uses the limit
    (clamped by the kernel to net.core.somaxconn)."""
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())

    class Quiet:
        def packet_received(self, data: bytes, address: str, path: str) -> None: ...
        def path_up(self, address: str, path: str) -> None: ...
        def path_down(self, address: str, path: str, reason: str) -> None: ...

    async def scenario() -> tuple[int, int]:
        seen = []
        for backlog in (7, NodeLimits().tcp_listen_backlog):
            tcp = TcpTransport(listen_backlog=backlog)
            port = await tcp.start(Quiet(), "127.0.0.1", 0)
            try:
                seen.append(_listen_backlog(port))
            finally:
                await tcp.close()
        return seen[0], seen[1]

    small, default = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert small == 7
    assert default == min(NodeLimits().tcp_listen_backlog, somaxconn)
    assert default > 100


def test_the_backlog_limit_is_bounded() -> None:
    NodeLimits(tcp_listen_backlog=MAX_LISTEN_BACKLOG)
    with pytest.raises(ConfigError, match=r"NodeLimits\.tcp_listen_backlog"):
        NodeLimits(tcp_listen_backlog=MAX_LISTEN_BACKLOG + 1)
    with pytest.raises(ConfigError, match="listen_backlog must be positive"):
        TcpTransport(listen_backlog=0)
