"""Chaos-test plumbing: agent processes, network namespaces, nftables faults,
and what the tests read back (the receiver's log, the audit logs).

:class:`Agent` runs ``tests/chaos/agent.py`` (a real node) as a process and
reads its JSON lines on a thread, so every wait is a bounded queue get.
:class:`Lab` builds two network namespaces joined by a veth pair and
injects faults into one of them with nftables; it is torn down whatever
happens (deleting a namespace deletes its end of the veth and its rules).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Self

from l2session.core.lifecycle.persistence import RouteRecord
from l2session.core.states import TransitionRecord
from l2session.store.sqlite import SqliteStore

AGENT = Path(__file__).with_name("agent.py")
#: How long a test waits for any one agent event.
EVENT_WAIT = 90.0
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


class AgentFailed(AssertionError):
    """An agent said ``error``, exited, or stayed silent too long."""


class Agent:
    """One node process; ``prefix`` runs it elsewhere (``ip netns exec``)."""

    def __init__(
        self,
        home: Path,
        args: Sequence[str],
        *,
        prefix: Sequence[str] = (),
        name: str = "agent",
    ) -> None:
        self.home = home
        self.name = name
        home.mkdir(parents=True, exist_ok=True)
        self._stderr_path = home / f"{name}.stderr"
        self._stderr: IO[bytes] = self._stderr_path.open("ab")
        self.process = subprocess.Popen(
            [*prefix, sys.executable, str(AGENT), "--home", str(home), "--verbose", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=ENV,
        )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._seen: list[dict[str, Any]] = []
        self._cursors: dict[str, int] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                self._events.put(json.loads(line))
            except ValueError:
                self._events.put({"event": "error", "message": f"not JSON: {line!r}"})
        self._events.put(None)  # end of output: the process is gone

    def stderr(self) -> str:
        """The end of what the process wrote to stderr (for failures)."""
        return self._stderr_path.read_text(errors="replace")[-4000:]

    def expect(self, event: str, timeout: float = EVENT_WAIT) -> dict[str, Any]:
        """The next ``event`` line not returned before.  Each kind of event
        has its own cursor, so waiting for one never loses another."""
        cursor = self._cursors.get(event, 0)
        deadline = time.monotonic() + timeout
        while True:
            for index in range(cursor, len(self._seen)):
                if self._seen[index].get("event") == event:
                    self._cursors[event] = index + 1
                    return self._seen[index]
            cursor = len(self._seen)
            try:
                line = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AgentFailed(
                    f"{self.name}: no {event!r} within {timeout}s\n{self.stderr()}"
                ) from None
            if line is None:
                self._events.put(None)  # stays at the end for later calls
                raise AgentFailed(
                    f"{self.name} exited ({self.process.wait(5)}) before {event!r}\n{self.stderr()}"
                )
            if line.get("event") == "error":
                raise AgentFailed(f"{self.name}: {line.get('message')}\n{self.stderr()}")
            self._seen.append(line)

    def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def stop(self, timeout: float = 30.0) -> int:
        """Ask it to stop (it closes its store cleanly); kill it if it won't."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.tell("stop")
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.close()

    def kill9(self) -> None:
        """SIGKILL: no cleanup, no final commit, sockets vanish."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.close()

    def wait_exit(self, timeout: float = EVENT_WAIT) -> int:
        """Wait for it to exit by itself; its exit code (-9: SIGKILL)."""
        self.process.wait(timeout)
        return self.close()

    def close(self) -> int:
        """Reap the process (killing it if it still runs) and close every
        pipe and file it held; its exit code."""
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait(10)
        self._reader.join(10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._stderr.close()
        return code


def received(log: Path) -> list[int]:
    """The message numbers a receiver was handed, in order."""
    if not log.exists():
        return []
    return [int(line[:10]) for line in log.read_bytes().splitlines()]


def wait_received(log: Path, at_least: int, agent: Agent, timeout: float = EVENT_WAIT) -> None:
    """Poll the receiver's log until it holds ``at_least`` lines."""
    deadline = time.monotonic() + timeout
    for _ in itertools.count():
        if log.exists() and log.read_bytes().count(b"\n") >= at_least:
            return
        if agent.process.poll() is not None:
            raise AgentFailed(f"{agent.name} exited before {at_least} messages\n{agent.stderr()}")
        if time.monotonic() > deadline:
            raise AgentFailed(f"fewer than {at_least} messages after {timeout}s")
        time.sleep(0.02)


def assert_exactly_once_in_order(log: Path, count: int) -> None:
    got = received(log)
    missing = sorted(set(range(count)) - set(got))
    duplicates = len(got) - len(set(got))
    assert not missing, f"{len(missing)} lost, first {missing[:5]}"
    assert duplicates == 0, f"{duplicates} delivered twice"
    assert got == list(range(count)), "delivered out of order"


def audit(home: Path) -> tuple[list[TransitionRecord], list[RouteRecord]]:
    """The node's committed transitions and route changes, oldest first
    (after checking that its hash chain verifies)."""
    with SqliteStore.open(home / "node.db") as store:
        report = store.verify_audit()
        assert report.ok, report.problem
        records = [entry.record() for entry in store.audit_log()]
    transitions = [r for r in records if isinstance(r, TransitionRecord)]
    routes = [r for r in records if isinstance(r, RouteRecord)]
    return transitions, routes


