"""Happy eyeballs on real loopback sockets (core/paths/race.py): a peer whose UDP
is dropped is reached over μTCP by the path race, long before QUIC's
connect timeout could declare QUIC down, and the session moves to QUIC
once UDP passes again."""

from __future__ import annotations

import time

from l2session.cli.netdemo import DEMO_CONFIG
from l2session.runtime.events import NodeEvent, PathChanged
from l2session.runtime.node import Node
from l2session.transports.quic import QuicTransport

from .support import run, until


def test_a_peer_whose_udp_is_dropped_is_reached_over_tcp_by_the_race() -> None:
    async def scenario() -> None:
        # QUIC's connect timeout (20 s) is far beyond the handshake timeout
        # (5 s): only the race can reach Bob before the attempt gives up.
        def slow() -> Node:
            return Node(config=DEMO_CONFIG, connect_timeout=20.0, quic_probe_interval=0.5)

        async with slow() as a, slow() as b:
            assert a.config.handshake_timeout < a.connect_timeout
            edges: list[tuple[str, bool]] = []

            def seen(event: NodeEvent) -> None:
                if isinstance(event, PathChanged):
                    edges.append((event.path, event.up))

            a.add_listener(seen)
            quic_a, quic_b = a.transports["quic"], b.transports["quic"]
            assert isinstance(quic_a, QuicTransport)
            assert isinstance(quic_b, QuicTransport)
            quic_a.drop_filter = lambda address: address == b.address
            quic_b.drop_filter = lambda address: address == a.address
            started = time.monotonic()
            ab = await a.establish(b.did, b.address, timeout=a.config.handshake_timeout)
            took = time.monotonic() - started
            ba = await b.accept(timeout=10)
            assert ab.path == "tcp"
            assert ba.path == "tcp"
            # Not a fallback: QUIC was never declared down.
            assert ("quic", False) not in edges
            assert quic_a.stats.connect_failures == 0
            print(f"established over μTCP with UDP dropped in {took * 1000:.0f} ms")
            ab.send_nowait(b"over tcp")
            assert await ba.receive(timeout=10) == b"over tcp"
            # UDP passes again: QUIC's handshake completes and the session
            # returns to it.
            quic_a.drop_filter = None
            quic_b.drop_filter = None
            await until(lambda: ab.path == "quic", "the session on QUIC", limit=40)
            ab.send_nowait(b"over quic")
            assert await ba.receive(timeout=10) == b"over quic"

    run(scenario(), 90)


def test_with_quic_working_establishment_stays_on_quic() -> None:
    async def scenario() -> None:
        async with Node(config=DEMO_CONFIG) as a, Node(config=DEMO_CONFIG) as b:
            ab = await a.establish(b.did, b.address, timeout=10)
            await b.accept(timeout=10)
            await until(lambda: ab.path == "quic", "the session on QUIC")

    run(scenario(), 60)
