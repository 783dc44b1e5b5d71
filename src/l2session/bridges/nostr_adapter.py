"""Every use of ``nostr-sdk`` (rust-nostr's Python bindings) is in this module.

The rest of l2session sees plain values: hex ids, JSON bytes, Python
callbacks.  Nothing here implements Nostr cryptography: NIP-44 v2
encryption, the NIP-59 seal and gift wrap, NIP-17 chat messages, event ids
and Schnorr signatures are all rust-nostr's.  Like transports/quic_library.py
for qh3, this is the one place to change when the library's API moves.

The relay WebSockets live inside nostr-sdk's client and never leave this
module (DESIGN.md §2.9): they are not a session transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import blake3
import nostr_sdk as ns

from l2session.errors import ForeignMessageRejected, ForgedEvent, TransportFailed

_log = logging.getLogger("l2session.bridges.nostr")

#: NIP-17 chat message, NIP-59 seal and gift wrap, NIP-17 DM relay list.
KIND_CHAT: Final = 14
KIND_SEAL: Final = 13
KIND_GIFT_WRAP: Final = 1059
KIND_DM_RELAYS: Final = 10050
KIND_METADATA: Final = 0
#: The rumor tag that carries an l2session sender's sequence number;
#: ordinary clients ignore unknown tags.
SEQ_TAG: Final = "l2s-seq"
#: BLAKE3 key-derivation context of the node's Nostr key.
KEY_CONTEXT: Final = "l2session 2026-12 nostr secret key v1"
#: Largest event accepted from a relay, in bytes of JSON.
MAX_EVENT_JSON: Final = 256 * 1024
#: How often relay states are read (nostr-sdk reports no status events).
STATUS_POLL: Final = 0.2


def derive_secret(signing_seed: bytes) -> bytes:
    """The node's Nostr secret key, derived from its Ed25519 seed, so it
    needs no second key file and is the same after every restart."""
    return blake3.blake3(signing_seed, derive_key_context=KEY_CONTEXT).digest()


@dataclass(frozen=True, slots=True)
class Opened:
    """An authenticated NIP-17 message (see :func:`open_gift_wrap`)."""

    event_id: str
    sender_hex: str
    text: str
    wrap_created_at: float
    sent_at: float
    seq: int | None


class NostrKeys:
    """A key pair; the secret stays inside rust-nostr's ``Keys``."""

    __slots__ = ("_keys",)

    def __init__(self, secret: bytes) -> None:
        self._keys = ns.Keys(ns.SecretKey.from_bytes(secret))

    @classmethod
    def generate(cls) -> NostrKeys:
        keys = cls.__new__(cls)
        keys._keys = ns.Keys.generate()
        return keys

    @property
    def public_hex(self) -> str:
        return str(self._keys.public_key().to_hex())

    def seal(self, receiver_hex: str, text: str, seq: int | None) -> tuple[str, bytes]:
        """A NIP-17 kind 14 message to ``receiver_hex``, sealed and
        gift-wrapped (NIP-59, NIP-44 v2): ``(event id hex, event JSON)``."""
        tags = [] if seq is None else [ns.Tag.parse([SEQ_TAG, str(seq)])]
        event = ns.nip17_make_private_msg(
            self._keys, ns.PublicKey.parse(receiver_hex), text, rumor_extra_tags=tags
        )
        return event.id().to_hex(), event.as_json().encode()

    def open_gift_wrap(self, event_json: str) -> Opened:
        """Authenticate and decrypt a gift wrap for us.  Raises ForgedEvent
        (bad signature, seal author is not the message's author) or
        ForeignMessageRejected (not a gift wrap, not for us, not kind 14)."""
        if len(event_json) > MAX_EVENT_JSON:
            raise ForeignMessageRejected(
                f"event of {len(event_json)} bytes exceeds {MAX_EVENT_JSON} bytes"
            )
        try:
            event = ns.Event.from_json(event_json)
        except Exception as exc:
            raise ForeignMessageRejected(f"malformed event: {exc}") from None
        event_id = event.id().to_hex()
        if event.kind().as_u16() != KIND_GIFT_WRAP:
            raise ForeignMessageRejected(
                f"event {event_id[:16]}: kind {event.kind().as_u16()} is not a gift wrap (1059)"
            )
        if not (event.verify_id() and event.verify_signature()):
            raise ForgedEvent(
                f"gift wrap {event_id[:16]}: bad id or signature", reason="bad_signature"
            )
        try:
            gift = ns.UnwrappedGift.from_gift_wrap(self._keys, event)
        except Exception as exc:
            text = str(exc).lower()
            if "signature" in text or "mismatch" in text or "sender" in text:
                raise ForgedEvent(
                    f"gift wrap {event_id[:16]}: {exc}", reason="author_mismatch"
                ) from None
            raise ForeignMessageRejected(f"gift wrap {event_id[:16]}: cannot open: {exc}") from None
        rumor = gift.rumor()
        sender = gift.sender().to_hex()
        if rumor.author().to_hex() != sender:
            raise ForgedEvent(
                f"gift wrap {event_id[:16]}: the seal is by {sender[:16]}, the message claims "
                f"{rumor.author().to_hex()[:16]}",
                reason="author_mismatch",
            )
        if rumor.kind().as_u16() != KIND_CHAT:
            raise ForeignMessageRejected(
                f"gift wrap {event_id[:16]}: carries kind {rumor.kind().as_u16()}, not a "
                "NIP-17 chat message (14)"
            )
        seq: int | None = None
        for tag in rumor.tags():
            values = tag.to_vec()
            if len(values) >= 2 and values[0] == SEQ_TAG and values[1].isdigit():
                seq = int(values[1])
        return Opened(
            event_id,
            sender,
            rumor.content(),
            float(event.created_at().as_secs()),
            float(rumor.created_at().as_secs()),
            seq,
        )

    def signed_event(self, kind: int, content: str, tags: list[list[str]]) -> bytes:
        """An ordinary signed event (kind 0 profile, kind 10050 relay list)."""
        builder = ns.EventBuilder(ns.Kind(kind), content).tags([ns.Tag.parse(t) for t in tags])
        return str(builder.finalize(self._keys).as_json()).encode()

    @property
    def keys(self) -> Any:
        return self._keys


