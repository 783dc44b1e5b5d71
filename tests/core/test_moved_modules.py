"""Every module of the former flat ``core/`` still imports from its old
path (issue 20), as the very same module object, and the public API keeps
its names."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import l2session
import l2session.core
import l2session.testing
from l2session.core import MOVED_MODULES


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_the_old_module_path_yields_the_moved_module(old: str, new: str) -> None:
    moved = importlib.import_module(new)
    assert importlib.import_module(f"l2session.core.{old}") is moved
    assert getattr(l2session.core, old) is moved
    public = [name for name in vars(moved) if not name.startswith("_")]
    assert public, f"{new} defines no public name"
    for name in public:
        # ``from l2session.core.<old> import X`` gives the object the new path has.
        namespace: dict[str, object] = {}
        exec(f"from l2session.core.{old} import {name}", namespace)
        assert namespace[name] is getattr(moved, name)


def test_the_old_paths_import_first_in_a_fresh_interpreter() -> None:
    """In a fresh process, an old path works before anything else imported
    core (core's ``__init__`` installs the alias table on the way)."""
    code = (
        "import importlib\n"
        "import l2session.core.session as first\n"
        "from l2session.core import MOVED_MODULES\n"
        "assert first is importlib.import_module(MOVED_MODULES['session'])\n"
        "for old, new in MOVED_MODULES.items():\n"
        "    old_module = importlib.import_module('l2session.core.' + old)\n"
        "    assert old_module is importlib.import_module(new), old\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_alias_table_names_only_modules_that_moved() -> None:
    for old, new in MOVED_MODULES.items():
        assert new.rsplit(".", 1)[1] == old
        assert new.count(".") == 3, new  # l2session.core.<group>.<old>


def test_the_public_api_keeps_its_names() -> None:
    for name in l2session.__all__:
        assert getattr(l2session, name) is not None
    for name in l2session.testing.__all__:
        assert hasattr(l2session.testing, name)
    for name in l2session.core.__all__:
        assert hasattr(l2session.core, name)
