"""Run under strace by test_sqlite_barrier.py: real SQLite, real fsyncs.

``python barrier_child.py SCENARIO DURABILITY DIRECTORY``.  The child marks
the points the test checks by writing ``L2SMARK <what>`` lines to
``DIRECTORY/marks``; the trace then shows, in order, every write to the
``-wal`` file, every fsync, and the marks.

``store``
    Rounds of four commits then one barrier (``BEGIN n`` / ``END n``
    around ``sync()``), then a barrier with nothing new committed
    (``EMPTY-BEGIN`` / ``EMPTY-END``).
``node``
    Two simulated nodes (real PQXDH, real ratchets); bob keeps his sessions
    in the SQLite store.  Every datagram bob puts on the network is marked
    ``SEND`` just before it leaves, and every ``receive_many`` that handed
    messages to bob's application is marked ``HANDOFF`` just after it
    returned.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore
from l2session.testing.network import LinkProfile
from l2session.testing.simulation import Simulation, both_established

PEER = "did:key:z6MkBarrierChildPeer"
ROUNDS = 5
COMMITS_PER_ROUND = 4
MESSAGES = 300


def main(scenario: str, durability: str, directory: Path) -> int:
    marks = os.open(directory / "marks", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def mark(what: str) -> None:
        os.write(marks, f"L2SMARK {what}\n".encode())

    if scenario == "store":
        store(directory, durability, mark)
    else:
        node(directory, durability, mark)
    mark("DONE")
    return 0


def store(directory: Path, durability: str, mark: Callable[[str], None]) -> None:
    with SqliteStore.open(directory / "store.db", durability=durability) as db:  # type: ignore[arg-type]
        # The first commit creates the WAL (SQLite syncs its header once).
        db.put_outbound(PEER, 0, b"start")
        db.commit()
        db.sync()
        mark("READY")
        seq = 1
        for n in range(ROUNDS):
            for _ in range(COMMITS_PER_ROUND):
                for _ in range(32):
                    db.put_outbound(PEER, seq, bytes([seq % 256]) * 1024)
                    seq += 1
                db.ack_outbound(PEER, seq - 16, ())
                db.commit()
            mark(f"BEGIN {n}")
            db.sync()
            mark(f"END {n}")
        mark("EMPTY-BEGIN")
        db.sync()
        mark("EMPTY-END")
        assert db.syncs == (ROUNDS + 1 if durability == "power" else 0), db.syncs


def node(directory: Path, durability: str, mark: Callable[[str], None]) -> None:
    sim = Simulation("barrier-child", profile=LinkProfile(latency=0.01, loss=0.05, reorder=0.05))
    bob_store = SqliteStore.open(directory / "bob.db", durability=durability)  # type: ignore[arg-type]
    alice = sim.add_node("alice", store=MemoryStore())
    bob = sim.add_node("bob", store=bob_store)
    send = sim.network.send

    def marked_send(
        source: str, destination: str, path: str, data: bytes | bytearray | memoryview, now: float
    ) -> None:
        if source == "bob":
            mark("SEND")
        send(source, destination, path, data, now)

    sim.network.send = marked_send  # type: ignore[method-assign]
    alice.manager.establish(bob.did)

    sim.run_until(lambda: both_established(alice, bob), timeout=60)
    sender, receiver = alice.session(bob), bob.session(alice)
    assert sender is not None
    assert receiver is not None
    received: list[bytes] = []

    def step() -> bool:
        while sender.sent < MESSAGES and sender.queued < 8:
            sender.send(sender.sent.to_bytes(4, "big") * 64)
        batch = receiver.receive_many(16)
        if batch:
            mark("HANDOFF")
            received.extend(batch)
        return len(received) >= MESSAGES and not sender.queued

    sim.run_until(step, timeout=600)
    assert [int.from_bytes(m[:4], "big") for m in received] == list(range(MESSAGES))
    bob_store.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