def verify_event(event_json: bytes) -> dict[str, Any]:
    """A signed event's fields, after checking its id and signature."""
    try:
        event = ns.Event.from_json(event_json.decode())
    except Exception as exc:
        raise ForeignMessageRejected(f"malformed event: {exc}") from None
    if not (event.verify_id() and event.verify_signature()):
        raise ForgedEvent("event has a bad id or signature", reason="bad_signature")
    fields: dict[str, Any] = json.loads(event_json)
    return fields


class RelayClient:
    """nostr-sdk's client on a set of relays, reporting in plain values.

    ``on_links(count, detail)`` when the number of relays connected *and*
    subscribed (EOSE seen since the last connect) changes; ``on_event(json)``
    for each gift wrap; ``on_synced()`` after the backlog of each relay.
    """

    def __init__(
        self,
        keys: NostrKeys,
        relays: list[str],
        *,
        retry_interval: float,
        on_links: Callable[[int, str], None],
        on_event: Callable[[str], None],
        on_synced: Callable[[], None],
    ) -> None:
        if not relays:
            raise TransportFailed("the Nostr bridge needs at least one relay (ws://… or wss://…)")
        self._keys = keys
        self._urls = [ns.RelayUrl.parse(url) for url in relays]
        self._retry = retry_interval
        self._on_links, self._on_event, self._on_synced = on_links, on_event, on_synced
        self._client = ns.ClientBuilder().build()
        self._sub_id = "l2s-" + keys.public_hex[:16]
        self._subscribed: dict[str, bool] = {str(u): False for u in self._urls}
        self._connected: dict[str, bool] = dict.fromkeys(self._subscribed, False)
        self._ever: dict[str, bool] = dict.fromkeys(self._subscribed, False)
        self._tasks: list[asyncio.Task[None]] = []
        self._last = -1
        self._extra: set[str] = set()

    async def start(self, since: float) -> None:
        opts = ns.RelayOptions().retry_interval(timedelta(seconds=self._retry))
        opts = opts.adjust_retry_interval(False)
        for url in self._urls:
            await self._client.add_relay(url, opts=opts)
        stream = self._client.notifications()
        self._tasks.append(asyncio.create_task(self._notifications(stream)))
        await self._client.connect()
        query = (
            ns.Filter()
            .kind(ns.Kind(KIND_GIFT_WRAP))
            .pubkey(ns.PublicKey.parse(self._keys.public_hex))
            .since(ns.Timestamp.from_secs(int(max(0.0, since))))
        )
        self._tasks.append(asyncio.create_task(self._watch(query)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self._client.shutdown()

    async def reconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.connect()

    async def _watch(self, query: Any) -> None:
        """Follow relay states; (re)subscribe on every relay that connects."""
        while True:
            relays = await self._client.relays()
            for url, relay in relays.items():
                key = str(url)
                if key not in self._subscribed:
                    continue
                up = relay.status() == ns.RelayStatus.CONNECTED
                if up and not self._connected[key]:
                    self._connected[key] = True
                    if not self._ever[key]:
                        # nostr-sdk re-sends a relay's subscriptions itself
                        # after a reconnect; its EOSE marks it subscribed.
                        try:
                            await relay.subscribe(query, id=self._sub_id)
                            self._ever[key] = True
                        except Exception as exc:
                            _log.warning("subscribing on %s failed: %s", key, exc)
                            self._connected[key] = False
                elif not up and self._connected[key]:
                    self._connected[key] = False
                    self._subscribed[key] = False
            self._report()
            await asyncio.sleep(STATUS_POLL)

    def _report(self) -> None:
        count = sum(1 for k, s in self._subscribed.items() if s and self._connected[k])
        if count != self._last:
            self._last = count
            self._on_links(count, f"{count} of {len(self._subscribed)} relay(s) subscribed")

    async def _notifications(self, stream: Any) -> None:
        while True:
            note = await stream.next()
            if note is None or note.is_shutdown():
                return
            try:
                if note.is_new_event():
                    if note.subscription_id == self._sub_id:
                        self._on_event(note.event.as_json())
                elif note.is_message():
                    message = note.message.as_enum()
                    if message.is_end_of_stored_events():
                        key = str(note.relay_url)
                        if key in self._subscribed:
                            self._subscribed[key] = True
                            self._report()
                            self._on_synced()
            except Exception:
                _log.exception("a Nostr notification could not be handled")

    def status(self) -> list[tuple[str, bool, bool]]:
        return [(k, self._connected[k], self._subscribed[k]) for k in self._subscribed]

    async def fetch_dm_relays(self, author_hex: str, timeout: float) -> list[str]:
        """The NIP-17 kind 10050 relays of ``author_hex`` (empty if none)."""
        query = ns.Filter().kind(ns.Kind(KIND_DM_RELAYS)).author(ns.PublicKey.parse(author_hex))
        try:
            events = await self._client.fetch_events(
                ns.ReqTarget.auto([query]), timeout=timedelta(seconds=timeout)
            )
        except Exception:
            return []
        newest = max(events, key=lambda e: e.created_at().as_secs(), default=None)
        if newest is None:
            return []
        return [str(url) for url in ns.nip17_extract_relay_list(newest)]

    async def add_write_relay(self, url: str) -> None:
        """Add a peer's DM relay for sending (it is not subscribed to)."""
        if url in self._subscribed or url in self._extra:
            return
        self._extra.add(url)
        with contextlib.suppress(Exception):
            await self._client.add_relay(ns.RelayUrl.parse(url))
            await self._client.connect_relay(ns.RelayUrl.parse(url))

    async def publish(self, event_json: bytes, to: list[str] | None = None) -> int:
        """Send a finished event; the number of relays that accepted it."""
        event = ns.Event.from_json(event_json.decode())
        try:
            if to:
                target = ns.SendEventTarget.to([ns.RelayUrl.parse(u) for u in to])
                output = await self._client.send_event(event, target=target)
            else:
                output = await self._client.send_event(event)
        except Exception as exc:
            _log.debug("publishing %s failed: %s", event.id().to_hex()[:16], exc)
            return 0
        # A relay that already has the event (we crashed after it accepted
        # it, before we recorded that) answers OK false "duplicate:" (NIP-01):
        # for us that is acceptance.
        duplicates = [u for u, why in output.failed.items() if str(why).startswith("duplicate")]
        return len(output.success) + len(duplicates)
