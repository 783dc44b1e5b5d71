"""Relays on loopback: a node holds a reservation on a relay node, a peer
reaches it through the relay (the session's path is "relay"), every
message arrives once and in order, and the relay forwards bytes it cannot
read; a session fails over from its direct path to a relayed standby and
back without loss."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from l2session.cli.netdemo import DEMO_CONFIG
from l2session.runtime.node import Node
from l2session.transports.quic import QuicTransport

from .support import drain, run, until

CONFIG = replace(DEMO_CONFIG, ttl=3600.0, rotation_window=60.0)


def test_a_peer_reaches_a_reserved_node_through_a_relay() -> None:
    async def scenario() -> None:
        async with Node(config=CONFIG, relay=True) as relay:
            via = f"{relay.did}@{relay.address}"
            async with Node(config=CONFIG, relays=[via]) as a, Node(config=CONFIG) as b:
                client = a.relaying.client
                assert client is not None
                await until(lambda: client.reserved(relay.address), "A's reservation")
                assert client.reservations[relay.address].observed == a.address  # its QUIC socket
                ba = await b.establish(a.did, f"relay://{relay.address}", timeout=10)
                ab = await a.accept(timeout=10)
                assert ba.path == "relay"
                assert ab.path == "relay"
                assert ba.address == f"{relay.address}/{a.did}"
                assert ab.address is not None
                assert ab.address.startswith(f"{relay.address}/~")
                got: list[bytes] = []
                for i in range(1000):
                    ba.send_nowait(b"%d" % i)
                await drain(ab, 1000, got)
                assert got == [b"%d" % i for i in range(1000)]
                ab.send_nowait(b"and back")
                assert await ba.receive(timeout=10) == b"and back"
                server = relay.relaying.server
                assert server is not None
                stats = server.stats
                assert (server.reservations, stats.circuits_opened) == (1, 1)
                assert stats.packets_forwarded > 1000 // 32
                # The relay never had a session with either end.
                assert relay.manager.sessions == {}

    run(scenario(), 90)


def test_a_session_fails_over_to_its_relayed_route_and_back() -> None:
    async def scenario() -> None:
        def fast(**options: Any) -> Node:
            return Node(config=CONFIG, quic_stall_timeout=1.0, quic_probe_interval=0.5, **options)

        async with fast(relay=True) as relay:
            via = f"{relay.did}@{relay.address}"
            a = fast(relays=[via], paths=("quic",))
            b = fast(paths=("quic",))
            async with a, b:
                client = a.relaying.client
                assert client is not None
                await until(lambda: client.reserved(relay.address), "A's reservation")
                ba = await b.establish(a.did, a.address, timeout=10)
                ab = await a.accept(timeout=10)
                b.add_relay_route(a.did, relay.address)
                relayed = (f"{relay.address}/{a.did}", "relay")

                def standby() -> bool:
                    routes = ba.session.routes
                    return routes is not None and relayed in routes.extra

                await until(standby, "the relayed route validated")
                got: list[bytes] = []
                for i in range(600):
                    ba.send_nowait(b"%d" % i)
                await drain(ab, 200, got)
                # UDP between A and B is dropped (not to the relay): QUIC
                # stalls, and B fails over to its relayed route.
                quic_a, quic_b = a.transports["quic"], b.transports["quic"]
                assert isinstance(quic_a, QuicTransport)
                assert isinstance(quic_b, QuicTransport)
                quic_a.drop_filter = lambda address: address == b.address
                quic_b.drop_filter = lambda address: address == a.address
                await until(lambda: ba.path == "relay", "B on the relay", limit=30)
                await drain(ab, 400, got)
                # UDP passes again: QUIC is probed back and B leaves the relay.
                quic_a.drop_filter = None
                quic_b.drop_filter = None
                await until(lambda: ba.path == "quic", "B back on QUIC", limit=30)
                for i in range(600, 1000):
                    ba.send_nowait(b"%d" % i)
                await drain(ab, 1000, got)
                assert got == [b"%d" % i for i in range(1000)]
                server = relay.relaying.server
                assert server is not None
                assert server.stats.packets_forwarded > 0

    run(scenario(), 120)
