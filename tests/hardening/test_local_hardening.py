"""Finding 8: local hardening of the data directory and the control socket.

Before the fix the data directory was checked for group/other write bits
only (a directory another user owns can be chmod-ed and filled at will by
them), and the control socket was created under the process umask and
chmod-ed to 0600 afterwards, leaving a moment in which others could connect.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any, cast

import pytest

from l2session.errors import StorePermissionError
from l2session.runtime import control
from l2session.runtime.node import Node
from l2session.store import files
from l2session.store.sqlite import SqliteStore


def test_a_data_directory_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    files.make_private_dirs(home)  # 0700, ours
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)  # as seen by another user
    with pytest.raises(StorePermissionError, match=f"owned by uid {me}, not by this user"):
        files.prepare(home / "node.db")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_data_directory_chowned_away_is_refused_for_real(tmp_path: Path) -> None:
    home = tmp_path / "home"
    files.make_private_dirs(home)
    os.chown(home, 65534, 65534)
    with pytest.raises(StorePermissionError, match="owned by uid 65534"):
        SqliteStore.open(home / "node.db")


def test_the_control_socket_is_born_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its mode is checked the instant bind created it, under a wide-open
    process umask: 0600 already, not only after a later chmod."""
    seen: list[int] = []
    real = asyncio.start_unix_server

    async def observed(*args: Any, **kwargs: Any) -> asyncio.Server:
        server = await real(*args, **kwargs)
        bound = kwargs["sock"].getsockname() if "sock" in kwargs else kwargs["path"]
        seen.append(stat.S_IMODE(os.stat(bound).st_mode))
        return server

    monkeypatch.setattr(asyncio, "start_unix_server", observed)
    home = tmp_path / "home"
    files.make_private_dirs(home)
    path = home / "control.sock"

    async def scenario() -> None:
        server = control.ControlServer(cast(Node, object()), path)
        await server.start()
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        finally:
            await server.close()

    previous = os.umask(0)
    try:
        asyncio.run(scenario())
        assert os.umask(0) == 0  # the process umask is restored
    finally:
        os.umask(previous)
    assert seen == [0o600]


def test_the_socket_umask_does_not_leak_to_other_tasks(tmp_path: Path) -> None:
    """The umask is process-wide: held across an await (start_unix_server
    yields to the loop after binding), it would give any file or directory
    another task creates meanwhile mode & ~0177 (a directory without x).
    Found in the wave review: the first fix held it across the await."""
    home = tmp_path / "home"
    files.make_private_dirs(home)
    path = home / "control.sock"
    seen: list[int] = []

    async def bystander() -> None:
        for _ in range(5):  # every loop iteration start() spends
            current = os.umask(0o022)
            os.umask(current)
            seen.append(current)
            await asyncio.sleep(0)

    async def scenario() -> None:
        task = asyncio.create_task(bystander())
        server = control.ControlServer(cast(Node, object()), path)
        await server.start()
        try:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        finally:
            await server.close()
        await task

    previous = os.umask(0o022)
    try:
        asyncio.run(scenario())
    finally:
        os.umask(previous)
    assert seen
    assert set(seen) == {0o022}, [oct(mask) for mask in seen]
