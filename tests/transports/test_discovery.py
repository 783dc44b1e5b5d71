"""Discovery over real UDP sockets on 127.0.0.1: probes, who-has, forged
answers, a flood, timeouts.  No timing assertions: every wait is bounded
(``asyncio.wait_for``) and only counts and results are checked."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError, TransportFailed
from l2session.identity.identity import Identity
from l2session.transports.address import format_address, parse_address
from l2session.transports.discovery import DiscoveryEndpoint
from l2session.transports.discovery_wire import (
    DIAL_BUSY,
    DIAL_UNREACHABLE,
    DialBack,
    DiscoveryLimits,
    DiscoveryResponder,
    Here,
    Probe,
    WhoHas,
    decode_message,
)
from l2session.transports.framing import encode_hello

T = TypeVar("T")
NODE = Identity.generate(SeededRandom("discovery node"))
IMPOSTOR = Identity.generate(SeededRandom("impostor"))
ANNOUNCED = "127.0.0.1:7000"


def run(test: Callable[[], Coroutine[Any, Any, T]], limit: float = 20.0) -> T:
    return asyncio.run(asyncio.wait_for(test(), limit))


async def until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait, bounded in time and in rounds, for ``condition``."""
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


class Raw(asyncio.DatagramProtocol):
    """A bare socket: records what arrives, optionally answers with ``reply``."""

    def __init__(self, reply: Callable[[bytes], bytes | None] | None = None) -> None:
        self.received: list[bytes] = []
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.append(data)
        answer = self.reply(data) if self.reply else None
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


@contextlib.asynccontextmanager
async def raw_socket(
    reply: Callable[[bytes], bytes | None] | None = None,
) -> AsyncIterator[tuple[Raw, str]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: Raw(reply), local_addr=("127.0.0.1", 0)
    )
    protocol.transport = transport
    host, port = transport.get_extra_info("sockname")[:2]
    try:
        yield protocol, format_address(host, port)
    finally:
        transport.close()


def forger(identity: Identity | None) -> Callable[[bytes], bytes | None]:
    """Answers every WHO_HAS claiming the DID asked for, signed by
    ``identity`` (or unsigned)."""

    def reply(data: bytes) -> bytes | None:
        request = decode_message(data)
        if not isinstance(request, WhoHas):
            return None
        if identity is None:
            return Here(request.nonce, request.did, "127.0.0.1:6666").encode()
        forged = Here.signed(identity, request.nonce, "127.0.0.1:6666")
        return Here(request.nonce, request.did, forged.address, forged.signature).encode()

    return reply


async def node(**options: Any) -> DiscoveryEndpoint:
    return await DiscoveryEndpoint.open(identity=NODE, listen_address=ANNOUNCED, **options)


# ------------------------------------------------------------------ probing


def test_probe_returns_the_address_the_peer_sees() -> None:
    async def scenario() -> None:
        async with await DiscoveryEndpoint.open() as me, await node() as peer:
            assert await me.probe(peer.address, timeout=5.0) == me.address
            # The REFLEX cookie validated us: the next probe goes unpadded.
            assert await me.probe(peer.address, timeout=5.0) == me.address
            assert peer.responder.stats.validated >= 1
            assert me.stats.answers == 2

    run(scenario)


def test_probe_timeout_raises_transport_failed() -> None:
    async def scenario() -> None:
        async with raw_socket() as (silent, silent_address), await DiscoveryEndpoint.open() as me:
            with pytest.raises(TransportFailed, match="no answer"):
                await me.probe(silent_address, timeout=0.3, attempts=2)
            assert me.stats.requests_sent == 2
        assert len(silent.received) <= 2

    run(scenario)


def test_closing_fails_questions_in_flight() -> None:
    async def scenario() -> None:
        async with raw_socket() as (_, silent_address):
            me = await DiscoveryEndpoint.open()
            task = asyncio.ensure_future(me.probe(silent_address, timeout=30.0))
            await until(lambda: me.stats.requests_sent > 0)
            me.close()
            with pytest.raises(TransportFailed, match="closed"):
                await task

    run(scenario)


# ------------------------------------------------------------------ who-has


def test_who_has_finds_the_node_by_did_and_not_a_wrong_one() -> None:
    async def scenario() -> None:
        async with await DiscoveryEndpoint.open() as me, await node() as peer:
            assert await me.who_has(NODE.did_text, [peer.address], timeout=5.0) == ANNOUNCED
            assert await me.who_has(IMPOSTOR.did, [peer.address], timeout=0.3) is None
            assert peer.responder.stats.ignored >= 1

    run(scenario)


