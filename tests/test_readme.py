"""The README's Python examples run as written (so the README stays true)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    code = python_blocks()[index]
    exec(compile(code, f"README.md example {index}", "exec"), {"__name__": "readme"})
    if "save_identity" in code:
        written = tmp_path / "l2session" / "identity.json"
        assert written.stat().st_mode & 0o777 == 0o600
        assert capsys.readouterr().out.startswith("did:key:z6Mk")
