"""Forged events, and a Membrane that refuses a foreign peer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from l2session import Node
from l2session.bridges.local_relay import RelayProcess
from l2session.membrane.policy_file import parse_policy


def test_forged_events_are_refused_and_counted(tmp_path: Path) -> None:
    import nostr_sdk as ns

    from l2session.testing.nostr_client import PlainClient

    relay = RelayProcess(tmp_path / "relay", check_signatures=False)
    relay.start()

    async def main() -> None:
        node = Node(bridges={"nostr": {"relays": [relay.url]}})
        await node.start()
        forger = PlainClient([relay.url])
        await forger.start()
        try:
            assert node.federation is not None
            fed = node.federation
            me = next(iter(fed.bridges.values())).local_id
            session = node.federate(forger.npub)
            await session.established(10)
            receiver = ns.PublicKey.parse(me.hex)
            # 1. a bad signature: a genuine gift wrap with one signature bit flipped
            good = ns.nip17_make_private_msg(forger.keys, receiver, "tampered")
            fields = json.loads(good.as_json())
            fields["sig"] = ("0" if fields["sig"][0] != "0" else "1") + fields["sig"][1:]
            relay_url = ns.RelayUrl.parse(relay.url)
            relay_obj = await forger.client.relay(relay_url)
            await relay_obj.send_msg(ns.ClientMessage.event(ns.Event.from_json(json.dumps(fields))))
            # 2. a message claiming another author inside the seal
            someone = ns.Keys.generate()
            rumor = (
                ns.EventBuilder(ns.Kind(14), "impersonated")
                .tags([ns.Tag.public_key(receiver)])
                .finalize_unsigned(someone.public_key())
            )
            seal_and_wrap = ns.nip59_make_gift_wrap(forger.keys, receiver, rumor)
            await forger.client.send_event(seal_and_wrap)
            # 3. a genuine one afterwards is delivered
            assert await forger.send(me.npub, "genuine")
            assert await session.receive(10) == b"genuine"
            await asyncio.sleep(0.3)
            assert fed.refused.get("author_mismatch", 0) == 1
            # nostr-sdk drops a relay's event with a bad signature before the
            # bridge sees it; one that reaches the bridge is refused and counted:
            bridge = next(iter(fed.bridges.values()))
            bridge._on_event(json.dumps(fields))  # type: ignore[attr-defined]
            assert fed.refused.get("bad_signature", 0) == 1
            assert session.available == 0  # nothing forged was delivered
        finally:
            await forger.stop()
            await node.stop()

    try:
        asyncio.run(main())
    finally:
        relay.stop()


def test_a_policy_refusing_a_foreign_peer_is_in_the_audit_chain(
    relay: RelayProcess, tmp_path: Path
) -> None:
    from l2session.testing.nostr_client import PlainClient

    async def main() -> None:
        friend, stranger = PlainClient([relay.url]), PlainClient([relay.url])
        await friend.start()
        await stranger.start()
        friend_name = f"nostr:{friend.npub}"
        policy = parse_policy(
            f'version = 1\n[groups]\nfriends = ["{friend_name}"]\n'
            '[[grant]]\npeers = ["group:friends"]\nresource = "bridge://nostr"\n'
            'action = "deliver"\n'
        )
        node = Node(
            store=tmp_path / "node.db", policy=policy, bridges={"nostr": {"relays": [relay.url]}}
        )
        await node.start()
        try:
            assert node.federation is not None
            me = next(iter(node.federation.bridges.values())).local_id
            from_friend = node.federate(friend_name)
            await from_friend.established(10)
            assert await stranger.send(me.npub, "let me in")
            assert await friend.send(me.npub, "hello")
            assert await from_friend.receive(10) == b"hello"
            assert node.federation.refused.get("policy") == 1
            stranger_session = node.federation.handles.get(f"nostr:{stranger.npub}")
            assert stranger_session is None or stranger_session.available == 0
            assert node.store is not None
            log = node.store.audit_log()
            refusals = [e for e in log if e.kind == "access" and stranger.npub in e.subject]
            assert refusals
            assert "deliver" in refusals[0].body
            transitions = [e for e in log if e.kind == "transition" and friend.npub in e.subject]
            assert transitions, [
                (e.kind, e.subject[:20]) for e in log
            ]  # the federated session's states, in the same chain
            assert node.store.verify_audit().ok
        finally:
            await friend.stop()
            await stranger.stop()
            await node.stop()

    asyncio.run(main())
