"""The asyncio node over real loopback sockets: establishment on each path,
exactly-once streams, fallback, partition, restart, impostor, and the
errors a user meets.  Every wait is bounded (asyncio.wait_for)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from l2session import Identity, SqliteStore
from l2session.cli.netdemo import DEMO_CONFIG, Relay
from l2session.core.states import State
from l2session.errors import (
    AuthenticationFailed,
    ConfigError,
    InvalidDid,
    PeerQuarantined,
    QueueFull,
    SessionClosed,
    SessionTimeout,
    StoreLocked,
    TransportFailed,
)
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.events import NodeEvent, PathChanged
from l2session.runtime.node import Node
from l2session.transports.address import InvalidAddress
from l2session.transports.quic import QuicTransport

from .support import drain, run, until


def fast_node(**kwargs: Any) -> Node:
    kwargs.setdefault("config", DEMO_CONFIG)
    kwargs.setdefault("connect_timeout", 1.0)
    kwargs.setdefault("quic_idle_timeout", 1.5)
    kwargs.setdefault("quic_probe_interval", 0.5)
    return Node(**kwargs)


@pytest.mark.parametrize("paths", [("quic",), ("tcp",), ("quic", "tcp")])
def test_stream_of_messages_arrives_once_in_order(paths: tuple[str, ...]) -> None:
    count = 3000

    async def scenario() -> None:
        async with Node(paths=paths) as a, Node(paths=paths) as b:
            ab = await a.establish(b.did, b.address, timeout=10)
            assert ab.state is State.ESTABLISHED
            assert ab.path == paths[0]
            ba = await b.accept(timeout=10)
            assert ba.peer_did == a.did
            for i in range(count):
                ab.send_nowait(b"a%d" % i)
            got: list[bytes] = []
            while len(got) < count:
                got += await ba.receive_many(1024, timeout=10)
            assert got == [b"a%d" % i for i in range(count)]
            await ba.send(b"reply")
            assert await ab.receive(timeout=10) == b"reply"
            await ab.flush(timeout=10)
            assert ab.queued == 0

    run(scenario())


def test_async_iteration_ends_when_the_peer_closes() -> None:
    async def scenario() -> None:
        async with Node(paths=("tcp",)) as a, Node(paths=("tcp",)) as b:
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            for i in range(5):
                ab.send_nowait(bytes([i]))
            await ab.flush(timeout=10)
            await ab.close("done")
            received = [m async for m in ba]
            assert received == [bytes([i]) for i in range(5)]
            assert ba.closed

    run(scenario())


def test_quic_blocked_falls_back_to_tcp_and_returns() -> None:
    async def scenario() -> None:
        async with fast_node() as a, fast_node() as b:
            paths: list[tuple[str, bool]] = []

            def seen(event: NodeEvent) -> None:
                if isinstance(event, PathChanged) and event.address == b.address:
                    paths.append((event.path, event.up))

            a.add_listener(seen)
            quic_a = a.transports["quic"]
            quic_b = b.transports["quic"]
            assert isinstance(quic_a, QuicTransport)
            assert isinstance(quic_b, QuicTransport)
            quic_a.drop_filter = lambda address: address == b.address
            quic_b.drop_filter = lambda address: address == a.address
            # The path race reaches Bob over μTCP; QUIC is declared down
            # when its connect times out.
            ab = await a.establish(b.did, b.address, timeout=15)
            ba = await b.accept(timeout=10)
            assert ab.path == "tcp"
            await until(lambda: ("quic", False) in paths, "QUIC declared down")
            for i in range(200):
                ab.send_nowait(b"%d" % i)
            got: list[bytes] = []
            while len(got) < 200:
                got += await ba.receive_many(timeout=10)
            quic_a.drop_filter = None
            quic_b.drop_filter = None
            await until(lambda: ab.path == "quic", "the session back on QUIC")
            for i in range(200, 400):
                ab.send_nowait(b"%d" % i)
            while len(got) < 400:
                got += await ba.receive_many(timeout=10)
            assert got == [b"%d" % i for i in range(400)]

    run(scenario(), 90)


def test_partition_degrades_suspends_and_recovers_with_the_queue() -> None:
    async def scenario() -> None:
        async with fast_node() as a, fast_node() as b:
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            a.faults.block(b.address)
            b.faults.block(a.address)
            await ab.wait_state(State.DEGRADED, timeout=20)
            await ab.wait_state(State.SUSPENDED, timeout=20)
            for i in range(10):
                ab.send_nowait(b"queued %d" % i)
            assert ab.queued == 10
            a.faults.clear()
            b.faults.clear()
            await ab.wait_state(State.ESTABLISHED, timeout=30)
            got: list[bytes] = []
            while len(got) < 10:
                got += await ba.receive_many(timeout=15)
            assert got == [b"queued %d" % i for i in range(10)]
            states = [r.target for r in ab.history]
            assert State.DEGRADED in states
            assert State.SUSPENDED in states

    run(scenario(), 90)


def test_restart_resumes_from_the_sqlite_store(tmp_path: Path) -> None:
    async def scenario() -> None:
        ident = Identity.generate(SystemRandom())
        db = tmp_path / "a.db"
        with SqliteStore.open(db) as store:
            store.save_identity(ident)
        async with fast_node(paths=("tcp",)) as b:
            a = fast_node(store=db, paths=("tcp",))
            async with a:
                ab = await a.establish(b.did, b.address, timeout=10)
                ba = await b.accept(timeout=10)
                ab.send_nowait(b"before")
                assert await ba.receive(timeout=10) == b"before"
                ab.send_nowait(b"in flight at the stop")
            a2 = fast_node(store=db, paths=("tcp",))
            async with a2:
                assert a2.did == ident.did_text
                ab2 = a2.session(b.did)
                assert ab2 is not None
                await ab2.established(timeout=15)
                assert any("resum" in r.reason for r in ab2.history), ab2.history
                ba2 = b.session(a2.did)
                assert ba2 is not None
                assert await ba2.receive(timeout=10) == b"in flight at the stop"
                ab2.send_nowait(b"after")
                assert await ba2.receive(timeout=10) == b"after"

    run(scenario(), 90)


def test_impostor_fails_authentication_and_is_quarantined() -> None:
    async def scenario() -> None:
        async with fast_node() as bob, fast_node() as carol:
            mallory = Relay(bob.address, Identity.generate(SystemRandom()))
            await mallory.start()
            try:
                with pytest.raises(AuthenticationFailed, match="could not prove"):
                    await carol.establish(bob.did, mallory.address, timeout=15)
                with pytest.raises(PeerQuarantined):
                    await carol.establish(bob.did, mallory.address, timeout=5)
                assert carol.session(bob.did) is None
            finally:
                await mallory.close()
            # Bob himself, at his real address, is not refused.
            session = await carol.establish(bob.did, bob.address, timeout=15)
            assert session.state is State.ESTABLISHED

    run(scenario(), 90)


def test_user_errors_are_clear() -> None:
    async def scenario() -> None:
        async with fast_node() as a, fast_node() as b:
            with pytest.raises(TransportFailed, match="no address is known"):
                await a.establish(b.did, timeout=5)
            with pytest.raises(InvalidAddress, match="not an IP address"):
                await a.establish(b.did, "localhost:1234", timeout=5)
            with pytest.raises(InvalidDid):
                await a.establish("did:nope", "127.0.0.1:9", timeout=5)
            with pytest.raises((TransportFailed, SessionTimeout), match=r"unreachable|no answer"):
                await a.establish(b.did, "127.0.0.1:9", timeout=6)
            assert a.session(b.did) is None  # nothing left behind

    run(scenario(), 60)
    with pytest.raises(ConfigError, match="paths"):
        Node(paths=("carrier-pigeon",))
    with pytest.raises(InvalidAddress):
        Node(listen="127.0.0.1")


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Node() as a:
            with pytest.raises(TransportFailed, match="cannot listen"):
                async with Node(listen=a.address):
                    pass

    run(scenario())


def test_establish_finds_an_unknown_did_by_discovery() -> None:
    async def scenario() -> None:
        async with Node(discovery="127.0.0.1:0") as b, Node(discovery="127.0.0.1:0") as c:
            assert b.discovery is not None
            assert c.discovery is not None
            targets = [b.discovery.address, c.discovery.address]
            async with Node(discovery="127.0.0.1:0", discovery_targets=targets) as a:
                session = await a.establish(c.did, timeout=10)  # no address given
                assert session.address == c.address
                assert a.directory.address_of(c.did) == c.address
                stranger = Identity.generate(SystemRandom()).did_text
                with pytest.raises(TransportFailed, match="no node answered"):
                    await a.establish(stranger, timeout=10)

    run(scenario())


def test_flush_returns_on_the_ack_and_send_waits_for_queue_space() -> None:
    async def scenario() -> None:
        config = replace(DEMO_CONFIG, ttl=3600.0, rotation_window=60.0, max_queued=50)
        async with Node(paths=("tcp",), config=config) as a, Node(paths=("tcp",)) as b:
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            loop = asyncio.get_running_loop()
            started = loop.time()
            ab.send_nowait(b"one")
            await ab.flush(timeout=30)  # woken by the ACK, not by the timeout
            assert ab.queued == 0
            assert loop.time() - started < 30
            await ab.flush(timeout=30)  # nothing queued: returns at once
            for i in range(50):
                ab.send_nowait(b"%d" % i)
            with pytest.raises(QueueFull):
                ab.send_nowait(b"over the limit")
            sent = await ab.send(b"waits for room", timeout=20)
            assert sent == 51
            got: list[bytes] = []
            await drain(ba, 52, got)
            assert got[-1] == b"waits for room"

    run(scenario())


def test_a_node_object_restarts_cleanly_and_stop_wakes_waiters(tmp_path: Path) -> None:
    db = tmp_path / "n.db"

    async def scenario() -> None:
        async with Node(paths=("tcp",)) as b:
            a = Node(store=db, paths=("tcp",))  # a fresh file: an identity is created
            await a.start()
            did = a.did
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            pending = asyncio.ensure_future(ab.receive())  # no timeout
            accepting = asyncio.ensure_future(a.accept())
            with pytest.raises(StoreLocked, match="in use by another running node"):
                await Node(store=db, paths=("tcp",)).start()
            await a.stop()
            with pytest.raises(SessionClosed, match="node stopped"):
                await asyncio.wait_for(pending, 5)
            with pytest.raises(SessionClosed, match="node stopped"):
                await asyncio.wait_for(accepting, 5)
            await a.start()  # the same object, again: same DID, session resumed
            assert a.did == did
            again = a.session(b.did)
            assert again is not None
            assert again is not ab
            await again.established(timeout=15)
            again.send_nowait(b"after the restart")
            assert await ba.receive(timeout=10) == b"after the restart"
            await a.stop()

    run(scenario())
