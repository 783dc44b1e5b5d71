"""The command line: the demo runs end to end and says what it shows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from l2session import __version__
from l2session.cli import demo
from l2session.cli.main import main
from l2session.crypto.pqxdh import HandshakeResult, InitiatorHandshake
from l2session.crypto.rng import SeededRandom


def test_demo_runs_every_step_and_refuses_every_attack() -> None:
    lines: list[str] = []
    assert demo.run(lines.append, rng=SeededRandom("demo")) == 0
    text = "\n".join(lines)
    for expected in (
        "INIT alice -> bob, 2,535 B",
        "RESPONSE bob -> alice, 1,218 B",
        "FINISH alice -> bob, 34 B",
        "root keys agree: yes",
        "replayed #3: refused, ReplayDetected",
        "flipped bit: refused, AuthenticationFailed",
        "truncated: refused, AuthenticationFailed",
        "nothing lost, nothing twice",
        "epoch now alice=1 bob=1",
        "refused before any key was used: AuthenticationFailed",
    ):
        assert expected in text
    assert "bug" not in text


def test_demo_never_prints_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Capture the real handshake secrets; no 8-byte prefix of any may appear."""
    captured: list[HandshakeResult] = []
    original = InitiatorHandshake.receive_response

    def spy(self: InitiatorHandshake, data: bytes) -> tuple[HandshakeResult, bytes]:
        result, finish = original(self, data)
        captured.append(result)
        return result, finish

    monkeypatch.setattr(InitiatorHandshake, "receive_response", spy)
    lines: list[str] = []
    assert demo.run(lines.append, rng=SeededRandom("secrets")) == 0
    text = "\n".join(lines)
    (result,) = captured
    for secret in (result.root_key, result.resumption_secret):
        for start in range(0, 32, 4):
            assert secret[start : start + 8].hex() not in text


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err


def test_python_dash_m_runs_the_step_by_step_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "l2session", "demo", "--steps"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Done." in result.stdout
