"""The demo's federation act: a native node talks to a plain Nostr client
through a local relay (a real ``nostr-relay`` process on 127.0.0.1).

Dave is an l2session node with a Nostr bridge; Erin is nothing but a Nostr
key and a relay connection (nostr-sdk's client, reached through the
bridge's adapter, with no l2session session on her side).  Dave writes to
Erin's npub; Erin reads an ordinary NIP-17 direct message and answers; the
link between Dave's DID and his Nostr key is checked both ways.  Without
the nostr extra the act says so and is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from l2session.core.states import State
from l2session.identity.foreign import ForeignIdentity
from l2session.runtime.node import Node


async def act(home: Path, title: Callable[[str], None], say: Callable[[str], None]) -> None:
    title("8. Federation: a native node talks to a plain Nostr client through a local relay")
    try:
        from l2session.bridges import nostr_adapter as adapter
        from l2session.bridges.local_relay import RelayProcess
        from l2session.bridges.nostr import verify_link
    except ImportError:
        say("skipped: the nostr extra is not installed (pip install 'l2session[nostr]')")
        return
    relay = RelayProcess(home / "relay")
    try:
        await asyncio.to_thread(relay.start)
    except (OSError, RuntimeError) as error:
        say(f"skipped: no local relay could be started ({error})")
        return
    say(f"a Nostr relay runs at {relay.url} (its own process)")
    inbox: list[str] = []
    erin_keys = adapter.NostrKeys.generate()
    erin = adapter.RelayClient(
        erin_keys,
        [relay.url],
        retry_interval=0.5,
        on_links=lambda count, detail: None,
        on_event=inbox.append,
        on_synced=lambda: None,
    )
    erin_name = ForeignIdentity.nostr(erin_keys.public_hex)
    dave = Node(store=home / "dave.db", bridges={"nostr": {"relays": [relay.url]}})
    try:
        await erin.start(0.0)
        await dave.start()
        assert dave.federation is not None
        bridge = next(iter(dave.federation.bridges.values()))
        say(f"dave is {dave.did}, on Nostr {bridge.local_id.npub}")
        say(f"erin is a plain Nostr client: {erin_name.npub}")
        chat = dave.federate(erin_name.text)
        await chat.established(15)
        for record in chat.history:
            target = record.target.value if record.target else "removed"
            say(f"dave->erin: {record.source.value} -> {target}  ({record.reason})")
        await chat.send(b"hello Erin, this is Dave on l2session")
        await chat.flush(15)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not inbox and loop.time() < deadline:
            await asyncio.sleep(0.05)
        opened = erin_keys.open_gift_wrap(inbox[0])
        say(f"erin reads a NIP-17 DM (kind 14, sealed + gift-wrapped): {opened.text!r}")
        dave_hex = bridge.local_id.hex
        _, reply = erin_keys.seal(dave_hex, "hi Dave, Erin here, from plain Nostr", None)
        await erin.publish(reply)
        answer = await chat.receive(15)
        say(f"dave reads from {erin_name.npub[:16]}…: {answer.decode()!r}")
        link_event = getattr(bridge, "link_event", None)
        if isinstance(link_event, bytes):
            did, pubkey = verify_link(link_event)
            ok = did == dave.did and pubkey == dave_hex
            say(f"the DID <-> Nostr key link (kind 0, both signatures) verifies: {ok}")
        say(
            f"guarantees: exactly once, durable queue; NIP-44 v2 encryption, "
            f"no forward secrecy (docs/FEDERATION.md); state {chat.state.value}"
        )
        assert chat.state is State.ESTABLISHED
    finally:
        await dave.stop()
        await erin.stop()
        await asyncio.to_thread(relay.stop)