def init_home(home: Path) -> str:
    """``l2session init``: a DID and prekeys in ``home/node.db``."""
    made = subprocess.run(
        [sys.executable, "-m", "l2session", "init", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        check=True,
    )
    return made.stdout.split()[2]


# ----------------------------------------------------------------------
# namespaces and nftables


def lab_unavailable() -> str | None:
    """Why namespaces + nftables cannot be used here, or None."""
    if os.geteuid() != 0:
        return "chaos tests need root (network namespaces and nftables); CI runs them as root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iproute2 nftables)"
    name = f"l2probe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def sh(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Namespaces:
    """A set of network namespaces (``ns``: role -> name, each name unique
    to this process) that exist between ``__enter__``'s ``_build`` and
    ``close``, which deletes them whatever happened (deleting a namespace
    deletes its interfaces, veth peers and nftables rules with it)."""

    ns: dict[str, str]
    _up = False

    def __enter__(self) -> Self:
        try:
            for ns in self.ns.values():
                sh("ip", "netns", "add", ns)
            self._up = True
            for ns in self.ns.values():
                sh("ip", "-n", ns, "link", "set", "lo", "up")
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        """Links, addresses, routes and rules (the namespaces exist)."""

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._up:
            return
        self._up = False
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    def prefix(self, node: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[node]]

    def veth(self, left: str, right: str, names: tuple[str, str]) -> None:
        """A veth pair ``names`` between namespaces ``left`` and ``right``, up."""
        a, b = names
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", self.ns[left])
        sh("ip", "link", "set", b, "netns", self.ns[right])
        for ns, dev in ((self.ns[left], a), (self.ns[right], b)):
            sh("ip", "-n", ns, "link", "set", dev, "up")


class Lab(Namespaces):
    """Namespaces ``a`` and ``b`` joined by a veth pair on 10.201.N.0/24
    (``base`` picks another /16, so that suites running at once differ).

    ``a`` is at ``.1`` (and gets ``.11`` when it moves), ``b`` at ``.2``.
    Faults are nftables rules in ``a``'s input and output hooks, so they
    cover both directions of every packet between the two.
    """

    _serial = itertools.count()

    def __init__(self, base: str = "10.201") -> None:
        tag = f"{os.getpid() % 100_000}x{next(self._serial)}"
        self.ns = {"a": f"l2c{tag}a", "b": f"l2c{tag}b"}
        self.net = f"{base}.{(os.getpid() + next(self._serial)) % 250}"
        self.address = {"a": f"{self.net}.1", "b": f"{self.net}.2"}
        self._veth = (f"l2v{tag}a", f"l2v{tag}b")

    def _build(self) -> None:
        va, vb = self._veth
        self.veth("a", "b", self._veth)
        for side, dev in (("a", va), ("b", vb)):
            ns = self.ns[side]
            sh("ip", "-n", ns, "addr", "add", f"{self.address[side]}/24", "dev", dev)
            # Deleting an interface's first address would otherwise take
            # its other addresses with it (a moved node would vanish).
            sh(*self.prefix(side), "sysctl", "-qw", f"net.ipv4.conf.{dev}.promote_secondaries=1")

    def fault(self, rule: str) -> None:
        """Replace ``a``'s fault with ``rule`` (an nftables statement list,
        e.g. ``numgen random mod 100 < 20 drop``), in both directions."""
        self.clear()
        ruleset = (
            "table inet chaos {\n"
            "  chain input { type filter hook input priority 0; policy accept;\n"
            f'    iifname "lo" accept\n    {rule}\n  }}\n'
            "  chain output { type filter hook output priority 0; policy accept;\n"
            f'    oifname "lo" accept\n    {rule}\n  }}\n'
            "}\n"
        )
        done = subprocess.run(
            [*self.prefix("a"), "nft", "-f", "-"],
            input=ruleset,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft refused the fault {rule!r}: {done.stderr.strip()}")

    def clear(self) -> None:
        subprocess.run(
            [*self.prefix("a"), "nft", "delete", "table", "inet", "chaos"],
            capture_output=True,
            timeout=30,
        )

    def dropped(self) -> int:
        """Packets the fault rules dropped so far (nftables counters)."""
        out = subprocess.run(
            [*self.prefix("a"), "nft", "-j", "list", "table", "inet", "chaos"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        if not out:
            return 0
        total = 0
        for item in json.loads(out).get("nftables", []):
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    total += int(expr["counter"]["packets"])
        return total

    def add_address(self, node: str, host: str) -> None:
        sh("ip", "-n", self.ns[node], "addr", "add", f"{host}/24", "dev", self._dev(node))

    def del_address(self, node: str, host: str) -> None:
        sh("ip", "-n", self.ns[node], "addr", "del", f"{host}/24", "dev", self._dev(node))

    def _dev(self, node: str) -> str:
        return self._veth[0] if node == "a" else self._veth[1]


# ----------------------------------------------------------------------
# what a run shows


def full_handshakes(transitions: Sequence[TransitionRecord]) -> int:
    """PQXDH handshakes completed (resumptions are not counted)."""
    return sum(1 for t in transitions if t.reason == "PQXDH complete")


def moves(transitions: Sequence[TransitionRecord]) -> list[tuple[str, str | None]]:
    """``(from, to)`` state names, in order."""
    return [(t.source.value, None if t.target is None else t.target.value) for t in transitions]


def report(name: str, **figures: Any) -> None:
    """Append one run's figures to ``$L2S_CHAOS_REPORT`` (if set): what
    docs/RELIABILITY.md quotes as the last run."""
    path = os.environ.get("L2S_CHAOS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": name, **figures}) + "\n")
