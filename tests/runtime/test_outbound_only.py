"""Outbound-only peers on real loopback sockets: a node whose μTCP HELLO
says port 0 is routed by its live connection; when that connection is
gone its peer waits (degraded, then suspended) without ever dialling the
ephemeral port, and the session comes back when the node reaches out again,
with what was queued meanwhile delivered once."""

from __future__ import annotations

from l2session.cli.netdemo import DEMO_CONFIG
from l2session.core.states import State
from l2session.runtime.events import NodeEvent, PathChanged
from l2session.runtime.node import Node
from l2session.transports.tcp import TcpTransport

from .support import run, until


def test_an_outbound_only_peer_is_never_dialled_and_comes_back() -> None:
    async def scenario() -> None:
        async with (
            Node(config=DEMO_CONFIG, paths=("tcp",), outbound_only=True, connect_timeout=1.0) as a,
            Node(config=DEMO_CONFIG, connect_timeout=1.0, quic_probe_interval=0.5) as b,
        ):
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            ephemeral = ba.address
            assert ephemeral is not None
            assert ephemeral != a.address  # keyed by the connection's source port
            tcp_b = b.transports["tcp"]
            assert isinstance(tcp_b, TcpTransport)
            assert not tcp_b.dialable(ephemeral)
            ab.send_nowait(b"hello")
            assert await ba.receive(timeout=10) == b"hello"
            edges: list[tuple[str, str, bool]] = []

            def seen(event: NodeEvent) -> None:
                if isinstance(event, PathChanged):
                    edges.append((event.address, event.path, event.up))

            b.add_listener(seen)
            # A vanishes: its packets are dropped and its connection closes.
            a.faults.block(b.address)
            a.transports["tcp"].disconnect(b.address)
            await until(lambda: (ephemeral, "tcp", False) in edges, "B to see the loss")
            ba.send_nowait(b"queued while A is away")
            await ba.wait_state(State.DEGRADED, timeout=20)
            await ba.wait_state(State.SUSPENDED, timeout=20)
            assert ba.address == ephemeral
            assert ba.path == "tcp"  # no fallback to QUIC at an ephemeral port
            b.kick()
            await until(lambda: tcp_b.stats.extra.get("not_dialled", 0) > 0, "a refused dial")
            assert tcp_b.stats.connects == 0  # B never dialled anyone
            assert b.transports["quic"].stats.connects == 0
            assert ba.session.retry_at is None  # it waits for the peer
            # A reaches out again (a new connection, a new ephemeral port).
            a.faults.clear()
            await ba.wait_state(State.ESTABLISHED, timeout=30)
            assert await ab.receive(timeout=15) == b"queued while A is away"
            assert ba.address != ephemeral
            assert tcp_b.stats.connects == 0

    run(scenario(), 90)
