"""Node limits over real loopback sockets (runtime/limits.py): a peer
refused at a connection cap is told so on every path and its ``establish``
fails with PeerRefused -- never "no answer ... is a node running there?";
and a crowd of peers establishing with one hub at once each get a one-time
prekey of their own (no first attempt lost to PREKEY_GONE).  Every wait is
bounded."""

from __future__ import annotations

import asyncio
import math

import pytest

from l2session.core.config import SessionConfig
from l2session.errors import ConfigError, PeerRefused
from l2session.runtime.limits import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TCP_MAX_CONNECTIONS,
    NodeLimits,
)
from l2session.runtime.node import Node

from .support import run

HOST = "127.0.0.1"


def test_defaults_are_sized_for_a_busy_node() -> None:
    limits = NodeLimits()
    assert limits.quic_max_connections == DEFAULT_MAX_CONNECTIONS
    assert DEFAULT_MAX_CONNECTIONS >= 10_000  # ten thousand peers, each one QUIC connection
    # ... and two μTCP connections each (theirs, and ours dialled back to
    # answer the unauthenticated BUNDLE_REQUEST: transports/tcp.py).
    assert limits.tcp_max_connections == DEFAULT_TCP_MAX_CONNECTIONS >= 2 * 10_000
    assert limits.tcp_max_unidentified == 1_024
    assert Node().limits == limits


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tcp_max_connections", 0),
        ("quic_max_connections", -1),
        ("tcp_max_unidentified", 2.5),
        ("max_pending_accepts", True),
        ("max_tracked_addresses", 1 << 41),
        ("tcp_hello_timeout", 0.0),
        ("tcp_frame_timeout", math.inf),
        ("tcp_frame_timeout", math.nan),
    ],
)
def test_limits_are_validated(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"NodeLimits.{field}"):
        NodeLimits(**{field: value})  # type: ignore[arg-type]


def test_limits_must_be_node_limits() -> None:
    with pytest.raises(ConfigError, match="limits must be a NodeLimits"):
        Node(limits={"tcp_max_connections": 5})  # type: ignore[arg-type]


@pytest.mark.parametrize("paths", [("quic", "tcp"), ("tcp",), ("quic",)])
def test_a_peer_beyond_the_connection_cap_is_refused_explicitly(paths: tuple[str, ...]) -> None:
    """The hub takes one connection per transport, each taken by a peer on
    that path alone; a further peer is refused on every path and told so
    (PeerRefused at once, not its 20 s timeout)."""
    limits = NodeLimits(tcp_max_connections=1, quic_max_connections=1)

    async def scenario() -> None:
        async with Node(listen=f"{HOST}:0", paths=paths, limits=limits) as hub:
            fillers = [Node(listen=f"{HOST}:0", paths=(path,)) for path in paths]
            try:
                for filler in fillers:
                    await filler.start()
                    await filler.establish(hub.did, hub.address, timeout=20)
                async with Node(listen=f"{HOST}:0", paths=paths) as late:
                    with pytest.raises(PeerRefused, match="refused the connection") as refused:
                        await late.establish(hub.did, hub.address, timeout=20)
                    message = str(refused.value)
                    assert "is a node running there" not in message
                    for path in paths:
                        assert f"{path}: refused by the node" in message
                    assert late.session(hub.did) is None  # the attempt was abandoned
                # The hub counted what it refused; the others are still served.
                refusals = sum(t.stats.extra.get("refused", 0) for t in hub.transports.values())
                assert refusals >= len(paths)
                for filler in fillers:
                    handle = filler.session(hub.did)
                    assert handle is not None
                    await handle.send(b"still served")
                    inbound = await hub.accept(timeout=10)
                    assert await inbound.receive(timeout=10) == b"still served"
            finally:
                for filler in fillers:
                    await filler.stop()

    run(scenario(), 60)


def test_a_crowd_gets_distinct_one_time_prekeys() -> None:
    """Twenty peers establish with one hub at once over real sockets: each
    bundle answer carries its own one-time prekey, so no INIT names one
    another peer used (no PREKEY_GONE), and every first attempt succeeds."""
    crowd = 20

    async def scenario() -> None:
        config = SessionConfig()
        async with Node(listen=f"{HOST}:0", paths=("tcp",), config=config) as hub:
            pool = hub.manager.ctx.keys.prekeys.one_time_count
            peers = [Node(listen=f"127.0.0.{i + 2}:0", paths=("tcp",)) for i in range(crowd)]
            for peer in peers:
                await peer.start()
            try:
                await asyncio.gather(
                    *(p.establish(hub.did, hub.address, timeout=30) for p in peers)
                )
                assert "prekey_gone" not in hub.manager.rejections
                assert hub.manager.ctx.keys.prekeys.one_time_count == pool - crowd
                retries = [p.manager.session(hub.did).prekey_retries for p in peers]  # type: ignore[union-attr]
                assert retries == [0] * crowd
            finally:
                for peer in peers:
                    await peer.stop()

    run(scenario(), 120)
