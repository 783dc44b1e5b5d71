"""Issue 21, in-process: ``audit tail -n`` and ``audit_log(limit=)`` with
fewer entries than asked (bug 6), the rate limiter of node lines (bug 10),
the node config file's ``file:line:`` errors, and the one-line errors of
client commands with no node."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest

from l2session.cli.main import main
from l2session.cli.node_log import NodeLog, RateLimiter, timestamp
from l2session.cli.node_options import NODE_OPTIONS, load_config
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.errors import ConfigError
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore

PEER = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def record(i: int) -> TransitionRecord:
    return TransitionRecord(
        PEER, State.IDLE, State.HANDSHAKE_INITIATED, Trigger.INITIATE_HANDSHAKE, f"#{i}", 1e9 + i
    )


def test_memory_store_audit_log_limit_beyond_its_length() -> None:
    store = MemoryStore()
    for i in range(3):
        store.append_audit(record(i))
    store.commit()
    assert [e.id for e in store.audit_log(limit=10)] == [1, 2, 3]
    assert [e.id for e in store.audit_log(limit=2)] == [2, 3]
    assert store.audit_log(limit=0) == []
    assert len(store.audit_trail(limit=50)) == 3


def test_audit_tail_n_beyond_the_log_prints_every_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    assert run(monkeypatch, "init", "--home", str(home))[0] == 0
    with SqliteStore.open(home / "node.db") as store:
        for i in range(3):
            store.append_audit(record(i))
        store.commit()
    code, out, _ = run(monkeypatch, "audit", "tail", "--home", str(home), "-n", "50")
    assert code == 0
    assert len(out.splitlines()) == 3
    code, out, _ = run(monkeypatch, "audit", "tail", "--home", str(home), "-n", "2")
    assert [line.split()[1] for line in out.splitlines()] == ["#2", "#3"]


def test_repeated_lines_are_rate_limited_per_key() -> None:
    now = [100.0]
    limiter = RateLimiter(60.0, clock=lambda: now[0])
    key = ("path", "127.0.0.1:9", "tcp", "connect failed")
    assert limiter.allow(key) == 0
    for _ in range(59):
        now[0] += 1.0
        assert limiter.allow(key) is None  # once a second, held back
    assert limiter.allow(("path", "127.0.0.1:10", "tcp", "connect failed")) == 0  # another peer
    now[0] += 1.0
    assert limiter.allow(key) == 59  # printed again, saying how many were held


def test_node_lines_carry_timestamps_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    log = NodeLog(out, interval=60.0)
    for _ in range(5):
        log.line("path tcp to 127.0.0.1:9 down: connect failed", key=("p", "9"))
    (line,) = out.getvalue().splitlines()
    stamp, text = line.split(" ", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert text == "path tcp to 127.0.0.1:9 down: connect failed"
    log.limiter.interval = 0.0
    log.line("path tcp to 127.0.0.1:9 down: connect failed", key=("p", "9"))
    assert out.getvalue().splitlines()[-1].endswith("(4 more like it held back)")
    as_json = io.StringIO()
    NodeLog(as_json, fmt="json").line("hello", peer=PEER)
    body = json.loads(as_json.getvalue())
    assert (body["msg"], body["peer"]) == ("hello", PEER)


def test_timestamps_are_utc_iso() -> None:
    assert timestamp(0.25) == "1970-01-01T00:00:00.250Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('listen = "127.0.0.1:1"\nbogus = 1\n', ":2: unknown option 'bogus'"),
        ('\n\nquiet = "yes"\n', ":3: quiet is true or false"),
        ("peer = [1]\n", ":1: peer is a list of text"),
        ("heartbeat_interval = -1\n", ":1: heartbeat_interval must be positive"),
        ('log_format = "xml"\n', ":1: log_format is 'text' or 'json'"),
        ("listen = \n", ":1: not valid TOML"),
    ],
)
def test_config_errors_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}{expected}"), str(caught.value)


def test_a_config_file_may_set_every_option(tmp_path: Path) -> None:
    values = {
        str: '"127.0.0.1:1"',
        int: "1",
        float: "1.5",
        bool: "true",
        list: '["a"]',
    }
    chosen = {"log_format": '"json"', "durability": '"process"'}
    text = "".join(f"{o.key} = {chosen.get(o.key, values[o.kind])}\n" for o in NODE_OPTIONS)
    path = tmp_path / "node.toml"
    path.write_text(text)
    assert set(load_config(path)) == {o.key for o in NODE_OPTIONS}


def test_flags_win_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from l2session.cli.main import build_parser
    from l2session.cli.node_options import merge

    path = tmp_path / "node.toml"
    path.write_text('listen = "127.0.0.1:1"\nquiet = true\npolicy = "p.toml"\n')
    args = build_parser().parse_args(["node", "--config", str(path), "--listen", "127.0.0.1:2"])
    merge(args)
    assert (args.listen, args.quiet, args.policy) == ("127.0.0.1:2", True, str(tmp_path / "p.toml"))
    assert args.log_format == "text"
    assert args.peer == []


def test_client_commands_without_a_node_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for argv in (
        ["status"],
        ["sessions"],
        ["listen"],
        ["send", PEER, "x"],
        ["peer", "forget", PEER],
    ):
        code, _, err = run(monkeypatch, *argv, "--home", str(tmp_path))
        assert code == 1
        assert err.splitlines() == [
            f"l2session: error: no node is running for {tmp_path} (start one with: l2session node)"
        ]
    code, _, err = run(monkeypatch, "id", "--home", str(tmp_path))
    assert code == 1
    assert "create one with: l2session init" in err
    code, _, err = run(monkeypatch, "send", PEER, "--home", str(tmp_path))
    assert code == 1
    assert err.startswith("l2session: error: nothing to send: give a message, - (standard input)")
