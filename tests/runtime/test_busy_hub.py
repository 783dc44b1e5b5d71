"""A hub busy with a crowd (issue 23): it answers a peer's BUNDLE_REQUEST
but takes longer than the peer's ``handshake_timeout`` over the INIT.
The peer's first ``establish`` must still succeed within the caller's
timeout -- the peer's signed BUNDLE proved a node with that DID is there,
so the session's own retry is awaited -- while silence still fails at
once.  Real loopback sockets; the hub's slowness is a delay of the INIT's
delivery (the hub's loop stays free).  Every wait is bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from l2session.core.config import SessionConfig
from l2session.crypto.handshake_messages import TYPE_INIT
from l2session.crypto.rng import SeededRandom
from l2session.errors import TransportFailed
from l2session.identity.identity import Identity
from l2session.runtime.node import Node
from l2session.wire.packets import HandshakePacket, decode_packet

from .support import run

HOST = "127.0.0.1"
#: The peer's handshake timeout: short, yet ample for a BUNDLE on loopback.
TIMEOUT = 3.0


def _slow_first_init(hub: Node, delay: float) -> list[bytes]:
    """Deliver the first INIT the hub receives, and its resends, ``delay``
    seconds late (a later attempt's INIT is on time)."""
    real = hub.packet_received
    slow: list[bytes] = []  # the session id of the first INIT

    def packet_received(data: bytes, address: str, path: str) -> None:
        try:
            packet = decode_packet(data)
        except Exception:
            packet = None
        if (
            isinstance(packet, HandshakePacket)
            and packet.message[1:2] == bytes([TYPE_INIT])  # after the version byte
            and (not slow or packet.session_id == slow[0])
        ):
            slow[:] = [packet.session_id]
            asyncio.get_running_loop().call_later(delay, real, data, address, path)
            return
        real(data, address, path)

    hub.packet_received = packet_received  # type: ignore[method-assign]
    return slow


@pytest.mark.parametrize("path", ["tcp", "quic"])
def test_a_busy_hub_is_waited_for_within_the_callers_timeout(path: str) -> None:
    config = SessionConfig(handshake_timeout=TIMEOUT)

    async def scenario() -> None:
        async with Node(listen=f"{HOST}:0", paths=(path,)) as hub:
            delayed = _slow_first_init(hub, TIMEOUT + 1.0)
            async with Node(listen=f"{HOST}:0", paths=(path,), config=config) as peer:
                started = time.monotonic()
                handle = await peer.establish(hub.did, hub.address, timeout=20)
                took = time.monotonic() - started
                assert delayed, "the INIT was not delayed"
                # The first attempt timed out, the retry established.
                session = handle.session
                reasons = [r.reason for r in session.history]
                assert "timeout" in reasons, reasons
                assert any(r.startswith("retry 1 after timeout") for r in reasons), reasons
                assert TIMEOUT < took < 20
                # Nothing waits any more: Node.wake visits only waiting
                # handles, and a finished wait leaves none behind.
                assert not peer.waiting
                assert not hub.waiting

    run(scenario(), 60)


def test_silence_still_fails_after_one_handshake_timeout() -> None:
    """A node with another DID at the address never sends a BUNDLE: the
    attempt fails at the peer's handshake timeout, not at establish's."""
    config = SessionConfig(handshake_timeout=TIMEOUT)

    async def scenario() -> None:
        async with (
            Node(listen=f"{HOST}:0", paths=("tcp",)) as other,
            Node(listen=f"{HOST}:0", paths=("tcp",), config=config) as peer,
        ):
            stranger = Identity.generate(SeededRandom("stranger")).did_text  # nobody runs it
            started = time.monotonic()
            with pytest.raises(TransportFailed, match="another DID"):
                await peer.establish(stranger, other.address, timeout=20)
            assert time.monotonic() - started < 10

    run(scenario(), 60)
