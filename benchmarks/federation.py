"""Federation benchmark: messages per second and p50 latency through one
local Nostr relay (a real ``nostr-relay`` process on 127.0.0.1), for
l2session's Nostr bridge and, as the baseline measured in the same run,
for nostr-sdk client to client directly (the same NIP-17 gift wraps, the
same relay).  ``--json`` prints one JSON object; ``ratio`` is bridge
msgs/s over direct msgs/s (target >= 0.8).

Run: .venv/bin/python benchmarks/federation.py [--json] [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


from l2session import Node
from l2session.bridges.local_relay import RelayProcess


async def _direct(url: str, count: int) -> tuple[float, float]:
    from l2session.testing.nostr_client import PlainClient

    sender, receiver = PlainClient([url]), PlainClient([url])
    await sender.start()
    await receiver.start()
    await asyncio.sleep(0.5)
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        assert await sender.send(receiver.npub, f"m {i}")
        await receiver.wait_for(i + 1, 30)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    await sender.stop()
    await receiver.stop()
    return count / elapsed, statistics.median(latencies)


async def _bridge(url: str, count: int) -> tuple[float, float]:
    from l2session.testing.nostr_client import PlainClient

    receiver = PlainClient([url])
    await receiver.start()
    node = Node(bridges={"nostr": {"relays": [url]}})
    await node.start()
    session = node.federate(receiver.npub)
    await session.established(15)
    await asyncio.sleep(0.5)
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        await session.send(f"m {i}".encode())
        await receiver.wait_for(i + 1, 30)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    await node.stop()
    await receiver.stop()
    return count / elapsed, statistics.median(latencies)


def measure(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        relay = RelayProcess(Path(tmp) / "relay")
        relay.start()
        try:
            direct_rate, direct_p50 = asyncio.run(_direct(relay.url, count))
            bridge_rate, bridge_p50 = asyncio.run(_bridge(relay.url, count))
        finally:
            relay.stop()
    return {
        "messages": count,
        "bridge_msgs_per_s": round(bridge_rate, 1),
        "bridge_p50_ms": round(bridge_p50 * 1000, 2),
        "nostr_sdk_msgs_per_s": round(direct_rate, 1),
        "nostr_sdk_p50_ms": round(direct_p50 * 1000, 2),
        "ratio": round(bridge_rate / direct_rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    figures = measure(args.messages)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"one local relay, {figures['messages']} messages, one at a time (send -> read)")
    print(
        f"  nostr-sdk client to client: {figures['nostr_sdk_msgs_per_s']} msg/s, "
        f"p50 {figures['nostr_sdk_p50_ms']} ms"
    )
    print(
        f"  l2session Nostr bridge:     {figures['bridge_msgs_per_s']} msg/s, "
        f"p50 {figures['bridge_p50_ms']} ms"
    )
    print(f"  ratio (bridge / direct):    {figures['ratio']} (target >= 0.8)")


if __name__ == "__main__":
    main()
