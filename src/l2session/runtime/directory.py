"""Where peers listen: the node's DID -> ``host:port`` address book.

``did:key`` DIDs carry no endpoint, so a node learns addresses from its
operator (``--peer DID@host:port``, :meth:`Node.add_peer`), from stored
sessions, and from UDP discovery.  An address is only a hint: whoever
answers there must still prove the DID's key in the PQXDH handshake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from l2session.errors import ConfigError
from l2session.identity.did import Did
from l2session.transports.address import parse_address

#: Entries kept; past it the oldest is forgotten.
MAX_PEERS: Final = 100_000


class AddressBook:
    """A mutable :class:`~l2session.core.management.context.PeerDirectory`."""

    __slots__ = ("_addresses",)

    def __init__(self, addresses: Mapping[str, str] | None = None) -> None:
        self._addresses: dict[str, str] = {}
        for did, address in (addresses or {}).items():
            self.add(did, address)

    def address_of(self, did: str) -> str | None:
        return self._addresses.get(did)

    def add(self, did: str, address: str) -> None:
        """Record ``did`` at ``address``; both are checked (InvalidDid,
        InvalidAddress)."""
        Did.parse(did)
        parse_address(address)
        self.learn(did, address)

    def learn(self, did: str, address: str) -> None:
        """Record an address the node already trusts the form of."""
        addresses = self._addresses
        addresses.pop(did, None)
        addresses[did] = address
        if len(addresses) > MAX_PEERS:
            del addresses[next(iter(addresses))]

    def forget(self, did: str) -> bool:
        """Drop ``did``'s address; whether there was one."""
        return self._addresses.pop(did, None) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._addresses.items())

    def __len__(self) -> int:
        return len(self._addresses)


def parse_peer(text: str) -> tuple[str, str]:
    """``"did:key:z...@127.0.0.1:7000"`` -> (did, address)."""
    did, sep, address = text.rpartition("@")
    if not sep or not did:
        raise ConfigError(f"{text!r}: a peer is written DID@host:port")
    Did.parse(did)
    parse_address(address)
    return did, address
