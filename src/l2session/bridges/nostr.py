"""The Nostr bridge: NIP-17 private messages through Nostr relays.

Messages are NIP-17 kind 14 chat messages, sealed (kind 13) and
gift-wrapped (kind 1059) per NIP-59 with NIP-44 v2 encryption, all done by
nostr-sdk behind :mod:`l2session.bridges.nostr_adapter`.  A message goes to
the peer's preferred DM relays (its NIP-17 kind 10050 list, looked up once
per peer) and to the configured relays; the node reads its own messages on
the configured relays, which it announces in its own kind 10050 list.

The node's Nostr key is derived from its identity (``derive_secret``), and
the link between the two is published both ways (docs/FEDERATION.md):

* the DID side: an Ed25519 signature by the DID's key over
  ``"l2session nostr link v1\\n" || DID || "\\n" || Nostr public key (hex)``;
* the Nostr side: a kind 0 profile event, signed by the Nostr key, whose
  NIP-39-style ``["i", "did:…", <the Ed25519 signature, hex>]`` tag names
  the DID.  Anyone who reads the profile can check both signatures
  (:func:`verify_link`); the node records the profile event in its store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Final

from l2session.bridges import nostr_adapter as adapter
from l2session.bridges.interface import BridgeHooks, ForeignMessage, LinkStatus, Sealed
from l2session.crypto import primitives
from l2session.errors import FederationError, ForeignMessageRejected, ForgedEvent
from l2session.identity.did import Did, ed25519_from_did_key
from l2session.identity.foreign import BridgeProtocol, ForeignIdentity
from l2session.identity.identity import Identity

_log = logging.getLogger("l2session.bridges.nostr")

LINK_DOMAIN: Final = b"l2session nostr link v1\n"
#: Seconds spent looking up a peer's kind 10050 DM relays.
DM_RELAY_LOOKUP: Final = 1.5


def link_message(did: str, nostr_hex: str) -> bytes:
    """What the DID's key signs to claim the Nostr key (see module doc)."""
    return LINK_DOMAIN + did.encode() + b"\n" + nostr_hex.encode()


def verify_link(profile_json: bytes) -> tuple[str, str]:
    """``(did, nostr public key hex)`` of a kind 0 link event, after checking
    the Nostr signature and the DID's Ed25519 signature (did:key DIDs carry
    their key).  Raises ForgedEvent or ForeignMessageRejected."""
    fields = adapter.verify_event(profile_json)
    if fields.get("kind") != adapter.KIND_METADATA:
        raise ForeignMessageRejected("a DID link is published in a kind 0 event")
    links = [t for t in fields.get("tags", []) if len(t) >= 3 and t[0] == "i"]
    claims = [t for t in links if str(t[1]).startswith("did:")]
    if not claims:
        raise ForeignMessageRejected("the profile names no DID (no ['i', 'did:…', sig] tag)")
    did_text, signature_hex = str(claims[0][1]), str(claims[0][2])
    did = Did.parse(did_text)
    pubkey = str(fields["pubkey"])
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        raise ForgedEvent("the DID signature is not hex", reason="bad_signature") from None
    try:
        primitives.ed25519_verify(
            ed25519_from_did_key(did), signature, link_message(did_text, pubkey), what="DID link"
        )
    except Exception as exc:
        raise ForgedEvent(
            f"the DID's signature does not verify: {exc}", reason="bad_signature"
        ) from None
    return did_text, pubkey