def test_an_unspecified_listen_host_is_announced_as_the_address_toward_the_asker() -> None:
    async def scenario() -> None:
        async with (
            await DiscoveryEndpoint.open() as me,
            await DiscoveryEndpoint.open(identity=NODE, listen_address="0.0.0.0:7000") as peer,
        ):
            # Signed with the concrete host (the route toward the asker).
            assert await me.who_has(NODE.did_text, [peer.address], timeout=5.0) == ANNOUNCED

    run(scenario)


def test_a_relayed_here_for_an_unspecified_host_does_not_make_the_relayer_the_address() -> None:
    """Review finding 7: before, a signed HERE naming ``0.0.0.0:PORT`` made
    the asker take the packet's source IP, so a relayer (here 127.0.0.2)
    that passed on the owner's genuine answer became the DID's address."""

    def relay(data: bytes) -> bytes | None:
        request = decode_message(data)
        if not isinstance(request, WhoHas):
            return None
        return Here.signed(NODE, request.nonce, "0.0.0.0:7000").encode()  # genuine, relayed

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, relayer = await loop.create_datagram_endpoint(
            lambda: Raw(relay), local_addr=("127.0.0.2", 0)
        )
        relayer.transport = transport
        host, port = transport.get_extra_info("sockname")[:2]
        try:
            async with await DiscoveryEndpoint.open() as me:
                found = await me.who_has(NODE.did_text, [format_address(host, port)], timeout=0.5)
                assert relayer.received
                assert found is None
                assert me.stats.unusable >= 1
        finally:
            transport.close()

    run(scenario)


def test_a_responder_without_a_concrete_address_does_not_answer() -> None:
    responder = DiscoveryResponder(bytes(32), identity=NODE, listen_address="0.0.0.0:7000")
    question = WhoHas.padded(bytes(16), NODE.did_text).encode()
    assert responder.handle(question, "127.0.0.1:5000", 0.0) is None
    assert responder.handle(question, "127.0.0.1:5001", 0.0, lambda: None) is None
    assert responder.stats.ignored == 2
    answer = responder.handle(question, "127.0.0.1:5002", 0.0, lambda: "192.0.2.7")
    assert answer is not None
    here = decode_message(answer)
    assert isinstance(here, Here)
    assert here.address == "192.0.2.7:7000"
    here.verify(NODE.signing_public)  # the concrete address is what is signed


@pytest.mark.parametrize("signer", [IMPOSTOR, None], ids=["wrong key", "unsigned"])
def test_a_forged_here_is_ignored(signer: Identity | None) -> None:
    async def scenario() -> None:
        async with (
            raw_socket(forger(signer)) as (attacker, attacker_address),
            await DiscoveryEndpoint.open() as me,
            await node() as peer,
        ):
            found = await me.who_has(NODE.did_text, [attacker_address], timeout=0.5)
            assert found is None
            assert attacker.received  # it was asked, and answered
            assert me.stats.bad_signatures >= 1
            # With the real node among the targets, the real answer wins.
            both = [attacker_address, peer.address]
            assert await me.who_has(NODE.did_text, both, timeout=5.0) == ANNOUNCED

    run(scenario)


def test_unsigned_answers_only_when_asked_for() -> None:
    async def scenario() -> None:
        async with (
            raw_socket(forger(None)) as (_, attacker_address),
            await DiscoveryEndpoint.open() as me,
        ):
            found = await me.who_has(
                NODE.did_text, [attacker_address], timeout=5.0, require_signature=False
            )
            assert found == "127.0.0.1:6666"

    run(scenario)


# ------------------------------------------------------------ flood control


def test_a_flood_is_rate_limited_and_others_are_still_answered() -> None:
    async def scenario() -> None:
        limits = DiscoveryLimits(source_rate=0.001, source_burst=5.0)
        async with (
            raw_socket() as (flooder, _),
            await node(limits=limits) as peer,
            await DiscoveryEndpoint.open() as other,
        ):
            assert flooder.transport is not None
            target = parse_address(peer.address)
            for i in range(50):
                flooder.transport.sendto(Probe.padded(bytes([i]) * 16).encode(), target)
            stats = peer.responder.stats
            await until(lambda: stats.answered + stats.rate_limited >= 50)
            assert stats.rate_limited >= 1
            assert stats.answered <= 6  # the burst, plus a token per 1,000 s
            await until(lambda: len(flooder.received) >= stats.answered)
            assert len(flooder.received) == stats.answered
            assert await other.probe(peer.address, timeout=5.0) == other.address
            assert await other.who_has(NODE.did_text, [peer.address], timeout=5.0) == ANNOUNCED

    run(scenario)


