"""The Nostr bridge against a real relay process and a plain nostr-sdk client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from l2session import Node
from l2session.bridges.local_relay import RelayProcess
from l2session.core.states import State

if TYPE_CHECKING:
    from l2session.testing.nostr_client import PlainClient


@contextlib.asynccontextmanager
async def _node_and_friend(relays: list[str]) -> AsyncIterator[tuple[Node, PlainClient]]:
    """A started node bridged to ``relays`` and a plain Nostr client on the
    same relays; both are stopped afterwards."""
    from l2session.testing.nostr_client import PlainClient

    node = Node(bridges={"nostr": {"relays": relays}})
    await node.start()
    try:
        friend = PlainClient(relays)
        await friend.start()
        try:
            yield node, friend
        finally:
            await friend.stop()
    finally:
        await node.stop()


def test_a_message_each_way_is_an_ordinary_nip17_dm(relay: RelayProcess) -> None:
    from l2session.bridges.nostr import verify_link

    async def main() -> None:
        async with _node_and_friend([relay.url]) as (node, friend):
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
            # The DID <-> Nostr link, as any Nostr user can fetch and check it:
            profile = await friend.fetch(0, local.hex)
            assert verify_link(profile) == (node.did, local.hex)
            relay_list = json.loads(await friend.fetch(10050, local.hex))
            assert ["relay", relay.url] in relay_list["tags"]
            assert node.store is None or node.store.federation.links()

    asyncio.run(main())


def test_a_thousand_messages_each_way_arrive_once_and_in_order(relay: RelayProcess) -> None:
    count = 1000

    async def main() -> None:
        async with _node_and_friend([relay.url]) as (node, friend):
            session = node.federate(friend.npub)
            await session.established(10)
            for i in range(count):
                await session.send(f"out {i}".encode())
            await session.flush(120)
            await friend.wait_for(count, 60)
            assert [m.text for m in friend.inbox] == [f"out {i}" for i in range(count)]
            assert node.federation is not None
            local = node.federation.bridges[session.protocol].local_id.npub
            for i in range(count):
                assert await friend.send(local, f"in {i}")
            got: list[bytes] = []
            while len(got) < count:
                got += await session.receive_many(count, 30)
            assert got == [f"in {i}".encode() for i in range(count)]
            assert node.federation.refused.get("duplicate", 0) == 0

    asyncio.run(main())


def test_a_relay_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(
    relay: RelayProcess,
) -> None:
    async def main() -> None:
        async with _node_and_friend([relay.url]) as (node, friend):
            session = node.federate(friend.npub)
            await session.established(10)
            for i in range(100):
                await session.send(f"m {i}".encode())
            await friend.wait_for(30, 30)
            relay.kill()
            await asyncio.sleep(0.5)
            for i in range(100, 200):
                await session.send(f"m {i}".encode())  # queued while the relay is down
            await asyncio.sleep(1.5)
            assert session.state is State.DEGRADED
            relay.start()
            await session.established(30)
            await session.flush(60)
            await friend.wait_for(200, 60)
            texts = [m.text for m in friend.inbox]
            assert sorted(texts, key=lambda t: int(t.split()[1])) == [f"m {i}" for i in range(200)]
            assert len(set(texts)) == 200
            states = [r.target for r in session.history]
            assert State.DEGRADED in states
            assert states[-1] is State.ESTABLISHED

    asyncio.run(main())


def test_two_relays_one_dies_and_messages_still_flow(tmp_path: Path) -> None:
    first, second = RelayProcess(tmp_path / "r1"), RelayProcess(tmp_path / "r2")
    first.start()
    second.start()

    async def main() -> None:
        async with _node_and_friend([first.url, second.url]) as (node, friend):
            session = node.federate(friend.npub)
            await session.established(10)
            await session.send(b"before")
            await friend.wait_for(1, 10)
            first.kill()
            await asyncio.sleep(1.0)
            assert session.state is State.ESTABLISHED  # one relay is enough
            assert [r.connected for r in session.relays()].count(True) == 1
            await session.send(b"after")
            await session.flush(10)
            await friend.wait_for(2, 10)
            assert [m.text for m in friend.inbox] == ["before", "after"]
            assert node.federation is not None
            local = node.federation.bridges[session.protocol].local_id.npub
            assert await friend.send(local, "back")
            assert await session.receive(10) == b"back"

    try:
        asyncio.run(main())
    finally:
        first.stop()
        second.stop()


def test_oversized_and_non_text_messages_are_refused_with_nothing_lost(
    relay: RelayProcess,
) -> None:
    from l2session.errors import ForeignMessageRejected

    async def main() -> None:
        async with _node_and_friend([relay.url]) as (node, friend):
            session = node.federate(friend.npub)
            await session.established(10)
            await session.send(b"one")
            with pytest.raises(ForeignMessageRejected, match="exceeds max_message"):
                session.send_nowait(b"x" * (node.federation_config.max_message + 1))
            with pytest.raises(ForeignMessageRejected, match="UTF-8"):
                session.send_nowait(b"\xff\xfe")
            await session.send(b"two")
            await session.flush(10)
            await friend.wait_for(2, 10)
            assert [m.text for m in friend.inbox] == ["one", "two"]

    asyncio.run(main())
