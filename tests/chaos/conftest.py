"""Chaos tests: real node processes, real sockets, faults from the kernel.

``test_crash_recovery.py`` runs on loopback anywhere; the namespace tests
need root (they skip and say why otherwise; CI runs as root).  The agent
processes and namespaces are always cleaned up, even when a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .chaos_lab import Agent


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    """Every agent a test starts goes here, and is stopped at the end."""
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.close()


@pytest.fixture
def homes(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "sender", tmp_path / "receiver"
