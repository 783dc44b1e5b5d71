"""Benchmark scripts in tests: import one as a module (so its tests can
call its functions on tiny sizes), or run it standalone for its JSON."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def load_script(path: Path, name: str) -> ModuleType:
    """The script at ``path`` as module ``name`` (registered while it loads:
    dataclasses look their module up in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def run_json(script: Path, *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run ``script --json ARGS`` standalone; its whole stdout is one JSON
    object (anything else fails the test with the script's stderr)."""
    completed = subprocess.run(
        [sys.executable, str(script), *args, "--json"],
        cwd=script.parent.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    figures = json.loads(completed.stdout)
    assert isinstance(figures, dict)
    return figures


def positive(value: Any) -> bool:
    """A finite number above zero (and not a bool)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
