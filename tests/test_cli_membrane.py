"""The Membrane commands (cli/membrane.py), run in-process on a real store:
``trust``, ``policy check``, ``audit tail`` and ``audit verify`` -- including
what they say about a tampered log and a bad policy file."""

from __future__ import annotations

import io
import sqlite3
import sys
from pathlib import Path

import pytest

from l2session.cli.main import main
from l2session.core.link.envelope import AccessRecord
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.membrane import audit
from l2session.store.sqlite import SqliteStore

PEER = Identity.generate(SeededRandom("cli membrane peer")).did_text
FRIEND = Identity.generate(SeededRandom("cli membrane friend")).did_text

POLICY = f"""\
version = 1

[constraints]
min_trust = 0.3

[groups]
team = ["{PEER}"]

[[grant]]
id = "pay"
peers = ["group:team"]
resource = "service://payment"
actions = ["call"]
min_trust = 0.6
quota = {{ units = 100, window = "1h" }}
"""


def cli(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    code, _, err = cli(monkeypatch, "init", "--home", str(home))
    assert code == 0, err
    return home


def test_policy_check_explains_and_trust_changes_the_verdict(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    check = ("policy", "check", "--home", str(home), str(policy), PEER, "call service://payment 5")
    code, out, _ = cli(monkeypatch, *check)
    assert code == 3
    assert "QVL trust: score 0.500: unknown within 3 hops, neutral" in out
    assert "DENIED: trust 0.5 is below the minimum 0.6 of grant 'pay'" in out
    assert out.index("QVL trust") < out.index("DENIED")

    code, out, _ = cli(monkeypatch, "trust", "set", "--home", str(home), PEER, "0.8")
    assert code == 0
    assert f"trust in {PEER} set to +0.800; its score is now 0.900" in out
    code, out, _ = cli(monkeypatch, *check)
    assert code == 0
    assert "ALLOWED" in out
    assert "quota" in out  # the narration shows the quota it would use

    code, out, _ = cli(monkeypatch, "trust", "show", "--home", str(home))
    assert code == 0
    assert "1 edges" in out
    assert PEER in out
    code, out, _ = cli(monkeypatch, "trust", "show", "--home", str(home), PEER)
    assert "score 0.900 from trust +0.800" in out

    # Not a member of the group: no grant admits this DID.
    code, out, _ = cli(
        monkeypatch,
        "policy",
        "check",
        "--home",
        str(home),
        str(policy),
        FRIEND,
        "call service://payment",
    )
    assert code == 3
    assert "DENIED" in out
    # Checking records nothing: the audit log has no access entries.
    code, out, _ = cli(monkeypatch, "audit", "tail", "--home", str(home), "--kind", "access")
    assert code == 0
    assert out == ""


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("version = 1\n[[grant]]\npeers = ['*']\nresource = 'feed://x'\nactoins = ['r']\n", ":5:"),
        ("version = 1\n[[grant]\n", ":2"),
    ],
)
def test_a_bad_policy_file_is_one_line_naming_file_and_line(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, says: str
) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text(content)
    code, out, err = cli(
        monkeypatch, "policy", "check", "--home", str(home), str(policy), PEER, "read feed://x"
    )
    assert code == 1
    assert out == ""
    assert err.startswith(f"l2session: error: {policy}{says}")
    assert err.count("\n") == 1


