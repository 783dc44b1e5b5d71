"""The sans-I/O rule and the layer order of docs/ARCHITECTURE.md, enforced.

* ``crypto``, ``identity``, ``wire``, ``core`` and ``membrane`` import no
  asyncio, socket, sqlite3, threading (nor their relatives), never read the
  clock or OS randomness, and touch no files: time and randomness are passed
  in, persistence belongs to ``store``.
* Dependencies point down only: a layer imports only the base modules and
  layers below it, and no product module imports ``l2session.testing``.

The checker is itself tested on synthetic sources, so it can fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "l2session"

PURE_LAYERS = ("crypto", "identity", "wire", "core", "membrane")

#: Bottom to top.  "base" is errors.py and codec.py.
LAYER_ORDER = (
    "base",
    "crypto",
    "identity",
    "wire",
    "core",
    "membrane",
    "store",
    "transports",
    "bridges",
    "runtime",
    "cli",
)

FORBIDDEN_MODULES = {
    "asyncio": "an event loop",
    "socket": "sockets",
    "ssl": "sockets",
    "selectors": "sockets",
    "sqlite3": "a database",
    "threading": "threads",
    "multiprocessing": "processes",
    "concurrent": "threads",
    "subprocess": "processes",
    "time": "the clock",
    "random": "OS randomness",
    "secrets": "OS randomness",
    "uuid": "OS randomness",
    "os": "the operating system",
    "pathlib": "the file system",
    "shutil": "the file system",
    "tempfile": "the file system",
}
FORBIDDEN_CALLS = {
    "open": "the file system",
    "input": "the terminal",
    "print": "the terminal",
}
FORBIDDEN_ATTRIBUTES = {
    ("datetime", "now"): "the clock",
    ("datetime", "utcnow"): "the clock",
    ("datetime", "today"): "the clock",
    ("date", "today"): "the clock",
}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def layer_of(module: str) -> str:
    """'l2session.crypto.kdf' -> 'crypto'; base modules -> 'base'."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in {"errors", "codec"}:
        return "base"
    return parts[1]


def imported_modules(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def check_source(source: str, module: str) -> list[Violation]:
    tree = ast.parse(source)
    layer = layer_of(module)
    violations: list[Violation] = []
    for line, target in imported_modules(tree, module):
        root = target.split(".")[0]
        if layer in PURE_LAYERS and root in FORBIDDEN_MODULES:
            violations.append(
                Violation(module, line, f"imports {target} ({FORBIDDEN_MODULES[root]})")
            )
        if root != "l2session" or target == "l2session":
            continue
        target_layer = layer_of(target)
        if target_layer == "testing" and layer != "testing":
            violations.append(Violation(module, line, f"product code imports {target}"))
        elif (
            layer in LAYER_ORDER
            and target_layer in LAYER_ORDER
            and LAYER_ORDER.index(target_layer) > LAYER_ORDER.index(layer)
        ):
            violations.append(
                Violation(module, line, f"{layer} imports the higher layer {target_layer}")
            )
    if layer in PURE_LAYERS:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_CALLS
            ):
                what = FORBIDDEN_CALLS[node.func.id]
                violations.append(
                    Violation(module, node.lineno, f"calls {node.func.id}() ({what})")
                )
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                key = (node.value.id, node.attr)
                if key in FORBIDDEN_ATTRIBUTES:
                    violations.append(
                        Violation(
                            module,
                            node.lineno,
                            f"uses {'.'.join(key)} ({FORBIDDEN_ATTRIBUTES[key]})",
                        )
                    )
    return violations


def package_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append((".".join(parts), path))
    return modules


def test_the_pure_layers_exist() -> None:
    present = {layer_of(module) for module, _ in package_modules()}
    assert {"crypto", "identity"} <= present


@pytest.mark.parametrize(("module", "path"), package_modules(), ids=lambda v: str(v))
def test_module_respects_the_architecture(module: str, path: Path) -> None:
    if module == "l2session" or module.startswith("l2session.__main__"):
        return  # the facade re-exports every layer
    violations = check_source(path.read_text(encoding="utf-8"), module)
    assert not violations, "\n".join(map(str, violations))


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import asyncio\n", "l2session.crypto.x", "imports asyncio"),
        ("from socket import socket\n", "l2session.core.x", "imports socket"),
        ("import sqlite3\n", "l2session.membrane.x", "imports sqlite3"),
        ("import threading\n", "l2session.wire.x", "imports threading"),
        ("import time\nt = time.time()\n", "l2session.identity.x", "the clock"),
        ("from os import urandom\n", "l2session.crypto.x", "imports os"),
        ("import secrets\n", "l2session.crypto.x", "OS randomness"),
        ("from datetime import datetime\nx = datetime.now()\n", "l2session.core.x", "datetime.now"),
        ("data = open('f').read()\n", "l2session.identity.x", "calls open()"),
        ("from l2session.store import keyfile\n", "l2session.crypto.x", "higher layer store"),
        ("from l2session.identity.did import Did\n", "l2session.crypto.x", "higher layer identity"),
        ("from l2session.testing import MockResolver\n", "l2session.core.x", "product code"),
        ("from ..runtime import entropy\n", "l2session.crypto.kdf", "higher layer runtime"),
    ],
)
def test_the_checker_catches_violations(source: str, module: str, expected: str) -> None:
    violations = check_source(source, module)
    assert any(expected in str(v) for v in violations), violations


def test_the_checker_allows_what_is_allowed() -> None:
    allowed = (
        "import struct\nfrom l2session.crypto import primitives\nfrom l2session.errors import X\n"
    )
    assert check_source(allowed, "l2session.identity.bundle") == []
    assert check_source("import sqlite3\nimport os\n", "l2session.store.db") == []
    assert check_source("import asyncio\n", "l2session.runtime.node") == []
