"""Federation tests run against a real relay process; without the nostr
extra they skip (CI sets L2S_REQUIRE_NOSTR=1 to fail instead)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2session.bridges.local_relay import RelayProcess


def _missing() -> str | None:
    if importlib.util.find_spec("nostr_sdk") is None:
        return "nostr-sdk is not installed (pip install 'l2session[nostr]')"
    exe = Path(sys.executable).with_name("nostr-relay")
    if not exe.exists() and shutil.which("nostr-relay") is None:
        return "the nostr-relay server is not installed (pip install 'l2session[nostr]')"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    why = _missing()
    if why is None:
        return
    if os.environ.get("L2S_REQUIRE_NOSTR") == "1":
        raise pytest.UsageError(f"L2S_REQUIRE_NOSTR=1 but the federation tests cannot run: {why}")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=f"federation tests skipped: {why}"))


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path / "relay")
    process.start()
    try:
        yield process
    finally:
        process.stop()
