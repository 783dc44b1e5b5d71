"""Protocol extensions end to end between two real Nodes on loopback:
the session kind in INIT (an ephemeral session leaves nothing in the
responder's SQLite store) and 0-RTT resumption (a restarted node's queued
messages ride in its RESUME, over μTCP and QUIC).  Every wait is bounded."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from l2session import Identity, SqliteStore
from l2session.cli.netdemo import DEMO_CONFIG
from l2session.core.config import SessionConfig, SessionKind
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.handle import SessionHandle
from l2session.runtime.node import Node

from .support import run, until


def test_ephemeral_session_leaves_nothing_in_the_responders_store(tmp_path: Path) -> None:
    store_path = tmp_path / "bob.db"
    ephemeral = replace(DEMO_CONFIG, kind=SessionKind.EPHEMERAL)

    async def scenario() -> None:
        async with (
            Node(paths=("tcp",), config=ephemeral) as a,
            Node(paths=("tcp",), config=DEMO_CONFIG, store=store_path) as b,
        ):
            ab = await a.establish(b.did, b.address, timeout=10)
            ab.send_nowait(b"request")
            ba = await b.accept(timeout=10)
            assert ba.session.config.kind is SessionKind.EPHEMERAL
            assert await ba.receive(timeout=10) == b"request"
            await ba.send(b"response")
            assert await ab.receive(timeout=10) == b"response"
            await until(lambda: ab.closed and ba.closed, "both ends closing")
            assert b.manager.tickets == {}
            assert b.manager.stored == {}

    run(scenario())
    store = SqliteStore.open(store_path)
    try:
        snapshot = store.load()
        assert snapshot.sessions == ()
        assert snapshot.tickets == ()
        assert snapshot.outbound == {}
        assert snapshot.inbound == {}
    finally:
        store.close()


def _queued_then_restarted(tmp_path: Path, paths: tuple[str, ...], config: SessionConfig) -> None:
    """Alice queues messages while cut off from Bob (faults), stops, and
    starts again from her store: her restored session resumes with them."""

    async def scenario() -> None:
        ident = Identity.generate(SystemRandom())
        db = tmp_path / "a.db"
        with SqliteStore.open(db) as store:
            store.save_identity(ident)
        async with Node(paths=paths, config=DEMO_CONFIG) as b:
            a = Node(store=db, paths=paths, config=config)
            async with a:
                ab = await a.establish(b.did, b.address, timeout=10)
                ba = await b.accept(timeout=10)
                ab.send_nowait(b"before")
                assert await ba.receive(timeout=10) == b"before"
                a.faults.block()
                seqs = [ab.send_nowait(b"queued %d" % i) for i in range(3)]
                await asyncio.sleep(0.05)
            a2 = Node(store=db, paths=paths, config=config)
            async with a2:
                ba2 = b.session(a2.did)
                assert ba2 is not None
                got = await ba2.receive_deliveries(timeout=10)
                while len(got) < 3:
                    got += await ba2.receive_deliveries(timeout=10)
                assert [d.payload for d in got] == [b"queued %d" % i for i in range(3)]
                assert [d.seq for d in got] == seqs  # the same stream numbers
                early = config.early_data_bytes > 0
                assert b.manager.early_flights == (1 if early else 0)
                ab2 = a2.session(b.did)
                assert ab2 is not None
                await ab2.flush(timeout=10)
                assert await asyncio.wait_for(_nothing_more(ba2), 1.0) == []

    run(scenario(), 60)


async def _nothing_more(handle: SessionHandle) -> list[bytes]:
    await asyncio.sleep(0.3)
    return handle.session.receive_many()


@pytest.mark.parametrize("paths", [("tcp",), ("quic",)])
def test_0rtt_resumption_between_two_nodes(tmp_path: Path, paths: tuple[str, ...]) -> None:
    _queued_then_restarted(tmp_path, paths, DEMO_CONFIG)


def test_1rtt_resumption_between_two_nodes_when_0rtt_is_off(tmp_path: Path) -> None:
    _queued_then_restarted(tmp_path, ("tcp",), replace(DEMO_CONFIG, early_data_bytes=0))


def test_the_node_builds_its_replay_guard_from_its_config() -> None:
    config = replace(DEMO_CONFIG, handshake_max_skew=4321.0)

    async def scenario() -> None:
        async with Node(paths=("tcp",), config=config) as node:
            assert node.manager.ctx.keys.guard.max_skew == 4321.0

    run(scenario())