def test_bad_arguments_are_clear(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    code, _, err = cli(monkeypatch, "policy", "check", str(policy), PEER, "call")
    assert code == 1
    assert "ACTION RESOURCE" in err
    code, _, err = cli(monkeypatch, "trust", "set", "--home", str(home), PEER, "lots")
    assert code == 1
    assert "not a number" in err
    code, _, err = cli(monkeypatch, "trust", "set", "--home", str(home), PEER, "1.5")
    assert code == 1
    assert "weight" in err
    code, _, err = cli(monkeypatch, "audit", "verify", "--home", str(tmp_path / "nowhere"))
    assert code == 1
    assert "l2session init" in err


def fill(home: Path) -> None:
    with SqliteStore.open(home / "node.db") as store:
        for i in range(5):
            store.append_audit(
                TransitionRecord(
                    PEER,
                    State.IDLE,
                    State.HANDSHAKE_INITIATED,
                    Trigger.INITIATE_HANDSHAKE,
                    f"dial {i}",
                    1_800_000_000.0 + i,
                )
            )
            store.append_audit(
                AccessRecord(
                    PEER,
                    i % 2 == 0,
                    "call",
                    "service://payment",
                    5,
                    "allowed" if i % 2 == 0 else "constraint",
                    "ok" if i % 2 == 0 else "quota used up",
                    "pay",
                    1_800_000_000.5 + i,
                )
            )
        store.commit()


def test_audit_tail_and_verify(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(home)
    code, out, _ = cli(monkeypatch, "audit", "tail", "--home", str(home), "-n", "3")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("2027-01-15T08:00:03Z #8 ")
    assert lines[-1].endswith("allow call service://payment x5: ok")
    code, out, _ = cli(monkeypatch, "audit", "tail", "--home", str(home), "--json", "-n", "1")
    assert '"allowed": true' in out
    assert '"id": 10' in out

    code, out, _ = cli(monkeypatch, "audit", "verify", "--home", str(home))
    assert code == 0
    assert out.startswith("audit log intact: 10 entries\nhead: #10 ")
    head = out.splitlines()[1].split()[-1]
    code, out, _ = cli(monkeypatch, "audit", "verify", "--home", str(home), "--expect", head)
    assert code == 0
    assert "matches" in out

    # A cut tail verifies on its own, but not against the recorded head.
    conn = sqlite3.connect(home / "node.db")
    conn.execute("DELETE FROM audit_log WHERE id = 10")
    conn.commit()
    code, out, _ = cli(monkeypatch, "audit", "verify", "--home", str(home), "--expect", head)
    assert code == 1
    assert "head differs" in out
    # An edit is named.
    conn.execute("UPDATE audit_log SET body = replace(body, 'quota', 'QUOTA') WHERE id = 4")
    conn.commit()
    conn.close()
    code, out, _ = cli(monkeypatch, "audit", "verify", "--home", str(home))
    assert code == 1
    assert out.startswith("audit log TAMPERED: entry #4 does not match its digest")
    assert "up to #3" in out


# --------------------------------------------------------------------------
# Checkpoints (review finding 6): before them, --expect compared the head,
# so on a running node an honest log that grew and a rewritten one looked
# the same.  A checkpoint fixes an entry instead.


def _rewrite_from(home: Path, first: int) -> None:
    """What someone who can write the file does: edit entry ``first`` and
    recompute every digest from there, so the chain verifies again."""
    conn = sqlite3.connect(home / "node.db")
    rows = conn.execute(
        "SELECT id, at, kind, subject, body FROM audit_log WHERE id >= ? ORDER BY id", (first,)
    ).fetchall()
    (prev,) = conn.execute("SELECT digest FROM audit_log WHERE id = ?", (first - 1,)).fetchone()
    for entry_id, at, kind, subject, body in rows:
        if entry_id == first:
            body = body.replace("dial", "DIAL")
        prev = audit.link(prev, entry_id, at, kind, subject, body)
        conn.execute(
            "UPDATE audit_log SET body = ?, digest = ? WHERE id = ?", (body, prev, entry_id)
        )
    conn.commit()
    conn.close()


def test_a_signed_checkpoint_tells_growth_from_a_rewrite(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(home)
    code, out, _ = cli(monkeypatch, "audit", "checkpoint", "--home", str(home))
    assert code == 0
    point, signature_line, signer = out.splitlines()[:3]
    assert point.startswith("#10 ")
    signature = signature_line.removeprefix("signature: ")
    assert signer.startswith("signed by: did:key:")
    expect = ("audit", "verify", "--home", str(home), "--expect", point)

    fill(home)  # the node ran on: ten more entries
    code, out, _ = cli(monkeypatch, *expect, "--signature", signature)
    assert code == 0, out
    assert "signature by this node's DID verifies" in out
    assert f"checkpoint {point} holds: the chain verifies through it and 10 entries beyond" in out

    forged = ("0" if signature[0] != "0" else "1") + signature[1:]
    code, _, err = cli(monkeypatch, *expect, "--signature", forged)
    assert code == 1
    assert "does not verify" in err

    _rewrite_from(home, 3)  # the chain alone cannot see this
    code, out, _ = cli(monkeypatch, "audit", "verify", "--home", str(home))
    assert code == 0
    code, out, _ = cli(monkeypatch, *expect)
    assert code == 1
    assert "CHECKPOINT BROKEN: entry #10" in out


def test_a_checkpoint_past_a_cut_tail_is_lost(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(home)
    _, out, _ = cli(monkeypatch, "audit", "checkpoint", "--home", str(home))
    point = out.splitlines()[0]
    conn = sqlite3.connect(home / "node.db")
    conn.execute("DELETE FROM audit_log WHERE id >= 9")
    conn.commit()
    conn.close()
    code, out, _ = cli(monkeypatch, "audit", "verify", "--home", str(home), "--expect", point)
    assert code == 1
    assert "CHECKPOINT LOST: entry #10 no longer exists (the log ends at #8)" in out
    code, _, err = cli(monkeypatch, "audit", "verify", "--home", str(home), "--expect", "#x y")
    assert code == 1
    assert "'#ID HEX'" in err


def test_an_empty_log_has_no_checkpoint(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = cli(monkeypatch, "audit", "checkpoint", "--home", str(home))
    assert code == 1
    assert "empty" in out
