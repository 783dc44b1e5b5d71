"""Issue 21: the command line an operator scripts and watches, tried as a
user would, with nodes in separate OS processes on loopback: status and id,
JSON lines, binary payloads, resumable listen, idempotent send with exit
codes, peers that moved, and the one-line errors the README promises."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_support import ENV, STAMP, RunningNode, cli, node_pair


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RunningNode, RunningNode]]:
    with node_pair(tmp_path) as nodes:
        yield nodes


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The README's promise: exit 1, one line on stderr, no traceback and
    no Python class name in front of the message."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("l2session: error: "), lines
    assert not re.match(r"l2session: error: [A-Z][A-Za-z]+(Error|Failed):", lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    assert "uvloop" not in result.stderr
    return lines[0]


def test_status_and_id(pair: tuple[RunningNode, RunningNode]) -> None:
    a, b = pair
    sent = cli("send", "--home", str(a.home), b.did, "hello", "--to", b.address)
    assert sent.returncode == 0, sent.stderr
    shown = cli("status", "--home", str(a.home))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith(f"node: {a.did}\n  listening: {a.address} (quic, tcp)")
    block = text.split(f"peer: {b.did}\n", 1)[1]
    assert "  state: established (quic)" in block
    assert f"  endpoint: {b.address}" in block
    assert "latest handshake: " in block
    assert "messages: 0 received, 1 sent" in block
    info = json.loads(cli("status", "--home", str(a.home), "--json").stdout)
    (row,) = info["sessions"]
    assert (row["peer"], row["state"], row["address"]) == (b.did, "established", b.address)
    assert row["messages_sent"] == 1
    assert row["bytes_sent"] > 0
    assert row["bytes_received"] > 0
    assert row["key_epoch"] == 0
    # --watch --json: one object per interval, on one connection.
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "l2session",
            "status",
            "--home",
            str(a.home),
            "--json",
            "--watch",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert watch.stdout is not None
        frames = [json.loads(watch.stdout.readline()) for _ in range(2)]
    finally:
        watch.terminate()
        watch.communicate(timeout=10)
    assert [f["did"] for f in frames] == [a.did, a.did]

    assert cli("id", "--home", str(a.home)).stdout.strip() == a.did
    assert json.loads(cli("id", "--home", str(b.home), "--json").stdout) == {"did": b.did}
    a.stop()
    # No node running: the DID is read from the store.
    assert cli("id", "--home", str(a.home)).stdout.strip() == a.did


def test_listen_json_binary_and_send_file(
    pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    a, b = pair
    blob = bytes(range(256)) * 40 + b"\xff\xfe\x00"
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    send = ("send", "--home", str(a.home), b.did)
    assert cli(*send, "--file", str(path), "--to", b.address).returncode == 0
    # Binary standard input (issue 21 bug 7: it raised UnicodeEncodeError).
    piped = subprocess.run(
        [sys.executable, "-m", "l2session", *send, "-"],
        input=b"\x80\x81 not utf-8 \xff",
        capture_output=True,
        env=ENV,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    out = json.loads(cli(*send, "text", "--json").stdout)
    assert out["delivered"] is True
    assert out["seq"] == 2

    heard = cli("listen", "--home", str(b.home), "--json", "--count", "3", "--timeout", "20")
    assert heard.returncode == 0, heard.stderr
    lines = [json.loads(line) for line in heard.stdout.splitlines()]
    assert [line["seq"] for line in lines] == [0, 1, 2]
    assert {line["from"] for line in lines} == {a.did}
    assert len({line["stream"] for line in lines}) == 1
    assert base64.b64decode(lines[0]["data_b64"]) == blob
    assert base64.b64decode(lines[1]["data_b64"]) == b"\x80\x81 not utf-8 \xff"
    assert lines[2]["request"] is None

    raw = tmp_path / "raw"
    raw.mkdir()
    assert cli(*send, "--file", str(path)).returncode == 0
    got = cli("listen", "--home", str(b.home), "--raw", str(raw), "--count", "1", "--timeout", "20")
    assert got.returncode == 0, got.stderr
    (written,) = raw.iterdir()
    assert written.read_bytes() == blob
    assert written.stat().st_mode & 0o777 == 0o600
    assert str(written) in got.stdout


def test_listen_resumes_from_its_cursor_exactly_once(
    pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    """Issue 21 bug 3: a node killed mid-hand-over used to make listen print
    up to a whole batch twice.  With --cursor each message is printed once
    across the kill, and listen says the node went away (bug 9)."""
    a, b = pair
    total = 3000
    lines = "".join(f"m{i}\n" for i in range(total))
    batch = subprocess.run(
        [
            sys.executable,
            "-m",
            "l2session",
            "send",
            "--home",
            str(a.home),
            b.did,
            "--batch",
            "--to",
            b.address,
            "--timeout",
            "60",
        ],
        input=lines,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
        check=False,
    )
    assert batch.returncode == 0, batch.stderr
    assert batch.stdout.startswith(f"{total} message(s) sent, delivered #{total - 1}")
    cursor = tmp_path / "cursor.json"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "l2session",
            "listen",
            "--home",
            str(b.home),
            "--json",
            "--cursor",
            str(cursor),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert first.stdout is not None
    seen = [json.loads(first.stdout.readline())]  # listen is taking messages over
    b.kill()
    # Not communicate(): it reads the pipe's descriptor and would skip what
    # readline() already buffered.
    rest = first.stdout.read()  # until listen exits (bounded: the node is gone)
    assert first.stderr is not None
    err = first.stderr.read()
    first.wait(timeout=30)
    first.stdout.close()
    first.stderr.close()
    seen += [json.loads(line) for line in rest.splitlines()]
    assert first.returncode == 1
    assert err.startswith("l2session: error: the node stopped while listen was attached")
    assert len(err.splitlines()) == 1

    again = RunningNode(b.home, b.address, init=False)
    b.process = again.process
    second = cli(
        "listen", "--home", str(b.home), "--json", "--cursor", str(cursor), "--timeout", "8"
    )
    assert second.returncode == 0, second.stderr
    seen += [json.loads(line) for line in second.stdout.splitlines()]
    seqs = [line["seq"] for line in seen]
    assert sorted(seqs) == list(range(total)), (len(seqs), len(set(seqs)))


def test_send_id_is_idempotent_with_exit_codes(pair: tuple[RunningNode, RunningNode]) -> None:
    """Issue 21 bug 4: 0 delivered, 2 queued, 1 error; a retry with the same
    --id is recognised, also after the sending node was killed."""
    a, b = pair
    send = ("send", "--home", str(a.home), b.did)
    first = cli(*send, "one", "--to", b.address, "--id", "k1")
    assert (first.returncode, first.stdout.strip()) == (0, "delivered #0 over quic")
    retry = cli(*send, "one", "--id", "k1")
    assert retry.returncode == 0
    assert "delivered #0" in retry.stdout
    assert "a retry" in retry.stdout
    b.stop()
    queued = cli(*send, "two", "--id", "k2", "--timeout", "1")
    assert queued.returncode == 2, queued.stderr
    assert queued.stdout.startswith("queued #1:")
    a.kill()  # the node dies holding the queued message
    again = RunningNode(a.home, a.address, init=False)
    a.process = again.process
    retry = cli(*send, "two", "--id", "k2", "--timeout", "1", "--json")
    assert retry.returncode == 2, retry.stderr
    assert json.loads(retry.stdout)["seq"] == 1
    assert json.loads(retry.stdout)["duplicate"] is True
    back = RunningNode(b.home, b.address, init=False)
    b.process = back.process
    heard = cli("listen", "--home", str(b.home), "--count", "2", "--timeout", "30")
    assert heard.stdout.splitlines() == [f"{a.did}: one", f"{a.did}: two"]
    assert cli("listen", "--home", str(b.home), "--timeout", "3").stdout == ""
    assert cli(*send, "two", "--id", "k2").returncode == 0  # now delivered
    assert (a.home / "send-ids.json").stat().st_mode & 0o777 == 0o600
    other = cli("send", "--home", str(a.home), a.did, "x", "--id", "k2")
    one_line_error(other)


def test_peers_that_both_moved_find_each_other(tmp_path: Path) -> None:
    """Issue 21 bug 2: both nodes restart on new ports; an address the user
    gives updates the address book and wakes the session."""
    a = RunningNode(tmp_path / "a")
    b = RunningNode(tmp_path / "b")
    try:
        sent = cli("send", "--home", str(a.home), b.did, "before", "--to", b.address)
        assert sent.returncode == 0, sent.stderr
        a.stop()
        b.stop()
        a2, b2 = RunningNode(a.home, init=False), RunningNode(b.home, init=False)
        a2.did, b2.did = a.did, b.did
        a, b = a2, b2
        moved = cli("send", "--home", str(a.home), b.did, "after", "--to", b.address)
        assert moved.returncode == 0, (moved.stdout, moved.stderr)
        assert "delivered #1" in moved.stdout
        # peer set: the same for a session that is up (a new route to try).
        table = json.loads(cli("status", "--home", str(a.home), "--json").stdout)
        assert table["sessions"][0]["address"] == b.address
        told = cli("peer", "set", "--home", str(b.home), a.did, a.address)
        assert told.returncode == 0, told.stderr
        heard = cli("listen", "--home", str(b.home), "--count", "2", "--timeout", "20")
        assert heard.stdout.splitlines()[-1].endswith(": after")
        closed = cli("session", "close", "--home", str(a.home), b.did)
        assert closed.returncode == 0, closed.stderr
        assert json.loads(cli("status", "--home", str(a.home), "--json").stdout)["sessions"] == []
        one_line_error(cli("session", "close", "--home", str(a.home), b.did))
        assert cli("peer", "forget", "--home", str(a.home), b.did).returncode == 0
        unknown = cli("send", "--home", str(a.home), b.did, "x")
        assert "no address is known" in one_line_error(unknown)
    finally:
        a.stop()
        b.stop()


def test_node_peer_flag_wins_over_a_stored_address(tmp_path: Path) -> None:
    """Issue 21 bug 2: ``node --peer DID@NEW`` did not help a restored
    session that remembered the old address."""
    a = RunningNode(tmp_path / "a")
    b = RunningNode(tmp_path / "b")
    try:
        sent = cli("send", "--home", str(a.home), b.did, "before", "--to", b.address)
        assert sent.returncode == 0, sent.stderr
        a.stop()
        b.stop()
        a2 = RunningNode(a.home, init=False)
        b2 = RunningNode(b.home, init=False, extra=("--peer", f"{a.did}@{a2.address}"))
        a2.did, b2.did = a.did, b.did
        a, b = a2, b2
        back = cli("send", "--home", str(b.home), a.did, "from b", "--timeout", "30")
        assert back.returncode == 0, (back.stdout, back.stderr)
        # a learned b's new address from b's authenticated packets.
        forth = cli("send", "--home", str(a.home), b.did, "from a", "--timeout", "30")
        assert forth.returncode == 0, (forth.stdout, forth.stderr)
    finally:
        a.stop()
        b.stop()


def test_errors_are_one_line(pair: tuple[RunningNode, RunningNode], tmp_path: Path) -> None:
    """Issue 21 bugs 7 and 8, and the README's promise."""
    a, b = pair
    send = ("send", "--home", str(a.home), b.did)
    assert cli(*send, "hello", "--to", b.address).returncode == 0
    huge = subprocess.run(
        [sys.executable, "-m", "l2session", *send, "-"],
        input=b"x" * 10_000_000,
        capture_output=True,
        env=ENV,
        timeout=60,
        check=False,
    )
    assert "60,000 bytes" in one_line_error(
        subprocess.CompletedProcess(huge.args, huge.returncode, "", huge.stderr.decode())
    )
    assert "60,000 bytes" in one_line_error(cli(*send, "y" * 100_000))
    big = subprocess.run(
        [sys.executable, "-m", "l2session", *send, "-"],
        input=b"z" * 200_000,
        capture_output=True,
        env=ENV,
        timeout=60,
        check=False,
    )
    big_error = big.stderr.decode()
    assert "60,000 bytes" in big_error
    assert "256" not in big_error  # not the control socket's request limit
    started = time.monotonic()
    own = one_line_error(cli("send", "--home", str(a.home), a.did, "me"))
    assert "own DID" in own
    assert time.monotonic() - started < 10
    wrong = cli(*send, "x", "--to", "127.0.0.1:9")
    assert wrong.returncode == 0
    assert wrong.stderr.startswith(f"l2session: note: the session with {b.did} works at")
    again = one_line_error(cli("init", "--home", str(a.home)))
    assert "init --force" in again
    assert "overwrite" not in again
    # A live node with another DID at the address.
    stranger = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    other = cli("send", "--home", str(a.home), stranger, "x", "--to", b.address, "--timeout", "3")
    assert "another DID" in one_line_error(other)
    nobody = one_line_error(cli("status", "--home", str(tmp_path / "none")))
    assert "no node is running" in nobody
    policy = tmp_path / "p.toml"
    policy.write_text(
        'version = 1\n[[grant]]\npeers = ["*"]\nresource = "r://x"\nactions = ["a"]\n'
    )
    assert "did" in one_line_error(cli("policy", "check", str(policy), "not-a-did", "a r://x"))