def test_garbage_is_counted_and_changes_nothing() -> None:
    async def scenario() -> None:
        async with (
            raw_socket() as (sender, _),
            await node() as peer,
            await DiscoveryEndpoint.open() as me,
        ):
            assert sender.transport is not None
            target = parse_address(peer.address)
            for junk in (b"\x00", b"L2DP", b"\xff" * 300, b"L2DP\x01\x01" + bytes(10)):
                sender.transport.sendto(junk, target)
            await until(lambda: peer.responder.stats.malformed + peer.stats.malformed >= 4)
            assert peer.responder.stats.malformed + peer.stats.malformed == 4
            assert not sender.received
            assert await me.probe(peer.address, timeout=5.0) == me.address

    run(scenario)


# ------------------------------------------------------------ configuration


def test_bad_arguments_are_refused_clearly() -> None:
    async def scenario() -> None:
        async with await DiscoveryEndpoint.open(broadcast=True) as me:
            with pytest.raises(ConfigError, match="target"):
                await me.who_has(NODE.did_text, [], timeout=0.1)
            with pytest.raises(ConfigError, match="attempts"):
                await me.probe("127.0.0.1:9", timeout=0.1, attempts=0)
            with pytest.raises(ConfigError):
                await me.probe("localhost:9", timeout=0.1)
        with pytest.raises(ConfigError, match="multicast"):
            await DiscoveryEndpoint.open(multicast_group="127.0.0.1")

    run(scenario)


def test_the_socket_is_released_on_close() -> None:
    async def scenario() -> str:
        me = await DiscoveryEndpoint.open()
        me.close()
        await asyncio.sleep(0)
        return me.address

    host, port = parse_address(run(scenario))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, port))  # the port is free again


# ---------------------------------------------------------------- dial-back


@contextlib.asynccontextmanager
async def tcp_listener(first_bytes: bytes) -> AsyncIterator[int]:
    """A TCP listener on 127.0.0.1 that writes ``first_bytes`` to each
    connection (an l2session μTCP listener writes its HELLO)."""
    accepted: list[asyncio.StreamWriter] = []

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.write(first_bytes)
        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dial_back_reaches_a_listening_node_and_not_a_closed_port() -> None:
    async def scenario() -> None:
        async with await DiscoveryEndpoint.open() as me, await node() as peer:
            async with tcp_listener(encode_hello(7000)) as port:
                result = await me.dial_back(peer.address, port, timeout=5.0)
            assert result.reached
            assert result.dialled == f"127.0.0.1:{port}"
            closed = await me.dial_back(peer.address, free_tcp_port(), timeout=5.0)
            assert closed.status == DIAL_UNREACHABLE
            # Something that is not an l2session node does not count.
            async with tcp_listener(b"SSH-2.0-OpenSSH\r\n") as other:
                foreign = await me.dial_back(peer.address, other, timeout=5.0)
            assert foreign.status == DIAL_UNREACHABLE
            assert (peer.stats.dialled_reached, peer.stats.dialled_unreachable) == (1, 2)

    run(scenario)


def test_a_dial_back_without_a_cookie_is_never_dialled() -> None:
    async def scenario() -> None:
        async with await node() as peer, raw_socket() as (raw, _):
            assert raw.transport is not None
            host, port = parse_address(peer.address)
            async with tcp_listener(encode_hello(7000)) as listening:
                forged = DialBack(bytes(16), bytes(16), listening).encode()
                raw.transport.sendto(forged, (host, port))
                await until(lambda: peer.responder.stats.refused == 1)
            assert peer.responder.stats.dialbacks == 0
            assert peer.stats.dialled_reached + peer.stats.dialled_unreachable == 0
            assert raw.received == []

    run(scenario)


def test_dial_backs_in_flight_are_bounded() -> None:
    async def scenario() -> None:
        limits = DiscoveryLimits(max_dialbacks=1, dialback_timeout=2.0)
        async with await DiscoveryEndpoint.open() as me, await node(limits=limits) as peer:
            # A listener that accepts but never speaks holds the one slot.
            async with tcp_listener(b"") as silent:
                slow = asyncio.create_task(me.dial_back(peer.address, silent, timeout=5.0))
                await until(lambda: len(peer._dialling) == 1)
                busy = await me.dial_back(peer.address, silent, timeout=5.0)
                assert busy.status == DIAL_BUSY
                assert (await slow).status == DIAL_UNREACHABLE  # timed out
            assert peer.stats.dialled_busy == 1

    run(scenario)
