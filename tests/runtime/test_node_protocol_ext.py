"""Protocol extensions end to end between two real Nodes on loopback:
the session kind in INIT (an ephemeral session leaves nothing in the
responder's SQLite store).  Every wait is bounded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from l2session import SqliteStore
from l2session.cli.netdemo import DEMO_CONFIG
from l2session.core.config import SessionKind
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