class NostrBridge:
    """:class:`~l2session.bridges.interface.Bridge` for Nostr (see module doc)."""

    protocol: BridgeProtocol = BridgeProtocol.NOSTR

    def __init__(
        self,
        identity: Identity,
        *,
        relays: list[str] | tuple[str, ...],
        retry_interval: float = 1.0,
        lookup_dm_relays: bool = True,
        publish_profile: bool = True,
    ) -> None:
        self.identity = identity
        self.relays = list(dict.fromkeys(relays))
        self._keys = adapter.NostrKeys(adapter.derive_secret(identity.signing.seed()))
        self._local = ForeignIdentity.nostr(self._keys.public_hex)
        self._retry = retry_interval
        self._lookup = lookup_dm_relays
        self._publish_profile = publish_profile
        self._dm_relays: dict[str, list[str]] = {}
        self._client: adapter.RelayClient | None = None
        self._hooks: BridgeHooks | None = None
        #: The signed kind 0 link event (made at start, published once a relay is up).
        self.link_event: bytes | None = None
        #: Whether a relay accepted the relay list and the link event.
        self.announced = False
        self._announce: asyncio.Future[None] | None = None

    @property
    def local_id(self) -> ForeignIdentity:
        return self._local

    def __repr__(self) -> str:
        return f"NostrBridge({self._local.text}, relays={self.relays})"

    def link_statement(self) -> bytes:
        """The signed kind 0 event linking this node's DID and Nostr key."""
        did = self.identity.did_text
        signature = primitives.ed25519_sign(
            self.identity.signing, link_message(did, self._keys.public_hex)
        )
        content = json.dumps({"name": "l2session node", "about": f"l2session node {did}"})
        return self._keys.signed_event(
            adapter.KIND_METADATA, content, [["i", did, signature.hex()]]
        )

    async def start(self, hooks: BridgeHooks, since: float) -> None:
        self._hooks = hooks
        client = self._client = adapter.RelayClient(
            self._keys,
            self.relays,
            retry_interval=self._retry,
            on_links=self._links,
            on_event=self._on_event,
            on_synced=hooks.on_synced,
        )
        self.link_event = self.link_statement()
        await client.start(since)

    def _links(self, count: int, detail: str) -> None:
        """Pass link changes on; the first time a relay is up, publish the
        kind 10050 relay list and the kind 0 DID link (a relay still
        connecting would refuse them)."""
        if self._hooks is not None:
            self._hooks.on_links(count, detail)
        if count > 0 and self._publish_profile and self._announce is None:
            self._announce = asyncio.ensure_future(self._publish_announcements())

    async def _publish_announcements(self) -> None:
        client = self._client
        if client is None or self.link_event is None:
            return
        relay_list = self._keys.signed_event(
            adapter.KIND_DM_RELAYS, "", [["relay", url] for url in self.relays]
        )
        self.announced = await client.publish(relay_list) > 0
        self.announced = await client.publish(self.link_event) > 0 and self.announced

    async def stop(self) -> None:
        if self._announce is not None:
            self._announce.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._announce
            self._announce = None
        if self._client is not None:
            await self._client.stop()
            self._client = None

    async def reconnect(self) -> None:
        if self._client is not None:
            await self._client.reconnect()

    def _on_event(self, event_json: str) -> None:
        hooks = self._hooks
        if hooks is None:
            return
        try:
            opened = self._keys.open_gift_wrap(event_json)
        except ForgedEvent as exc:
            hooks.on_refused(exc.reason, str(exc))
            return
        except ForeignMessageRejected as exc:
            hooks.on_refused("malformed", str(exc))
            return
        hooks.on_message(
            ForeignMessage(
                opened.event_id,
                ForeignIdentity.nostr(opened.sender_hex),
                opened.text,
                opened.wrap_created_at,
                opened.sent_at,
                opened.seq,
            )
        )

    def seal(self, peer: ForeignIdentity, text: str, seq: int) -> Sealed:
        event_id, event = self._keys.seal(peer.hex, text, seq)
        return Sealed(event_id, event)

    async def publish(self, peer: ForeignIdentity, sealed: Sealed) -> int:
        client = self._client
        if client is None:
            raise FederationError("the Nostr bridge is not started")
        targets = await self._targets(client, peer)
        return await client.publish(sealed.event, targets)

    async def _targets(self, client: adapter.RelayClient, peer: ForeignIdentity) -> list[str]:
        """The peer's kind 10050 DM relays plus ours (looked up once)."""
        found = self._dm_relays.get(peer.hex)
        if found is None:
            found = []
            if self._lookup:
                found = await client.fetch_dm_relays(peer.hex, DM_RELAY_LOOKUP)
                for url in found:
                    await client.add_write_relay(url)
            self._dm_relays[peer.hex] = found
        return list(dict.fromkeys([*found, *self.relays]))

    def links(self) -> list[LinkStatus]:
        if self._client is None:
            return [LinkStatus(url, False, False) for url in self.relays]
        return [LinkStatus(u, c, s) for u, c, s in self._client.status()]
