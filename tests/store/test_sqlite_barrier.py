"""The barrier against the real database: strace shows where SQLite and the
store write the ``-wal`` file and where they fsync it.

``barrier_child.py`` runs the real store (and, in the ``node`` scenario, two
real nodes over the simulated network) under ``strace -f -y``, marking the
points that matter.  From the trace:

* ``durability="power"``: a commit writes the WAL without an fsync; a
  barrier is exactly one ``fdatasync`` of the ``-wal`` file, however many
  commits it covers (group commit); a barrier with nothing new committed
  makes no system call; and in the node, **no packet leaves and no message
  reaches the application while a byte written to the WAL is not yet
  fsynced**.
* ``durability="process"``: no barrier fsyncs, and packets do leave with
  unsynced WAL pages behind them -- the weaker promise, seen in the trace
  (and proof that the check above can fail).

strace needs ptrace.  Without strace the tests skip, saying so; with
``L2S_REQUIRE_STRACE=1`` (CI, see .ci/run) they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("barrier_child.py")
SYSCALLS = "write,pwrite64,writev,pwritev,fsync,fdatasync"
_LINE = re.compile(
    r"^(?P<pid>\d+)\s+(?:(?P<call>\w+)\((?P<fd>\d+)<(?P<path>[^>]*)>(?P<rest>.*)"
    r"|<\.\.\. (?P<resumed>\w+) resumed>(?P<rest2>.*))$"
)
_MARK = re.compile(r'"L2SMARK ([^"\\]*)')


def _strace() -> str:
    found = shutil.which("strace")
    if found is None:
        if os.environ.get("L2S_REQUIRE_STRACE") == "1":
            pytest.fail("strace is required (L2S_REQUIRE_STRACE=1) but not installed")
        pytest.skip("strace is not installed (apt-get install strace; CI installs it)")
    return found


@dataclass
class Trace:
    """The ``-wal`` writes, fsyncs and marks of one traced run, in order."""

    wal: str
    #: (mark, line index) in order.
    marks: list[tuple[str, int]] = field(default_factory=list)
    #: (start, end) line indexes of each write to the -wal file.
    writes: list[tuple[int, int]] = field(default_factory=list)
    #: (start, end) line indexes of each fsync/fdatasync of the -wal file.
    syncs: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, wal: str) -> Trace:
        trace = cls(wal)
        pending: dict[tuple[str, str], tuple[int, str]] = {}
        for index, line in enumerate(text.splitlines()):
            m = _LINE.match(line)
            if m is None:
                continue
            if m["resumed"] is not None:
                started = pending.pop((m["pid"], m["resumed"]), None)
                if started is not None:
                    trace._add(m["resumed"], started[1], started[0], index)
                continue
            if m["rest"].endswith("<unfinished ...>"):
                pending[(m["pid"], m["call"])] = (index, m["path"])
                continue
            if m["call"] == "write" and (mark := _MARK.search(m["rest"])) is not None:
                trace.marks.append((mark[1], index))
                continue
            trace._add(m["call"], m["path"], index, index)
        return trace

    def _add(self, call: str, path: str, start: int, end: int) -> None:
        if path != self.wal:
            return
        if call in ("fsync", "fdatasync"):
            self.syncs.append((start, end))
        elif "write" in call:
            self.writes.append((start, end))

    def mark(self, name: str) -> int:
        return next(i for m, i in self.marks if m == name)

    def syncs_between(self, a: int, b: int) -> int:
        return sum(1 for start, end in self.syncs if a < start and end < b)

    def writes_between(self, a: int, b: int) -> int:
        return sum(1 for start, _ in self.writes if a < start < b)

    def unsynced_at(self, at: int) -> int:
        """WAL writes that began before line ``at`` and no fsync that began
        after they ended finished before ``at``."""
        return sum(
            1
            for w_start, w_end in self.writes
            if w_start < at
            and not any(w_end < s_start and s_end < at for s_start, s_end in self.syncs)
        )


def run_traced(scenario: str, durability: str, tmp_path: Path, db: str) -> Trace:
    strace = _strace()
    out = tmp_path / "trace.txt"
    result = subprocess.run(
        [
            strace,
            "-f",
            "-qq",
            "-y",
            "-s",
            "48",
            "-e",
            f"trace={SYSCALLS}",
            "-o",
            str(out),
            sys.executable,
            str(CHILD),
            scenario,
            durability,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 and not out.exists():
        message = f"strace could not trace the child: {result.stderr.strip()[-300:]}"
        if os.environ.get("L2S_REQUIRE_STRACE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    assert result.returncode == 0, result.stderr[-2000:]
    trace = Trace.parse(out.read_text(errors="replace"), str(tmp_path / f"{db}-wal"))
    assert trace.marks[-1][0] == "DONE", trace.marks[-3:]
    return trace


def test_power_barrier_is_one_fdatasync_of_the_wal_covering_every_commit(
    tmp_path: Path,
) -> None:
    trace = run_traced("store", "power", tmp_path, "store.db")
    for n in range(5):
        begin, end = trace.mark(f"BEGIN {n}"), trace.mark(f"END {n}")
        start = trace.mark(f"END {n - 1}") if n else trace.mark("READY")
        # Four commits wrote the WAL without a single fsync ...
        assert trace.writes_between(start, begin) >= 4
        assert trace.syncs_between(start, begin) == 0
        # ... and were all unsynced when the barrier began.
        assert trace.unsynced_at(begin) > 0
        # The barrier: exactly one fsync of the WAL, no write, nothing left.
        assert trace.syncs_between(begin, end) == 1
        assert trace.writes_between(begin, end) == 0
        assert trace.unsynced_at(end) == 0
    # Nothing committed since the last barrier: no system call at all.
    empty_begin, empty_end = trace.mark("EMPTY-BEGIN"), trace.mark("EMPTY-END")
    assert empty_end == empty_begin + 1


def test_process_mode_barrier_does_not_fsync(tmp_path: Path) -> None:
    trace = run_traced("store", "process", tmp_path, "store.db")
    for n in range(5):
        begin, end = trace.mark(f"BEGIN {n}"), trace.mark(f"END {n}")
        assert trace.syncs_between(begin, end) == 0
        assert trace.unsynced_at(end) > 0


def test_power_node_sends_nothing_and_hands_over_nothing_unsynced(tmp_path: Path) -> None:
    """Every packet bob sends (handshake answers, ACKs, SYNC, heartbeats)
    and every hand-off to his application happens with the WAL fsynced up
    to its last byte; and the fsyncs are group commits (far fewer than the
    packets they cover)."""
    trace = run_traced("node", "power", tmp_path, "bob.db")
    sends = [i for m, i in trace.marks if m == "SEND"]
    handoffs = [i for m, i in trace.marks if m == "HANDOFF"]
    assert len(sends) > 30
    assert len(handoffs) > 10
    assert trace.writes, "bob's store never wrote its WAL"
    for at in sends + handoffs:
        assert trace.unsynced_at(at) == 0, f"a packet or hand-off at line {at} outran the fsync"
    assert 0 < len(trace.syncs) < len(sends) + len(handoffs)


def test_process_mode_node_sends_with_unsynced_wal_behind(tmp_path: Path) -> None:
    """The documented weaker promise: packets (ACKs among them) leave
    while what they promise is only in the page cache."""
    trace = run_traced("node", "process", tmp_path, "bob.db")
    sends = [i for m, i in trace.marks if m == "SEND"]
    assert sends
    assert any(trace.unsynced_at(at) > 0 for at in sends)
