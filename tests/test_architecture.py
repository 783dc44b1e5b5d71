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
from collections.abc import Mapping, Set
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


def resolve_from(node: ast.ImportFrom, module: str, *, is_package: bool = False) -> str:
    """The absolute module a ``from ... import`` names: a relative import
    counts its dots from the importing module's package (the module itself
    when it is a package's ``__init__``)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    base = ".".join(parts)
    return f"{base}.{node.module}" if node.module else base


def imported_modules(
    tree: ast.AST, module: str, *, is_package: bool = False
) -> list[tuple[int, str]]:
    """Every (line, name) an import statement anywhere in ``tree`` names:
    module level, inside functions, under ``if TYPE_CHECKING``.  For
    ``from X import Y`` both X and X.Y are listed (Y may be a module)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve_from(node, module, is_package=is_package)
            found.append((node.lineno, target))
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def check_source(source: str, module: str, *, is_package: bool = False) -> list[Violation]:
    tree = ast.parse(source)
    layer = layer_of(module)
    violations: list[Violation] = []
    for line, target in imported_modules(tree, module, is_package=is_package):
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


def package_modules(package: Path = PACKAGE) -> list[tuple[str, Path]]:
    """(dotted name, file) of every module under ``package``."""
    modules = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append((".".join(parts), path))
    return modules


# ----------------------------------------------------------------------
# import cycles
#
# The graph has one node per module and an edge for every import of
# another module of the package, wherever the import statement stands
# (module level, in a function, under ``if TYPE_CHECKING``): a late or
# type-only import hides a circle from the interpreter, not from a reader.
# ``from pkg import name`` is an edge to ``pkg.name`` when that is a
# module, else to ``pkg``.  A package's ``__init__`` is not implied by
# importing one of its modules (every re-exporting ``__init__`` would
# otherwise sit on a circle with its children).


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of the same top-level package it imports."""
    modules = dict(package_modules(package))
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [_known_prefix(alias.name, modules) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve_from(node, module, is_package=is_package)
                targets = [
                    f"{base}.{alias.name}"
                    if f"{base}.{alias.name}" in modules
                    else _known_prefix(base, modules)
                    for alias in node.names
                ]
            else:
                continue
            graph[module].update(t for t in targets if t is not None and t != module)
    return graph


def _known_prefix(name: str, modules: Mapping[str, object]) -> str | None:
    """The longest dotted prefix of ``name`` that is a module of ours."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def strongly_connected(graph: Mapping[str, Set[str]]) -> list[frozenset[str]]:
    """The members of every circle: each strongly connected component of
    more than one module (Tarjan, iterative), sorted by their names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        # Each entry: a vertex and the iterator over its successors.
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            vertex, successors = work[-1]
            for successor in successors:
                if successor not in graph:
                    continue
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[vertex] = min(low[vertex], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[vertex])
                if low[vertex] == index[vertex]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == vertex:
                            break
                    if len(component) > 1:
                        components.append(frozenset(component))
    return sorted(components, key=sorted)


def import_cycles(graph: Mapping[str, Set[str]]) -> list[list[str]]:
    """One shortest circle per component of :func:`strongly_connected`,
    as the module list from the component's smallest name (the other
    members lie on circles through it too), in the components' order."""
    return [shortest_circle(graph, c) for c in strongly_connected(graph)]


