"""The command line with a Nostr bridge: ``node --nostr-relay``, ``send
nostr:npub1…`` and ``sessions``, as separate processes with a real relay."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from l2session.bridges.local_relay import RelayProcess
from runtime.cli_support import RunningNode, cli


def test_send_to_a_nostr_peer_and_see_the_session_with_its_relays(
    relay: RelayProcess, tmp_path: Path
) -> None:
    from l2session.testing.nostr_client import PlainClient

    home = tmp_path / "home"
    node = RunningNode(home, extra=("--nostr-relay", relay.url))
    try:
        assert node.process.stdout is not None
        bridge_line = node.process.stdout.readline()
        assert "nostr bridge as nostr:npub1" in bridge_line
        assert relay.url in bridge_line

        async def main() -> list[str]:
            friend = PlainClient([relay.url])
            await friend.start()
            try:
                sent = await asyncio.to_thread(
                    cli, "send", "--home", str(home), f"nostr:{friend.npub}", "hi from the CLI"
                )
                assert sent.returncode == 0, sent.stderr
                assert "a relay accepted it" in sent.stdout
                await friend.wait_for(1, 15)
                return [m.text for m in friend.inbox]
            finally:
                await friend.stop()

        assert asyncio.run(main()) == ["hi from the CLI"]
        listed = cli("sessions", "--home", str(home))
        assert listed.returncode == 0, listed.stderr
        assert "nostr:npub1" in listed.stdout
        assert f"relays: {relay.url} (subscribed)" in listed.stdout
        rows = json.loads(cli("sessions", "--home", str(home), "--json").stdout)
        assert rows[0]["bridge"] == "nostr"
        assert rows[0]["state"] == "established"
    finally:
        node.stop()


def test_a_relay_url_that_is_not_a_websocket_is_refused_at_start(tmp_path: Path) -> None:
    made = cli("init", "--home", str(tmp_path))
    assert made.returncode == 0
    result = cli("node", "--home", str(tmp_path), "--nostr-relay", "http://127.0.0.1:1")
    assert result.returncode == 1
    assert "starts with ws:// or wss://" in result.stderr
