"""A node in its own process, so a test can kill it with SIGKILL.

``python node_agent.py STORE RELAY PEER SEND`` starts a node on the SQLite
store STORE with a Nostr bridge on RELAY, opens a federated session with
PEER, queues SEND numbered messages (0 = none), then prints every message
it receives as ``got TEXT`` and, once everything it queued was accepted by
a relay, ``flushed``.  Lines are flushed as written.
"""

from __future__ import annotations

import asyncio
import sys

from l2session import Node


async def main(store: str, relay: str, peer: str, send: int) -> None:
    node = Node(store=store, bridges={"nostr": {"relays": [relay]}})
    await node.start()
    session = node.federate(peer)
    assert node.federation is not None
    print("ready", node.federation.bridges[session.protocol].local_id.npub, flush=True)
    for i in range(send):
        session.send_nowait(f"n {i}".encode())
    print("queued", send, flush=True)
    flushed = False
    while True:
        if not flushed and session.queued == 0:
            flushed = True
            print("flushed", flush=True)
        try:
            for message in await session.receive_many(1000, 0.2):
                print("got", message.decode(), flush=True)
        except TimeoutError:
            pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
