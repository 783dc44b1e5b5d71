"""Relays in a running node: the relay path and, with ``relay=True``, the
relay service (transports/relay.py, transports/relay_server.py).

* Every node has the ``"relay"`` transport: it reaches a peer through a
  relay (``relay_address(relay, did)``) and holds reservations on the
  relays it was given (``Node(relays=["DID@host:port"])``), so peers can
  reach it through them.
* Relay packets ride the node's own transports to the relay.  The path to
  a relay is the one its packets last came by (else the node's first
  path); when that path to a relay is lost, the next is used and the relay
  transport is told, so its circuits are reported down and the sessions
  on them fail over.
* A node with ``relay=True`` also serves: RESERVE, CONNECT and
  RELAY_DATA for its circuits go to its :class:`RelayServer`; who may
  reserve is its Membrane's decision on ``reserve relay://reserve``
  (recorded in the audit log); without a policy, anyone within the limits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from l2session.core.clock import TimeSource
from l2session.core.config import SessionConfig
from l2session.core.link.envelope import Request
from l2session.crypto.rng import RandomSource
from l2session.identity.identity import Identity
from l2session.identity.resolver import DidResolver, resolve_signing_key
from l2session.membrane.membrane import Membrane
from l2session.runtime.directory import parse_peer
from l2session.runtime.events import Bridge, BridgeHost
from l2session.transports.base import Transport
from l2session.transports.relay import PATH, RelayTransport, split
from l2session.transports.relay_server import RelayLimits, RelayServer
from l2session.wire.relay import (
    CIRCUIT_ID_SIZE,
    PKT_CONNECT,
    PKT_RELAY_DATA,
    PKT_RESERVE,
    is_relay_packet,
)

_log = logging.getLogger("l2session.node")

#: What the Membrane is asked before a DID may reserve.
RESERVE_REQUEST: Final = Request("reserve", "relay://reserve")
#: How often a reservation is refreshed at most (it keeps the connection
#: to the relay and the NAT's mapping for it alive, like DERP's keepalives).
KEEPALIVE: Final = 15.0
#: How often the relay service ends expired reservations and circuits.
SWEEP_INTERVAL: Final = 1.0


class RelayHost(BridgeHost, Protocol):
    """The port :class:`Relaying` uses (the Node satisfies it): what the
    relay transport forwards to (a :class:`BridgeHost`), the node's
    identity, clock and randomness, its timeouts, its paths and their
    transports, and the Membrane that decides who may reserve."""

    @property
    def identity(self) -> Identity: ...

    @property
    def did(self) -> str: ...

    @property
    def clock(self) -> TimeSource: ...

    @property
    def rng(self) -> RandomSource: ...

    @property
    def resolver(self) -> DidResolver: ...

    @property
    def config(self) -> SessionConfig: ...

    @property
    def connect_timeout(self) -> float: ...

    @property
    def quic_idle_timeout(self) -> float: ...

    @property
    def paths(self) -> tuple[str, ...]: ...

    @property
    def transports(self) -> Mapping[str, Transport]: ...

    @property
    def running(self) -> bool: ...

    @property
    def membrane(self) -> Membrane | None: ...


class Relaying:
    """The relay path and service of one node (see the module docstring)."""

    def __init__(
        self, node: RelayHost, relays: Sequence[str], serve: bool, limits: RelayLimits | None
    ) -> None:
        self.node = node
        self.relays = [parse_peer(text) for text in relays]
        self.serve = serve
        self.limits = limits or RelayLimits()
        self.client: RelayTransport | None = None
        self.server: RelayServer | None = None
        #: Relay address -> the path its packets go on.
        self._path: dict[str, str] = {}
        self._sweep: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        node = self.node
        self.client = RelayTransport(
            node.identity,
            self._send,
            node.clock.now,
            node.rng,
            relays=[(did, address) for did, address in self.relays],
            connect_timeout=node.connect_timeout,
            silence_timeout=max(node.connect_timeout, 3 * node.config.heartbeat_timeout),
            keepalive=min(KEEPALIVE, node.quic_idle_timeout / 2),
            lost=self._silent,
        )
        await self.client.start(Bridge(node, PATH), "", 0)
        if self.serve:
            self.server = RelayServer(
                node.did,
                lambda did: resolve_signing_key(node.resolver, did),
                node.rng,
                self.limits,
                self._gate,
            )
            self._sweep = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._expire)

    def describe(self) -> list[str]:
        """Lines for ``l2session sessions``: our reservations, and what
        the relay service carries."""
        lines: list[str] = []
        client = self.client
        if client is not None:
            for address, reservation in client.reservations.items():
                if client.reserved(address):
                    state = f"reserved (seen as {reservation.observed})"
                elif reservation.error is not None:
                    state = f"not reserved: {reservation.error}"
                else:
                    state = "reserving"
                lines.append(f"relay {address}: {state}; reach us as relay://{address}")
        server = self.server
        if server is not None:
            stats = server.stats
            lines.append(
                f"relaying: {server.reservations} reservations, {server.circuits} circuits, "
                f"{stats.packets_forwarded} packets ({stats.bytes_forwarded} bytes) forwarded"
            )
        return lines

    def client_transport(self) -> RelayTransport:
        assert self.client is not None
        return self.client

    async def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self.client is not None:
            await self.client.close()

    # -- the node's hooks ------------------------------------------------------------

    def intercept(self, data: bytes, address: str, path: str) -> bool:
        """Take ``data`` if it is a relay packet (True), else leave it."""
        if not is_relay_packet(data):
            return False
        server = self.server
        kind = data[1]
        if server is not None and (
            kind in (PKT_RESERVE, PKT_CONNECT)
            or (kind == PKT_RELAY_DATA and server.has_circuit(data[2 : 2 + CIRCUIT_ID_SIZE]))
        ):
            self._emit(server.receive(data, (address, path), self.node.clock.now()))
            return True
        if self.client is not None:
            self._path[address] = path  # answers come back the way that works
            self.client.relay_packet(data, address)
        return True

    def path_down(self, address: str, path: str, reason: str) -> None:
        """A transport lost ``address`` on ``path``.  For a relay that is
        not news enough: an idle QUIC connection closes and the next packet
        dials it again from the same socket, which the relay knows as the
        same route (its circuits still hold).  A relay that is really gone
        is found by the relay transport's silence check (:meth:`_silent`)."""
        if self.client is not None and address in self._path:
            _log.debug("relaying: the %s connection to relay %s closed (%s)", path, address, reason)

    def _silent(self, relay: str) -> None:
        """The relay transport found ``relay`` silent: drop our connections
        to it (the next packet dials afresh) and try the next path."""
        node = self.node
        for path in node.paths:
            transport = node.transports.get(path)
            if transport is not None:
                transport.disconnect(relay)
        paths = node.paths
        current = self._path.get(relay, paths[0])
        self._path[relay] = paths[(paths.index(current) + 1) % len(paths)]

    def reflexive(self, address: str) -> str | None:
        """Our address as the relay behind route ``address`` saw it, when we
        reach that relay over the node's first path (QUIC: the socket the
        session's direct path would use), else None (no hole punching)."""
        parts = split(address)
        client = self.client
        if parts is None or client is None:
            return None
        if self._path.get(parts[0], self.node.paths[0]) != self.node.paths[0]:
            return None
        return client.observed(address)

    def fixed_path(self, address: str) -> str | None:
        return PATH if split(address) is not None else None

    # -- internals ------------------------------------------------------------------------

    def _send(self, relay: str, data: bytes) -> None:
        node = self.node
        path = self._path.get(relay, node.paths[0])
        transport = node.transports.get(path)
        if transport is not None and node.running:
            transport.send(relay, data)

    def _emit(self, outgoing: list[tuple[tuple[str, str], bytes]]) -> None:
        transports = self.node.transports
        for (address, path), data in outgoing:
            transport = transports.get(path)
            if transport is not None:
                transport.send(address, data)

    def _gate(self, did: str, now: float) -> str | None:
        membrane = self.node.membrane
        if membrane is None:
            _log.info("relay: reservation for %s (no policy: open relay)", did)
            return None
        return membrane.screen(did, RESERVE_REQUEST, now)

    def _expire(self) -> None:
        self._sweep = None
        server = self.server
        if server is None or not self.node.running:
            return
        self._emit(server.expire(self.node.clock.now()))
        self._sweep = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._expire)
