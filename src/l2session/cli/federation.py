"""What the command line does with federation: ``Node(bridges=...)`` from
``node --nostr-relay`` (an option of cli/node_options.py), and how
``sessions`` shows a federated session's relays; kept in one module so the
node commands (cli/commands.py) only call in."""

from __future__ import annotations

import argparse
from typing import Any, TextIO


def bridges_of(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``Node(bridges=…)`` from the node command's options."""
    relays = list(getattr(args, "nostr_relay", []) or [])
    for url in relays:
        if not url.startswith(("ws://", "wss://")):
            from l2session.errors import ConfigError

            raise ConfigError(f"--nostr-relay {url!r}: a relay URL starts with ws:// or wss://")
    return {"nostr": {"relays": relays}} if relays else {}


def describe_relays(row: dict[str, Any]) -> str | None:
    """The relay line under a federated session in ``l2session sessions``."""
    relays = row.get("relays")
    if not relays:
        return None
    parts = []
    for relay in relays:
        status = (
            "subscribed" if relay["subscribed"] else "connected" if relay["connected"] else "down"
        )
        parts.append(f"{relay['url']} ({status})")
    return "    relays: " + ", ".join(parts)


def write_sent(response: dict[str, Any], timeout: float, out: TextIO) -> None:
    """What ``send`` says for a foreign peer: a relay accepting is delivery
    as far as the foreign protocol can tell."""
    if response["delivered"]:
        out.write(f"sent #{response['seq']} over {response['transport']}: a relay accepted it\n")
    else:
        out.write(
            f"queued #{response['seq']}: no relay accepted it within {timeout} s; the node "
            "keeps it and publishes it when a relay is reachable\n"
        )
