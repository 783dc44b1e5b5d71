"""Helpers for tests that run ``l2session`` as OS processes: the CLI, and a
node started with ``l2session node`` (loopback only, every wait bounded)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
DID = re.compile(r"did:key:z[1-9A-HJ-NP-Za-km-z]+")
#: A node's output lines start with an ISO 8601 UTC timestamp.
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l2session", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        check=False,
    )


class RunningNode:
    def __init__(
        self,
        home: Path,
        listen: str = "127.0.0.1:0",
        *,
        init: bool = True,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.home = home
        self.did = ""
        if init:
            made = cli("init", "--home", str(home))
            assert made.returncode == 0, made.stderr
            match = DID.search(made.stdout)
            assert match is not None
            self.did = match.group(0)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "l2session",
                "node",
                "--home",
                str(home),
                "--listen",
                listen,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        assert self.process.stdout is not None
        # Blocks until the node is up; sessions restored from the store may
        # print their state changes first.
        lines = []
        for _ in range(100):
            lines.append(self.process.stdout.readline())
            found = re.search(r"listening on (\S+)", lines[-1])
            if found is not None or not lines[-1]:
                break
        if found is None:
            self.process.kill()
            _, err = self.process.communicate(timeout=20)
            raise AssertionError(f"the node did not start: {lines} {err}")
        self.address = found.group(1)

    def kill(self) -> None:
        """SIGKILL: the node gets no chance to close anything."""
        self.process.kill()
        self.process.communicate(timeout=20)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=20)
        return out


def next_line(node: RunningNode, prefix: str, limit: int = 200) -> str:
    """The node's next output line starting with ``prefix`` once its
    timestamp is removed (state changes are printed too; at most ``limit``
    lines are read)."""
    assert node.process.stdout is not None
    for _ in range(limit):
        line = STAMP.sub("", node.process.stdout.readline())
        if line.startswith(prefix) or not line:
            return line
    raise AssertionError(f"no line starting with {prefix!r} in {limit} lines")


@contextlib.contextmanager
def node_pair(
    tmp_path: Path, *, clean_exit: bool = False
) -> Iterator[tuple[RunningNode, RunningNode]]:
    """Two running nodes in ``tmp_path/a`` and ``tmp_path/b``, both stopped
    afterwards (with ``clean_exit``, each must then have exited 0)."""
    a = RunningNode(tmp_path / "a")
    try:
        b = RunningNode(tmp_path / "b")
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        for node in (a, b):
            node.stop()
            if clean_exit:
                assert node.process.returncode == 0
