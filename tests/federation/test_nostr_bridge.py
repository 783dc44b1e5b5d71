"""The Nostr bridge against a real relay process and a plain nostr-sdk client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from l2session import Node
from l2session.core.states import State
from .relay_process import RelayProcess


async def _started(relay: RelayProcess, store: Path | None = None) -> Node:
    node = Node(store=store, bridges={"nostr": {"relays": [relay.url]}})
    await node.start()
    return node


def test_a_message_each_way_is_an_ordinary_nip17_dm(relay: RelayProcess) -> None:
    from .plain_client import PlainClient

    async def main() -> None:
        node = await _started(relay)
        friend = PlainClient([relay.url])
        await friend.start()
        try:
            session = node.federate(f"nostr:{friend.npub}")
            await session.established(10)
            assert session.state is State.ESTABLISHED
            await session.send(b"hello from l2session")
            await session.flush(10)
            await friend.wait_for(1, 10)
            dm = friend.inbox[0]
            assert dm.text == "hello from l2session"
            assert node.federation is not None
            local = node.federation.bridges[session.protocol].local_id
            assert dm.sender == local.npub
            assert await friend.send(local.npub, "hello from plain nostr")
            assert await session.receive(10) == b"hello from plain nostr"
        finally:
            await friend.stop()
            await node.stop()

    asyncio.run(main())
