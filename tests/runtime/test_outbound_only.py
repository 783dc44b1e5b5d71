"""Outbound-only peers on real loopback sockets: a node whose μTCP HELLO
says port 0, or whose QUIC ALPN offer says it is outbound-only, is routed
by its live connection; when that connection is
gone its peer waits (degraded, then suspended) without ever dialling the
ephemeral port, and the session comes back when the node reaches out again,
with what was queued meanwhile delivered once."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from l2session.cli.netdemo import DEMO_CONFIG
from l2session.core.states import State
from l2session.runtime import node as node_module
from l2session.runtime.events import NodeEvent, PathChanged
from l2session.runtime.node import Node
from l2session.transports.base import Transport
from l2session.transports.tcp import TcpTransport

from .support import drain, run, until


@pytest.mark.parametrize("path", ["tcp", "quic"])
def test_an_outbound_only_peer_is_never_dialled_and_comes_back(path: str) -> None:
    """μTCP: the HELLO says port 0, and the peer is keyed by its ephemeral
    port.  QUIC (a client behind a NAT): the ALPN offer says so, and the
    peer is keyed by its source -- which on loopback would even answer a
    dial, since the client listens there; it is never dialled all the same."""

    async def scenario() -> None:
        async with (
            Node(config=DEMO_CONFIG, paths=(path,), outbound_only=True, connect_timeout=1.0) as a,
            Node(config=DEMO_CONFIG, connect_timeout=1.0, quic_probe_interval=0.5) as b,
        ):
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            source = ba.address
            assert source is not None
            assert ba.path == path
            if path == "tcp":
                assert source != a.address  # keyed by the connection's source port
            else:
                assert source == a.address  # one UDP socket for both roles
            own = b.transports[path]
            assert not own.dialable(source)
            ab.send_nowait(b"hello")
            assert await ba.receive(timeout=10) == b"hello"
            edges: list[tuple[str, str, bool]] = []

            def seen(event: NodeEvent) -> None:
                if isinstance(event, PathChanged):
                    edges.append((event.address, event.path, event.up))

            b.add_listener(seen)
            # A vanishes: its packets are dropped and its connection closes.
            a.faults.block(b.address)
            a.transports[path].disconnect(b.address)
            await until(lambda: (source, path, False) in edges, "B to see the loss")
            ba.send_nowait(b"queued while A is away")
            await ba.wait_state(State.DEGRADED, timeout=20)
            await ba.wait_state(State.SUSPENDED, timeout=20)
            assert ba.address == source
            assert ba.path == path  # no fallback to the other transport there
            b.kick()
            await until(lambda: own.stats.extra.get("not_dialled", 0) > 0, "a refused dial")
            assert b.transports["tcp"].stats.connects == 0  # B never dialled anyone
            assert b.transports["quic"].stats.connects == 0
            assert ba.session.retry_at is None  # it waits for the peer
            # A reaches out again (a new connection).
            a.faults.clear()
            await ba.wait_state(State.ESTABLISHED, timeout=30)
            assert await ab.receive(timeout=15) == b"queued while A is away"
            assert b.transports["tcp"].stats.connects == 0
            assert b.transports["quic"].stats.connects == 0

    run(scenario(), 90)


class _AnnouncesAClosedPort(TcpTransport):
    """μTCP whose HELLO names a port nobody listens on (a firewall or a NAT
    in front of the real one) without saying port 0."""

    closed_port = 0

    @property
    def hello_port(self) -> int:
        return self.closed_port


def _undialable(path: str, **options: Any) -> Transport:
    """The node's transport factory (runtime/listening.py), announcing a
    closed port over μTCP."""
    return _AnnouncesAClosedPort(connect_timeout=options["connect_timeout"])


def test_a_dialer_whose_announced_port_is_undialable_completes_its_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review N1: the answers to its opening packets go back on the
    connection they came on (not only to a dial of the announced port), and
    the session moves onto that connection once a packet on it
    authenticated."""

    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            _AnnouncesAClosedPort.closed_port = s.getsockname()[1]
        a = Node(config=DEMO_CONFIG, paths=("tcp",), connect_timeout=1.0)
        with monkeypatch.context() as patch:
            patch.setattr(node_module, "make_transport", _undialable)
            await a.start()
        try:
            async with Node(config=DEMO_CONFIG, paths=("tcp",), connect_timeout=1.0) as b:
                ab = await a.establish(b.did, b.address, timeout=10)
                ba = await b.accept(timeout=10)
                assert ba.address == f"127.0.0.1:{_AnnouncesAClosedPort.closed_port}"
                for i in range(20):
                    ab.send_nowait(b"a%d" % i)
                    ba.send_nowait(b"b%d" % i)
                got_b: list[bytes] = []
                got_a: list[bytes] = []
                await drain(ba, 20, got_b)
                await drain(ab, 20, got_a)
                assert got_b == [b"a%d" % i for i in range(20)]
                assert got_a == [b"b%d" % i for i in range(20)]
                tcp_b = b.transports["tcp"]
                assert tcp_b.stats.extra.get("answered_on_claim", 0) >= 1
                assert tcp_b.stats.extra.get("confirmed", 0) >= 1

        finally:
            await a.stop()

    run(scenario(), 60)