def shortest_circle(graph: Mapping[str, Set[str]], component: Set[str]) -> list[str]:
    """The shortest circle from the component's smallest module back to
    itself (breadth first, inside the component)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for vertex in frontier:
            for successor in sorted(graph[vertex] & component):
                if successor == start:
                    circle = [vertex]
                    while circle[-1] != start:
                        circle.append(previous[circle[-1]])
                    return circle[::-1]
                if successor not in previous:
                    previous[successor] = vertex
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")


def test_the_pure_layers_exist() -> None:
    present = {layer_of(module) for module, _ in package_modules()}
    assert {"crypto", "identity"} <= present


@pytest.mark.parametrize(("module", "path"), package_modules(), ids=lambda v: str(v))
def test_module_respects_the_architecture(module: str, path: Path) -> None:
    if module == "l2session" or module.startswith("l2session.__main__"):
        return  # the facade re-exports every layer
    source = path.read_text(encoding="utf-8")
    violations = check_source(source, module, is_package=path.name == "__init__.py")
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


def test_no_package_has_an_import_circle() -> None:
    graph = import_graph()
    found = [(members, shortest_circle(graph, members)) for members in strongly_connected(graph)]
    assert not found, "import circles (each: one circle, then every module on one):\n" + "\n".join(
        f"  {' -> '.join([*circle, circle[0]])}\n    members: {', '.join(sorted(members))}"
        for members, circle in found
    )


def write_package(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (path relative to ``root``: source) and return the
    top package's directory (the first path's first part)."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root / next(iter(files)).split("/")[0]


def test_the_circle_check_reports_exactly_the_circle(tmp_path: Path) -> None:
    """A circle hidden the three usual ways -- a relative import, an import
    inside a function, an import under TYPE_CHECKING -- next to imports
    that close no circle (a re-exporting ``__init__``, modules that only
    import into it, an outside module)."""
    package = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": "from . import b\nA = 1\n",
            "pkg/b.py": "def late() -> None:\n    from .sub.c import C\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from ..a import A\nC = 1\n"
            ),
            "pkg/d.py": "import os\nimport pkg.a\n",
            "pkg/e.py": "from pkg import a, d\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.e"] == {"pkg.a", "pkg.d"}
    assert graph["pkg.sub.c"] == {"pkg.a"}
    assert strongly_connected(graph) == [frozenset({"pkg.a", "pkg.b", "pkg.sub.c"})]
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


@pytest.mark.parametrize(
    ("files", "circle"),
    [
        pytest.param(
            {"p/__init__.py": "", "p/x.py": "import p.y\n", "p/y.py": "import p.x\n"},
            ["p.x", "p.y"],
            id="absolute",
        ),
        pytest.param(
            {
                "p/__init__.py": "",
                "p/x.py": "from p.y import Y\nX = 1\n",
                "p/y.py": ("def f() -> int:\n    from p.x import X\n    return X\nY = 1\n"),
            },
            ["p.x", "p.y"],
            id="late import",
        ),
        pytest.param(
            {
                "p/__init__.py": "",
                "p/x.py": "from .y import Y\n",
                "p/y.py": (
                    "import typing\nif typing.TYPE_CHECKING:\n    from .x import X\nY = 1\n"
                ),
            },
            ["p.x", "p.y"],
            id="type checking",
        ),
        pytest.param(
            {
                "p/__init__.py": "from .s import y\n",
                "p/s/__init__.py": "from .y import Y\nZ = 1\n",
                "p/s/y.py": "from p.s import Z\nY = 1\n",
            },
            ["p.s", "p.s.y"],
            id="package init",
        ),
        pytest.param(
            {
                "p/__init__.py": "",
                "p/q/__init__.py": "",
                "p/q/x.py": "from .. import r\n",
                "p/r.py": "from .q.x import X\n",
            },
            ["p.q.x", "p.r"],
            id="relative up",
        ),
    ],
)
def test_each_kind_of_import_closes_a_circle(
    tmp_path: Path, files: dict[str, str], circle: list[str]
) -> None:
    graph = import_graph(write_package(tmp_path, files))
    assert import_cycles(graph) == [circle]


def test_a_dag_has_no_circle(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "p/__init__.py": "from p.top import T\n",
            "p/top.py": "from p.mid import M\nfrom p import low\nT = 1\n",
            "p/mid.py": "def f() -> None:\n    from .low import L\nM = 1\n",
            "p/low.py": "import json\nL = 1\n",
        },
    )
    assert import_cycles(import_graph(package)) == []
