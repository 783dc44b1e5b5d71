"""The ``node`` fixture: every conformance test runs on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Node


@pytest.fixture(params=["memory", "sqlite"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    handle = Node(request.param, tmp_path / "node.db")
    try:
        yield handle
    finally:
        handle.close()
