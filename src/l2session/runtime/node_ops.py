"""What the operator does to a running node besides sessions: discovery,
the reachability check, trust, relay routes, federated sessions.

These are the calls behind ``l2session peer``, ``trust``, ``relay`` and the
control socket's operations; each is a few lines of glue between the node's
parts, so they live apart from the node's lifecycle and its pump, as a
mixin of :class:`~l2session.runtime.node.Node` over the port
:class:`OpsHost` (mypy checks that the Node satisfies it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from l2session.core.clock import TimeSource
from l2session.core.management.manager import SessionManager
from l2session.errors import BridgeUnavailable, ConfigError, InvalidState
from l2session.identity.identity import Identity
from l2session.membrane.membrane import Membrane
from l2session.membrane.trust_statement import TrustStatement
from l2session.runtime import policyfile
from l2session.runtime.directory import AddressBook
from l2session.runtime.federation import FederatedHandle, Federation
from l2session.runtime.reachability import Reachability
from l2session.runtime.reachability import check as check_reachability
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore
from l2session.transports.discovery import DiscoveryEndpoint
from l2session.transports.relay import relay_address

_log = logging.getLogger("l2session.node")


class OpsHost(Protocol):
    """The port :class:`NodeOperations` uses (the Node satisfies it)."""

    #: The last reachability check's result (replaced by each check).
    reachability: Reachability

    @property
    def discovery(self) -> DiscoveryEndpoint | None: ...

    @property
    def discovery_targets(self) -> Sequence[str]: ...

    @property
    def directory(self) -> AddressBook: ...

    @property
    def port(self) -> int: ...

    @property
    def clock(self) -> TimeSource: ...

    @property
    def did(self) -> str: ...

    @property
    def identity(self) -> Identity: ...

    @property
    def manager(self) -> SessionManager: ...

    @property
    def membrane(self) -> Membrane | None: ...

    @property
    def store(self) -> SqliteStore | MemoryStore | None: ...

    @property
    def federation(self) -> Federation | None: ...

    def kick(self) -> None: ...


class NodeOperations:
    """The operator's calls on a node (see module doc)."""

    async def check_reachability(
        self: OpsHost, targets: Sequence[str] | None = None
    ) -> Reachability:
        """Ask discovery ``targets`` (default: ``discovery_targets``) where
        they see us and whether a new connection to our μTCP port gets
        through (runtime/reachability.py); the result is kept in
        :attr:`reachability` and shown by ``l2session sessions``."""
        if self.discovery is None:
            raise InvalidState("this node has no discovery endpoint: pass Node(discovery=...)")
        asked = list(targets or self.discovery_targets)
        if not asked:
            raise ConfigError("no discovery targets to ask")
        result = await check_reachability(self.discovery, asked, self.port, self.clock.now())
        self.reachability = result
        _log.info("node %s: %s", self.did, result.describe())
        return result

    def federate(self: OpsHost, peer: str) -> FederatedHandle:
        """The federated session with a foreign peer (``nostr:npub1…``,
        an npub or hex key), opened if new; sends queue until a relay is up.
        Raises InvalidForeignIdentity, or BridgeUnavailable without the bridge."""
        if self.federation is None:
            raise BridgeUnavailable(
                f"this node runs no bridge for {peer!r}: start it with bridges=… "
                "(CLI: l2session node --nostr-relay ws://…)"
            )
        return self.federation.open(peer)

    def trust(self: OpsHost, did: str, weight: float) -> None:
        """Sign and keep this node's trust in ``did`` (-1..1; 0 revokes):
        an edge of the QVL trust graph the Membrane scores peers with."""
        if self.membrane is None:
            raise InvalidState("the node has no Membrane: start it with a policy")
        now = self.clock.now()
        at = policyfile.next_issue_time(self.membrane.trust, self.did, did, now)
        self.membrane.add_trust(TrustStatement.sign(self.identity, did, weight, at), now)
        self.manager.commit()

    def reload_trust(self: OpsHost) -> None:
        """Read the trust graph from the store again (after ``l2session
        trust`` changed it from another process)."""
        if self.membrane is not None:
            self.membrane.trust = policyfile.load_trust(self.store, self.did, self.clock.now())

    def add_relay_route(self: OpsHost, peer_did: str, relay: str) -> None:
        """Offer the session with ``peer_did`` a route through ``relay``
        (``host:port``): validated like any route, then a standby it fails
        over to (or, with another multipath strategy, shares traffic with)."""
        self.manager.add_route(peer_did, relay_address(relay, peer_did), "relay")
        self.kick()

    async def discover(
        self: OpsHost, peer_did: str, targets: Sequence[str] | None = None, timeout: float = 2.0
    ) -> str | None:
        """Ask ``targets`` (default: ``discovery_targets``; unicast or
        broadcast ``host:port`` of discovery endpoints) who has
        ``peer_did``; a signed answer's address is learned and returned."""
        if self.discovery is None:
            raise InvalidState("this node has no discovery endpoint: pass Node(discovery=...)")
        found = await self.discovery.who_has(
            peer_did, list(targets or self.discovery_targets), timeout
        )
        if found is not None:
            self.directory.add(peer_did, found)
        return found
