"""Relays on loopback: a node holds a reservation on a relay node, a peer
reaches it through the relay (the session's path is "relay"), every
message arrives once and in order, and the relay forwards bytes it cannot
read; a session fails over from its direct path to a relayed standby and
back without loss."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from l2session.cli.netdemo import DEMO_CONFIG
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.membrane.policy_file import parse_policy
from l2session.runtime.node import Node
from l2session.transports.quic import QuicTransport
from l2session.wire.relay import DENIED, REASONS

from .support import drain, run, until

#: Relayed sessions stay relayed here (loopback would punch through at once);
#: test_hole_punching_on_loopback turns it on.
CONFIG = replace(DEMO_CONFIG, ttl=3600.0, rotation_window=60.0, hole_punching=False)


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
                # B knew the relay only by address: its first CONNECT was
                # unsigned, refused with the relay's DID, and a CONNECT
                # signed by B's DID and bound to that relay opened the circuit.
                assert stats.refused == {"unauthenticated": 1}
                b_client = b.relaying.client
                assert b_client is not None
                assert b_client.stats.extra.get("connect_signed_retry") == 1
                assert server.initiators() == [b.did]
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


def test_who_may_reserve_is_the_relays_membrane_decision_and_audited(tmp_path: Path) -> None:
    allowed = Identity.generate(SeededRandom("relay test: allowed"))
    refused = Identity.generate(SeededRandom("relay test: refused"))
    policy = parse_policy(
        "version = 1\n[[grant]]\n"
        f'peers = ["{allowed.did_text}"]\nresource = "relay://reserve"\nactions = ["reserve"]\n'
    )

    async def scenario() -> None:
        async with Node(config=CONFIG, relay=True, policy=policy, store=tmp_path / "r.db") as relay:
            via = f"{relay.did}@{relay.address}"
            async with (
                Node(config=CONFIG, relays=[via], identity=allowed) as a,
                Node(config=CONFIG, relays=[via], identity=refused) as b,
            ):
                a_client, b_client = a.relaying.client, b.relaying.client
                assert a_client is not None
                assert b_client is not None
                await until(lambda: a_client.reserved(relay.address), "A's reservation")
                b_reservation = b_client.reservations[relay.address]
                await until(lambda: b_reservation.error is not None, "B's refusal")
                assert not b_client.reserved(relay.address)
                assert b_reservation.error == REASONS[DENIED]
            server = relay.relaying.server
            assert server is not None
            assert server.stats.refused.get("denied", 0) >= 1
            store = relay.store
            assert store is not None
            decisions = [str(entry.record()) for entry in store.audit_log()]
            assert any(allowed.did_text in d and "relay://reserve" in d for d in decisions)
            assert any(refused.did_text in d and "relay://reserve" in d for d in decisions)
            assert store.verify_audit().ok

    run(scenario(), 90)


def test_a_silent_relay_is_declared_lost_and_the_session_moves_to_the_standby() -> None:
    async def scenario() -> None:
        async with Node(config=CONFIG, relay=True) as r1, Node(config=CONFIG, relay=True) as r2:
            vias = [f"{r.did}@{r.address}" for r in (r1, r2)]
            async with Node(config=CONFIG, relays=vias) as a, Node(config=CONFIG) as b:
                client = a.relaying.client
                assert client is not None
                await until(
                    lambda: client.reserved(r1.address) and client.reserved(r2.address),
                    "A's reservations",
                )
                ba = await b.establish(a.did, f"relay://{r1.address}", timeout=10)
                ab = await a.accept(timeout=10)
                b.add_relay_route(a.did, r2.address)
                standby = (f"{r2.address}/{a.did}", "relay")
                await until(
                    lambda: ba.session.routes is not None and standby in ba.session.routes.extra,
                    "the standby relay validated",
                )
                got: list[bytes] = []
                for i in range(300):
                    ba.send_nowait(b"%d" % i)
                await drain(ab, 300, got)  # an idle session: only heartbeats flow
                r1.faults.block()  # the first relay goes silent (as if killed)
                await until(lambda: ba.address == standby[0], "B on the standby", limit=30)
                for i in range(300, 600):
                    ba.send_nowait(b"%d" % i)
                await drain(ab, 600, got)
                assert got == [b"%d" % i for i in range(600)]
                b_client = b.relaying.client
                assert b_client is not None
                assert b_client.stats.extra.get("silent_relays", 0) >= 1

    run(scenario(), 120)


def test_a_relayed_session_punches_through_to_a_direct_path_and_keeps_the_relay() -> None:
    config = replace(CONFIG, hole_punching=True)

    async def scenario() -> None:
        async with Node(config=config, relay=True) as relay:
            via = f"{relay.did}@{relay.address}"
            async with Node(config=config, relays=[via]) as a, Node(config=config) as b:
                client = a.relaying.client
                assert client is not None
                await until(lambda: client.reserved(relay.address), "A's reservation")
                ba = await b.establish(a.did, f"relay://{relay.address}", timeout=10)
                ab = await a.accept(timeout=10)
                got: list[bytes] = []
                for i in range(2000):
                    ba.send_nowait(b"%d" % i)
                # Each side announced where the relay saw it; each validated
                # the other's address over QUIC and moved there.
                await until(lambda: ba.path == "quic" and ab.path == "quic", "the direct path")
                assert ba.address == a.address
                assert ab.address == b.address
                relayed = (f"{relay.address}/{a.did}", "relay")
                assert ba.session.routes is not None
                assert relayed in ba.session.routes.extra  # the relay stays as backup
                for i in range(2000, 4000):
                    ba.send_nowait(b"%d" % i)
                await drain(ab, 4000, got)
                assert got == [b"%d" % i for i in range(4000)]

    run(scenario(), 90)