def test_bad_stores_are_refused_with_one_line(tmp_path: Path) -> None:
    """Issue 21 bug 5 (an empty node.db got a new identity) and bug 8 (a
    damaged store printed an SQLite dump)."""
    home = tmp_path / "n"
    home.mkdir(mode=0o700)
    store = home / "node.db"
    store.touch(mode=0o600)
    empty = one_line_error(cli("node", "--home", str(home), "--listen", "127.0.0.1:0"))
    assert "empty" in empty
    assert store.stat().st_size == 0  # untouched
    store.write_bytes(b"this is not an SQLite database at all" * 100)
    damaged = one_line_error(cli("node", "--home", str(home), "--listen", "127.0.0.1:0"))
    assert "not an SQLite database" in damaged


def test_node_lines_have_timestamps_and_json(tmp_path: Path) -> None:
    node = RunningNode(tmp_path / "a", extra=("--log-format", "json"))
    try:
        assert node.process.stdout is not None
    finally:
        out = node.stop()
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1]["msg"] == "node stopped"
    assert all(re.fullmatch(r"\d{4}-.*Z", line["ts"]) for line in lines)
    text = RunningNode(tmp_path / "b")
    assert STAMP.match(text.stop())


def test_node_config_file(tmp_path: Path) -> None:
    home = tmp_path / "n"
    assert cli("init", "--home", str(home)).returncode == 0
    config = tmp_path / "node.toml"
    config.write_text('home = "n"\nlisten = "127.0.0.1:0"\nquiet = true\nlog_format = "json"\n')
    checked = cli("config", "check", str(config))
    assert (checked.returncode, checked.stdout.strip()) == (0, f"{config}: ok (4 option(s) set)")
    node = subprocess.Popen(
        [sys.executable, "-m", "l2session", "node", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert node.stdout is not None
    first = json.loads(node.stdout.readline())
    assert "listening on 127.0.0.1:" in first["msg"]
    assert cli("status", "--home", str(home)).returncode == 0
    node.terminate()
    node.communicate(timeout=20)
    config.write_text('listen = "127.0.0.1:0"\n\nheartbeat_interval = "fast"\n')
    bad = one_line_error(cli("config", "check", str(config)))
    assert f"{config}:3: heartbeat_interval is a number" in bad
    config.write_text('listen = "127.0.0.1:0"\nlisten_on = 3\n')
    assert f"{config}:2: unknown option 'listen_on'" in one_line_error(
        cli("config", "check", str(config))
    )
    assert f"{config}:" in one_line_error(cli("node", "--config", str(config)))


def test_client_commands_do_not_import_the_node_stack(tmp_path: Path) -> None:
    """``status`` must start fast: the client imports the standard library
    and l2session.errors, never core, crypto, QUIC or SQLite."""
    probe = (
        "import sys\n"
        "from l2session.cli.main import main\n"
        f"for argv in (['status', '--home', {str(tmp_path)!r}], ['send', 'did:key:z', 'x',"
        f" '--home', {str(tmp_path)!r}], ['listen', '--home', {str(tmp_path)!r}],"
        f" ['id', '--home', {str(tmp_path)!r}]):\n"
        "    assert main(argv) == 1\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('asyncio', 'sqlite3', 'cryptography', 'qh3', 'blake3', 'uvloop')"
        " or m.startswith(('l2session.core', 'l2session.crypto', 'l2session.runtime',"
        " 'l2session.transports', 'l2session.store', 'l2session.identity',"
        " 'l2session.membrane', 'l2session.wire')))\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # id without a node falls back to reading the store with sqlite3: only then.
    assert result.stdout.strip() in ("[]", "['sqlite3', 'sqlite3.dbapi2']"), result.stdout


def test_the_client_message_limit_is_the_session_limit() -> None:
    from l2session.cli.control_commands import MAX_MESSAGE_SIZE
    from l2session.core.config import MAX_MESSAGE_SIZE as CORE_LIMIT

    assert MAX_MESSAGE_SIZE == CORE_LIMIT


def test_a_failure_inside_the_loop_carries_no_uvloop_context() -> None:
    """Issue 21 bug 7: asyncio.run inside ``except ImportError`` chained
    "No module named 'uvloop'" to every error."""
    from l2session.runtime.loop import run

    async def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom") as caught:
        run(boom())
    assert caught.value.__context__ is None


CONTRIB = Path(__file__).resolve().parents[2] / "contrib"


def test_the_systemd_unit_and_sample_config_are_valid(tmp_path: Path) -> None:
    from l2session.cli.main import build_parser
    from l2session.cli.node_options import load_config

    assert load_config(CONTRIB / "node.toml")["listen"] == "0.0.0.0:7700"
    unit = (CONTRIB / "l2session.service").read_text()
    (start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = start.split()[1:]
    args = build_parser().parse_args(argv)
    assert (args.command, args.config, args.home) == (
        "node",
        "/etc/l2session/node.toml",
        "/var/lib/l2session",
    )
    assert "Type=notify" in unit


def test_the_node_tells_systemd_it_is_ready(tmp_path: Path) -> None:
    """sd_notify: READY=1 on $NOTIFY_SOCKET once the node listens."""
    import socket

    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(60)
        ENV["NOTIFY_SOCKET"] = str(path)
        try:
            node = RunningNode(tmp_path / "a")
        finally:
            del ENV["NOTIFY_SOCKET"]
        try:
            ready = sock.recv(4096).decode()
        finally:
            node.stop()
        assert ready.startswith("READY=1\n")
        assert f"listening on {node.address}" in ready
        assert sock.recv(4096) == b"STOPPING=1"


def test_every_node_option_is_documented() -> None:
    from l2session.cli.node_options import NODE_OPTIONS

    network = (CONTRIB.parent / "docs" / "NETWORK.md").read_text()
    for option in NODE_OPTIONS:
        assert f"| `{option.key}` |" in network, option.key


def test_a_node_whose_store_fails_exits_with_one_line(
    pair: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    """The store cannot grow (RLIMIT_FSIZE: a full disk or a quota): the
    node stops with one line and exit 1 instead of hanging."""
    import resource

    a, _ = pair
    home = tmp_path / "small"
    assert cli("init", "--home", str(home)).returncode == 0
    size = (home / "node.db").stat().st_size

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 50_000, size + 50_000))

    node = subprocess.Popen(
        [sys.executable, "-m", "l2session", "node", "--home", str(home), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        preexec_fn=limit,
    )
    try:
        assert node.stdout is not None
        address = re.search(r"listening on (\S+)", node.stdout.readline())
        assert address is not None
        did = cli("id", "--home", str(home)).stdout.strip()
        argv = [sys.executable, "-m", "l2session", "send", "--home", str(a.home), did]
        argv += ["--batch", "--to", address.group(1), "--timeout", "5"]
        batch = subprocess.run(
            argv,
            input="".join("x" * 1000 + "\n" for _ in range(200)),
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
            check=False,
        )
        assert batch.returncode in (0, 2), batch.stderr
        _, err = node.communicate(timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
            node.communicate()
    assert node.returncode == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("l2session: error: the node stopped: ")
    assert "node.db" in lines[0]
