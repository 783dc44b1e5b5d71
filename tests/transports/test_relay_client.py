"""The relay path's CONNECT (transports/relay.py): signed by the node's DID
and bound to the relay's DID and the target when the relay's DID is known
(a reservation there names it); otherwise sent unsigned once, and the
relay's refusal -- which names its DID -- is followed by one signed
CONNECT.  A refused signed CONNECT is not retried: the route goes down
with the relay's reason."""

from __future__ import annotations

import asyncio
from typing import Any

from l2session.crypto import primitives
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.transports.relay import RelayTransport
from l2session.wire.relay import (
    BAD_SIGNATURE,
    UNAUTHENTICATED,
    Connect,
    ConnectReject,
    connect_signed_bytes,
    decode_relay,
    encode_relay,
)

NOW = 1_800_000_000.0
ME = Identity.generate(SeededRandom("relay client me"))
RELAY = Identity.generate(SeededRandom("relay client relay"))
TARGET = Identity.generate(SeededRandom("relay client target")).did_text
AT = "192.0.2.9:7000"


class Listener:
    def __init__(self) -> None:
        self.downs: list[tuple[str, str]] = []

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        pass

    def path_up(self, address: str, path: str) -> None:
        pass

    def path_down(self, address: str, path: str, reason: str) -> None:
        self.downs.append((address, reason))


def scenario(relays: list[tuple[str, str]], body: Any) -> None:
    async def main() -> None:
        sent: list[tuple[str, bytes]] = []
        client = RelayTransport(
            ME,
            lambda to, data: sent.append((to, data)),
            lambda: NOW,
            SeededRandom("relay client rng"),
            relays=relays,
        )
        listener = Listener()
        await client.start(listener, "", 0)
        try:
            body(client, sent, listener)
        finally:
            await client.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def connects(sent: list[tuple[str, bytes]]) -> list[Connect]:
    out = []
    for to, data in sent:
        packet = decode_relay(data)
        if isinstance(packet, Connect):
            assert to == AT
            out.append(packet)
    return out


def assert_signed_for_this_relay(packet: Connect) -> None:
    assert packet.initiator == ME.did_text
    assert packet.timestamp_ms == int(NOW * 1000)
    assert packet.signature is not None
    signed = connect_signed_bytes(
        RELAY.did_text, ME.did_text, TARGET, packet.timestamp_ms, packet.nonce
    )
    primitives.ed25519_verify(ME.signing.public, packet.signature, signed, what="CONNECT")


def test_a_relay_we_reserve_on_gets_a_signed_connect_at_once() -> None:
    def body(client: RelayTransport, sent: list[tuple[str, bytes]], _: Listener) -> None:
        client.send(f"{AT}/{TARGET}", b"\x01\x10first")
        [packet] = connects(sent)
        assert_signed_for_this_relay(packet)

    scenario([(RELAY.did_text, AT)], body)


def test_an_unknown_relay_names_its_did_and_gets_one_signed_connect() -> None:
    def body(client: RelayTransport, sent: list[tuple[str, bytes]], lis: Listener) -> None:
        client.send(f"{AT}/{TARGET}", b"\x01\x10first")
        [unsigned] = connects(sent)
        assert not unsigned.signed
        refusal = ConnectReject(unsigned.nonce, UNAUTHENTICATED, RELAY.did_text)
        client.relay_packet(encode_relay(refusal), AT)
        [_, signed] = connects(sent)
        assert signed.nonce != unsigned.nonce
        assert_signed_for_this_relay(signed)
        assert client.stats.extra["connect_signed_retry"] == 1
        # The relay refuses that one too: no third CONNECT, the route is down.
        refusal = ConnectReject(signed.nonce, BAD_SIGNATURE, RELAY.did_text)
        client.relay_packet(encode_relay(refusal), AT)
        assert len(connects(sent)) == 2
        assert lis.downs == [(f"{AT}/{TARGET}", "relay refused the circuit: bad signature")]
        # A refusal for a nonce we did not send is ignored.
        client.relay_packet(encode_relay(ConnectReject(bytes(16), UNAUTHENTICATED, "x")), AT)
        assert len(connects(sent)) == 2

    scenario([], body)
