"""Two separate OS processes, each a node started with ``l2session node``,
talking through the command line: init, node, send, listen, sessions; and
the errors a user meets (no node running, bad address, unknown DID,
unreachable peer).  Loopback only; every wait is bounded."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_support import RunningNode, cli, next_line, node_pair


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RunningNode, RunningNode]]:
    with node_pair(tmp_path, clean_exit=True) as nodes:
        yield nodes


def test_two_processes_talk_through_the_cli(pair: tuple[RunningNode, RunningNode]) -> None:
    a, b = pair
    sent = cli("send", "--home", str(a.home), b.did, "hello from a", "--to", b.address)
    assert sent.returncode == 0, sent.stderr
    # QUIC, unless it made no progress within the path race's 250 ms on a
    # busy machine (then μTCP carried the handshake, core/paths/race.py).
    assert re.search(r"delivered #0 over (quic|tcp)", sent.stdout), sent.stdout
    heard = cli("listen", "--home", str(b.home), "--count", "1", "--timeout", "20")
    assert heard.returncode == 0, heard.stderr
    assert heard.stdout.strip() == f"{a.did}: hello from a"

    # The address is remembered: the second send needs no --to.
    again = cli("send", "--home", str(a.home), b.did, "second")
    assert again.returncode == 0, again.stderr
    table = cli("sessions", "--home", str(a.home))
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["PEER", "STATE", "TRANSPORT", "AGE", "EPOCH", "QUEUED"]
    assert row.split()[:2] == [b.did, "established"]
    assert row.split()[2] in ("quic", "tcp")
    heard = cli("listen", "--home", str(b.home), "--count", "1", "--timeout", "20")
    assert heard.stdout.strip() == f"{a.did}: second"


def test_cli_errors_are_clear(pair: tuple[RunningNode, RunningNode], tmp_path: Path) -> None:
    a, b = pair
    nobody = cli("sessions", "--home", str(tmp_path / "nobody"))
    assert nobody.returncode == 1
    assert "no node is running" in nobody.stderr
    assert "l2session node" in nobody.stderr

    bad = cli("send", "--home", str(a.home), b.did, "x", "--to", "localhost:1")
    assert bad.returncode == 1
    assert "not an IP address" in bad.stderr

    unknown = cli(
        "send",
        "--home",
        str(a.home),
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "x",
    )
    assert unknown.returncode == 1
    assert "no address is known" in unknown.stderr

    baddid = cli("send", "--home", str(a.home), "did:example", "x", "--to", b.address)
    assert baddid.returncode == 1
    assert "did" in baddid.stderr.lower()

    down = cli(
        "send",
        "--home",
        str(a.home),
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "x",
        "--to",
        "127.0.0.1:9",
        "--timeout",
        "6",
    )
    assert down.returncode == 1
    assert "127.0.0.1:9" in down.stderr
    # Nothing listens on port 9: μTCP's refusal settles it at once (issue
    # 21: it used to wait for QUIC's timeout and blame UDP).
    assert "nothing listens at 127.0.0.1:9" in down.stderr, down.stderr
    assert "UDP" not in down.stderr

    noinit = cli("node", "--home", str(tmp_path / "empty"), "--listen", "127.0.0.1:0")
    assert noinit.returncode == 1
    assert "l2session init" in noinit.stderr


def test_control_socket_is_private(pair: tuple[RunningNode, RunningNode]) -> None:
    a, _ = pair
    sock = a.home / "control.sock"
    assert sock.exists()
    assert sock.stat().st_mode & 0o777 == 0o600
    assert a.home.stat().st_mode & 0o777 == 0o700


def test_a_message_to_a_stopped_node_waits_in_the_store(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    a, b = pair
    first = cli("send", "--home", str(a.home), b.did, "while up", "--to", b.address)
    assert first.returncode == 0, first.stderr
    b.stop()
    queued = cli("send", "--home", str(a.home), b.did, "while down", "--timeout", "2")
    assert queued.returncode == 2, queued.stderr  # queued, not yet acknowledged
    assert "queued #1" in queued.stdout
    table = cli("sessions", "--home", str(a.home), "--json")
    assert '"queued": 1' in table.stdout
    # b comes back on the same address, from its store: a's queue drains.
    again = RunningNode(b.home, b.address, init=False)
    b.process = again.process
    heard = cli("listen", "--home", str(b.home), "--count", "2", "--timeout", "30")
    assert heard.returncode == 0, heard.stderr
    assert heard.stdout.splitlines() == [f"{a.did}: while up", f"{a.did}: while down"]


def test_a_second_node_on_the_same_store_is_refused(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    a, b = pair
    sent = cli("send", "--home", str(a.home), b.did, "hello", "--to", b.address)
    assert sent.returncode == 0, sent.stderr
    twin = cli("node", "--home", str(a.home), "--listen", "127.0.0.1:0", timeout=30)
    assert twin.returncode == 1
    assert "in use by another running node" in twin.stderr
    # ...and it touched nothing: the first node's session still works.
    again = cli("send", "--home", str(a.home), b.did, "still here", "--timeout", "10")
    assert again.returncode == 0, again.stderr
    assert "delivered #1" in again.stdout


def test_a_listener_that_dies_before_confirming_loses_nothing(
    pair: tuple[RunningNode, RunningNode],
) -> None:
    a, b = pair
    sent = cli("send", "--home", str(a.home), b.did, "keep me", "--to", b.address)
    assert sent.returncode == 0, sent.stderr
    # A raw client: asks to listen, reads the message, hangs up without the ack.
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(b.home / "control.sock"))
        sock.sendall(b'{"op": "listen"}\n')
        received = b""
        while received.count(b"\n") < 3:  # the greeting, the message, the batch end
            chunk = sock.recv(65536)
            assert chunk
            received += chunk
        lines = [json.loads(line) for line in received.splitlines()]
        assert lines[1]["type"] == "message"
        assert lines[2] == {"type": "batch", "count": 1}
    heard = cli("listen", "--home", str(b.home), "--count", "1", "--timeout", "20")
    assert heard.stdout.strip() == f"{a.did}: keep me"


DENY_PAYMENTS = """version = 1
[[grant]]
peers = ["*"]
resource = "feed://news"
actions = ["read"]
"""

ALLOW_PAYMENTS = (
    DENY_PAYMENTS
    + """
