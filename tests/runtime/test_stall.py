"""Stalled QUIC connections (runtime/stall.py) over real loopback sockets:
UDP blocked mid-session moves a session with messages in flight to μTCP
long before QUIC's idle timeout; an idle session's silence never stalls.
Every wait is bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from l2session.core.config import SessionConfig
from l2session.errors import ConfigError
from l2session.runtime.node import Node
from l2session.transports.quic import QuicTransport

from .support import drain, run, until

#: QUIC's own idle timeout is a minute here: only the stall watch can act.
SLOW_IDLE = 60.0


def node(**kwargs: Any) -> Node:
    kwargs.setdefault("config", SessionConfig(heartbeat_interval=30.0))
    kwargs.setdefault("connect_timeout", 1.0)
    kwargs.setdefault("quic_idle_timeout", SLOW_IDLE)
    kwargs.setdefault("quic_probe_interval", 0.5)
    kwargs.setdefault("quic_stall_timeout", 0.5)
    return Node(**kwargs)


def block_udp(a: Node, b: Node, blocked: bool) -> None:
    quic_a, quic_b = a.transports["quic"], b.transports["quic"]
    assert isinstance(quic_a, QuicTransport)
    assert isinstance(quic_b, QuicTransport)
    quic_a.drop_filter = (lambda address: address == b.address) if blocked else None
    quic_b.drop_filter = (lambda address: address == a.address) if blocked else None


def test_udp_blocked_mid_stream_falls_back_before_the_idle_timeout() -> None:
    async def scenario() -> None:
        async with node() as a, node() as b:
            ab = await a.establish(b.did, b.address, timeout=10)
            ba = await b.accept(timeout=10)
            assert ab.path == "quic"
            got: list[bytes] = []
            for i in range(500):
                ab.send_nowait(b"%d" % i)
            await drain(ba, 500, got)
            block_udp(a, b, True)
            for i in range(500, 1000):
                ab.send_nowait(b"%d" % i)
            # Far sooner than SLOW_IDLE: the scenario's limit is 30 s.
            await until(lambda: ab.path == "tcp", "the sender on μTCP", limit=15)
            await drain(ba, 1000, got)
            assert got == [b"%d" % i for i in range(1000)]
            assert a.stall_watch is not None
            assert a.stall_watch.stalls >= 1
            # The receiver follows (the sender now speaks over μTCP).
            await until(lambda: ba.path == "tcp", "the receiver on μTCP", limit=15)
            block_udp(a, b, False)
            await until(lambda: ab.path == "quic", "the session back on QUIC", limit=15)
            await ab.send(b"over quic again")
            assert await ba.receive(timeout=10) == b"over quic again"

    run(scenario(), 30)


def test_an_idle_session_is_not_declared_stalled() -> None:
    """Nothing outstanding and no heartbeat due: silence is normal."""

    async def scenario() -> None:
        async with node() as a, node() as b:
            ab = await a.establish(b.did, b.address, timeout=10)
            await b.accept(timeout=10)
            await ab.flush(timeout=10)
            block_udp(a, b, True)
            await asyncio.sleep(2.0)  # four stall timeouts of silence
            assert ab.path == "quic"
            assert a.stall_watch is not None
            assert a.stall_watch.stalls == 0
            block_udp(a, b, False)

    run(scenario(), 30)


def test_the_stall_timeout_is_validated_and_can_be_turned_off() -> None:
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="quic_stall_timeout must be positive"):
            Node(quic_stall_timeout=bad)

    async def scenario() -> None:
        async with Node(quic_stall_timeout=None) as off:
            assert off.stall_watch is None

    run(scenario(), 30)
