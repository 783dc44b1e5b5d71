"""Migration and multipath over real loopback sockets: a node moves to a
new port mid-stream, and a session spread over QUIC and μTCP loses QUIC;
in both, every message arrives once, in order, and the keys stay."""

from __future__ import annotations

from dataclasses import replace

import pytest

from l2session.cli.netdemo import DEMO_CONFIG
from l2session.core.events import PathMigrated
from l2session.core.paths.multipath import MultipathStrategy
from l2session.runtime.events import NodeEvent
from l2session.runtime.node import Node
from l2session.transports.quic import QuicTransport

from .support import drain, run, until


def test_node_moves_to_a_new_port_mid_stream() -> None:
    async def scenario() -> None:
        config = replace(DEMO_CONFIG, ttl=3600.0, rotation_window=60.0)
        async with Node(config=config) as a, Node(config=config) as b:
            moves: list[PathMigrated] = []

            def seen(event: NodeEvent) -> None:
                if isinstance(event, PathMigrated):
                    moves.append(event)

            b.add_listener(seen)
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            session_id, epoch = ab.session.session_id, ab.key_epoch
            old = a.address
            got: list[bytes] = []
            for i in range(500):
                ab.send_nowait(b"%d" % i)
            await drain(ba, 250, got)
            new = await a.rebind("127.0.0.1:0")
            assert new != old
            for i in range(500, 1000):
                ab.send_nowait(b"%d" % i)
            await drain(ba, 1000, got)
            assert got == [b"%d" % i for i in range(1000)]
            await until(lambda: ba.address == new, "bob to follow alice to her new port")
            # The event is dispatched by the node's next pump, which may run
            # after this coroutine wakes.
            await until(lambda: bool(moves), "the PathMigrated event")
            assert moves[-1].address == new
            assert moves[-1].previous_address == old
            assert b.directory.address_of(a.did) == new
            assert ab.session.session_id == session_id
            assert ab.key_epoch == epoch
            ba.send_nowait(b"to the new address")
            assert await ab.receive(timeout=10) == b"to the new address"

    run(scenario(), 90)


@pytest.mark.parametrize("strategy", list(MultipathStrategy))
def test_multipath_survives_losing_quic(strategy: MultipathStrategy) -> None:
    count = 3000

    async def scenario() -> None:
        config = replace(DEMO_CONFIG, ttl=3600.0, rotation_window=60.0, multipath=strategy)
        async with Node(config=config) as a, Node(config=config) as b:
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            ab.add_path("tcp")
            await until(lambda: a.transports["tcp"].is_connected(b.address), "the tcp route")
            got: list[bytes] = []
            for i in range(count // 2):
                ab.send_nowait(b"%d" % i)
            await drain(ba, count // 4, got)
            # Failover: the route is validated (one challenge) and waits;
            # the others carry a share of the stream on it.
            least = 0 if strategy is MultipathStrategy.FAILOVER else 10
            await until(lambda: a.transports["tcp"].stats.packets_sent > least, "tcp traffic")
            if strategy is MultipathStrategy.FAILOVER:
                assert ab.path == "quic"  # tcp is standby (validated, carrying probes only)
            quic = a.transports["quic"]
            assert isinstance(quic, QuicTransport)
            quic.drop_filter = lambda address: True  # QUIC dies mid-stream
            quic.disconnect(b.address)
            a.paths_seen.path_down(b.address, "quic", "killed by the test")
            for i in range(count // 2, count):
                ab.send_nowait(b"%d" % i)
            await drain(ba, count, got)
            assert got == [b"%d" % i for i in range(count)]
            assert ab.path == "tcp" or strategy is not MultipathStrategy.FAILOVER

    run(scenario(), 90)