[[grant]]
id = "pay"
peers = ["*"]
resource = "service://payment"
actions = ["call"]
"""
)


def test_a_policy_screens_cli_requests_and_reloads_on_sighup(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(DENY_PAYMENTS)
    b = RunningNode(tmp_path / "b", extra=("--policy", str(policy)))
    a = RunningNode(tmp_path / "a")
    try:
        assert b.process.stdout is not None
        assert "screened by" in b.process.stdout.readline()
        send = ("send", "--home", str(a.home), b.did, "--to", b.address)
        denied = cli(*send, "pay 5", "--capability", "call service://payment 5")
        assert denied.returncode == 3, denied.stderr
        assert denied.stdout.strip() == (
            f"denied #0: no grant allows call service://payment to {a.did}"
        )
        allowed = cli(*send, "news?", "--capability", "read feed://news")
        assert allowed.returncode == 0, allowed.stderr
        assert "delivered #1" in allowed.stdout

        policy.write_text(ALLOW_PAYMENTS)
        b.process.send_signal(signal.SIGHUP)
        assert next_line(b, "policy ").startswith("policy reloaded from")
        paid = cli(*send, "pay 5 again", "--capability", "call service://payment 5")
        assert paid.returncode == 0, paid.stdout
        heard = cli("listen", "--home", str(b.home), "--count", "2", "--timeout", "20")
        assert heard.stdout.splitlines() == [f"{a.did}: news?", f"{a.did}: pay 5 again"]

        policy.write_text("version = 1\n[[grant]]\nnope = 1\n")
        b.process.send_signal(signal.SIGHUP)
        line = next_line(b, "policy ")
        assert line.startswith("policy not reloaded, the old one stays:"), line
        assert "policy.toml:3" in line
    finally:
        a.stop()
        b.stop()
    assert (b.process.returncode, a.process.returncode) == (0, 0)
    audit = cli("audit", "tail", "--home", str(b.home), "--kind", "access")
    assert [line.split(" ", 3)[3].split(": ")[0] for line in audit.stdout.splitlines()] == [
        "deny call service://payment x5",
        "allow read feed://news",
        "allow call service://payment x5",
    ]
    verified = cli("audit", "verify", "--home", str(b.home))
    assert verified.returncode == 0
    assert verified.stdout.startswith("audit log intact")


def test_sessions_shows_what_peers_said_about_reachability(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    b = RunningNode(tmp_path / "b", extra=("--discovery", f"127.0.0.1:{port}"))
    try:
        a = RunningNode(tmp_path / "a", extra=("--discover-via", f"127.0.0.1:{port}"))
        try:
            for _ in range(200):  # the check runs in the background at start
                table = cli("sessions", "--home", str(a.home))
                assert table.returncode == 0, table.stderr
                if table.stdout.startswith("reachability:"):
                    break
                time.sleep(0.1)
            first = table.stdout.splitlines()[0]
            assert first.startswith("reachability: public, seen as 127.0.0.1:"), table.stdout
            assert f"dialled back by 127.0.0.1:{port}" in first
            status = cli("sessions", "--home", str(a.home), "--json")
            assert status.returncode == 0
        finally:
            a.stop()
    finally:
        b.stop()


def test_a_message_through_a_relay_from_the_command_line(tmp_path: Path) -> None:
    relay = RunningNode(tmp_path / "relay", extra=("--relay",))
    try:
        via = f"{relay.did}@{relay.address}"
        a = RunningNode(tmp_path / "a", extra=("--reserve-on", via))
        b = RunningNode(tmp_path / "b")
        try:
            for _ in range(200):  # the reservation is made at start
                table = cli("sessions", "--home", str(a.home))
                if "reserved (seen as" in table.stdout:
                    break
                time.sleep(0.1)
            assert f"relay {relay.address}: reserved" in table.stdout, table.stdout
            assert f"reach us as relay://{relay.address}" in table.stdout
            sent = cli(
                "send",
                "--home",
                str(b.home),
                a.did,
                "via the relay",
                "--to",
                f"relay://{relay.address}",
            )
            assert sent.returncode == 0, sent.stderr
            # Through the relay, unless the hole punch (both nodes are on
            # loopback) already moved the session to QUIC.
            assert re.search(r"over (relay|quic)", sent.stdout), sent.stdout
            heard = cli("listen", "--home", str(a.home), "--count", "1", "--timeout", "20")
            assert heard.stdout.strip() == f"{b.did}: via the relay"
            served = cli("sessions", "--home", str(relay.home))
            assert "relaying: 1 reservations, 1 circuits" in served.stdout, served.stdout
        finally:
            a.stop()
            b.stop()
    finally:
        relay.stop()
