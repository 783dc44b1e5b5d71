"""The foreign side of the tests: a plain nostr-sdk client that knows
nothing of l2session.  It sends and reads ordinary NIP-17 direct messages,
and deduplicates by event id, as every Nostr client does."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import nostr_sdk as ns


@dataclass
class Received:
    event_id: str
    sender: str
    text: str
    tags: list[list[str]]


@dataclass
class PlainClient:
    relays: list[str]
    keys: Any = field(default_factory=ns.Keys.generate)
    inbox: list[Received] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.client = ns.ClientBuilder().build()
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    @property
    def npub(self) -> str:
        return str(self.keys.public_key().to_bech32())

    async def start(self) -> None:
        for url in self.relays:
            await self.client.add_relay(ns.RelayUrl.parse(url))
        stream = self.client.notifications()
        self._task = asyncio.create_task(self._read(stream))
        await self.client.connect()
        query = ns.Filter().kind(ns.Kind(1059)).pubkey(self.keys.public_key())
        for _ in range(100):
            relays = await self.client.relays()
            if any(r.status() == ns.RelayStatus.CONNECTED for r in relays.values()):
                break
            await asyncio.sleep(0.05)
        await self.client.subscribe(ns.ReqTarget.auto([query]))

    async def _read(self, stream: Any) -> None:
        while True:
            note = await stream.next()
            if note is None or note.is_shutdown():
                return
            if not note.is_new_event():
                continue
            event = note.event
            event_id = event.id().to_hex()
            if event_id in self.seen or event.kind().as_u16() != 1059:
                continue
            self.seen.add(event_id)
            gift = ns.UnwrappedGift.from_gift_wrap(self.keys, event)
            rumor = gift.rumor()
            self.inbox.append(
                Received(
                    event_id,
                    gift.sender().to_bech32(),
                    rumor.content(),
                    [t.to_vec() for t in rumor.tags()],
                )
            )
            self._arrived.set()

    async def send(self, npub: str, text: str) -> bool:
        """One NIP-17 DM; True when a relay accepted it."""
        event = ns.nip17_make_private_msg(self.keys, ns.PublicKey.parse(npub), text)
        try:
            output = await self.client.send_event(event)
        except Exception:
            return False
        return bool(output.success)

    async def wait_for(self, count: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.inbox) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.inbox)} of {count} messages within {timeout} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.5))

    async def fetch(self, kind: int, author_hex: str, timeout: float = 10.0) -> bytes:
        """The newest event of ``kind`` by ``author_hex`` (JSON), waiting
        up to ``timeout`` for it to be published."""
        query = ns.Filter().kind(ns.Kind(kind)).author(ns.PublicKey.parse(author_hex))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            events = await self.client.fetch_events(
                ns.ReqTarget.auto([query]), timeout=timedelta(seconds=2)
            )
            if events:
                newest = max(events, key=lambda e: e.created_at().as_secs())
                return str(newest.as_json()).encode()
            if loop.time() > deadline:
                raise TimeoutError(f"no kind {kind} event by {author_hex[:16]}")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.client.shutdown()
