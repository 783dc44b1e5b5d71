"""The relay's side, pure: reservations, circuits, limits, forwarding.

A node run with ``relay=True`` hands every RESERVE, CONNECT and RELAY_DATA
it receives to :meth:`RelayServer.receive` with the route it came by
(address, transport path) and sends what it returns.  Nothing here reads
the payload of RELAY_DATA: those are the ends' session packets, encrypted
end to end, and the relay only counts them.  What a relay learns is
therefore metadata: which DIDs hold reservations and from which address,
which DID (from which address) opens a circuit to which DID, when, and how
many bytes flow.

A circuit is opened only for a signed CONNECT (PROTOCOL.md §3.12): the
initiator's DID signs it, bound to this relay's DID and the target, with
a timestamp within ``max_skew`` and a nonce not seen before -- as circuit
relay v2 identifies the initiator of a HOP CONNECT.  An unsigned, forged,
stale or replayed CONNECT is refused with its reason and counted.

Every limit a public relay needs is a validated :class:`RelayLimits` field
and is enforced with a counter in :class:`RelayStats`: reservations in
total and per IP, reservation lifetime, circuits in total and per
reservation, bytes and seconds per circuit, and bandwidth per circuit (a
token bucket; a packet over it is dropped -- the session resends).

Who may reserve is the caller's ``gate`` (the node asks its Membrane for
``reserve relay://reserve``, which records the decision in its audit log).
Sans-I/O: ``now`` (wall-clock seconds) and the random source are passed in.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from l2session.crypto import primitives
from l2session.crypto.rng import RandomSource
from l2session.errors import ConfigError, L2SessionError, MalformedMessage
from l2session.transports.address import parse_address
from l2session.wire.relay import (
    BAD_SIGNATURE,
    BYTE_BUDGET,
    CIRCUIT_ID_SIZE,
    DENIED,
    DURATION,
    FULL,
    GONE,
    NO_RESERVATION,
    PER_IP,
    STALE,
    UNAUTHENTICATED,
    CircuitEnd,
    Connect,
    ConnectOk,
    ConnectReject,
    RelayData,
    Reserve,
    ReserveOk,
    ReserveReject,
    connect_signed_bytes,
    decode_relay,
    encode_relay,
    reserve_signed_bytes,
)

#: ``(address, path)``: where a relay packet came from / goes to.
Route = tuple[str, str]
#: Outgoing packets: (route, bytes).
Outgoing = list[tuple[Route, bytes]]
#: Nonces of accepted RESERVEs remembered (replay window).
MAX_NONCES: Final = 65_536


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """What one relay allows (``l2session node --relay`` uses the defaults)."""

    #: Reservations held at once, and from one IP address.
    max_reservations: int = 1024
    max_reservations_per_ip: int = 4
    #: Seconds a reservation lasts (the holder refreshes it at half).
    reservation_lifetime: int = 600
    #: Circuits open at once, and to one reservation.
    max_circuits: int = 4096
    max_circuits_per_reservation: int = 16
    #: Bytes (both directions) and seconds one circuit may carry/last.
    circuit_max_bytes: int = 1 << 30
    circuit_max_seconds: int = 3600
    #: Bandwidth per circuit (bytes per second) and its burst (bytes).
    circuit_rate: float = 4 * 1024 * 1024
    circuit_burst: int = 8 * 1024 * 1024
    #: A RESERVE or CONNECT timestamp may differ from ours by this much (seconds).
    max_skew: float = 120.0

    def __post_init__(self) -> None:
        for name in (
            "max_reservations",
            "max_reservations_per_ip",
            "reservation_lifetime",
            "max_circuits",
            "max_circuits_per_reservation",
            "circuit_max_bytes",
            "circuit_max_seconds",
            "circuit_burst",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"RelayLimits.{name} must be an integer >= 1, got {value!r}")
        if self.reservation_lifetime > 0xFFFF_FFFF or self.circuit_max_seconds > 0xFFFF_FFFF:
            raise ConfigError("RelayLimits: lifetimes must fit in 32 bits of seconds")
        for name in ("circuit_rate", "max_skew"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"RelayLimits.{name} must be a positive number, got {value!r}")


@dataclass(slots=True)
class RelayStats:
    """Counters (``l2session sessions``/status shows them on a relay)."""

    reservations: int = 0  # accepted (new or refreshed)
    refused: dict[str, int] = field(default_factory=dict)  # by reason name
    circuits_opened: int = 0
    circuits_ended: dict[str, int] = field(default_factory=dict)
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    dropped_rate: int = 0  # over a circuit's bandwidth
    dropped_foreign: int = 0  # RELAY_DATA for an unknown circuit or from a stranger
    malformed: int = 0


class _Reservation:
    __slots__ = ("circuits", "did", "expires", "ip", "route")

    def __init__(self, did: str, route: Route, ip: str, expires: float) -> None:
        self.did, self.route, self.ip, self.expires = did, route, ip, expires
        self.circuits: set[bytes] = set()


class _Circuit:
    __slots__ = ("bytes", "expires", "initiator", "initiator_did", "last", "target", "tokens")

    def __init__(
        self, initiator: Route, initiator_did: str, target: str, now: float, limits: RelayLimits
    ) -> None:
        self.initiator = initiator
        #: Who signed the CONNECT (what the relay learns of the opener).
        self.initiator_did = initiator_did
        self.target = target
        self.expires = now + limits.circuit_max_seconds
        self.bytes = 0
        self.tokens = float(limits.circuit_burst)
        self.last = now


class RelayServer:
    """Reservations and circuits of one relay (see the module docstring).

    ``relay_did``: this node's DID (RESERVE signatures are bound to it);
    ``signing_key``: the DID -> Ed25519 key lookup (raises for a DID that
    cannot be resolved); ``gate``: None to allow a DID to reserve, else
    the reason it may not.
    """

    def __init__(
        self,
        relay_did: str,
        signing_key: Callable[[str], bytes],
        rng: RandomSource,
        limits: RelayLimits | None = None,
        gate: Callable[[str, float], str | None] | None = None,
    ) -> None:
        self.relay_did = relay_did
        self.limits = limits or RelayLimits()
        self.stats = RelayStats()
        self._signing_key = signing_key
        self._rng = rng
        self._gate = gate
        self._reservations: dict[str, _Reservation] = {}
        self._per_ip: dict[str, int] = {}
        self._circuits: dict[bytes, _Circuit] = {}
        self._nonces: OrderedDict[bytes, float] = OrderedDict()

    @property
    def reservations(self) -> int:
        return len(self._reservations)

    @property
    def circuits(self) -> int:
        return len(self._circuits)

    def has_circuit(self, circuit_id: bytes) -> bool:
        return circuit_id in self._circuits

    def initiators(self) -> list[str]:
        """The DIDs that signed the CONNECT of each open circuit."""
        return [circuit.initiator_did for circuit in self._circuits.values()]

    def holder(self, did: str) -> Route | None:
        """Where the reservation of ``did`` is held (None: none)."""
        reservation = self._reservations.get(did)
        return None if reservation is None else reservation.route

    def receive(self, data: bytes, source: Route, now: float) -> Outgoing:
        """Handle one relay packet from ``source``; what to send.  Hostile
        bytes are counted (``malformed``) and dropped."""
        try:
            packet = decode_relay(data)
        except MalformedMessage:
            self.stats.malformed += 1
            return []
        if isinstance(packet, RelayData):
            return self._forward(packet, bytes(data), source, now)
        if isinstance(packet, Reserve):
            return [(source, encode_relay(self._reserve(packet, source, now)))]
        if isinstance(packet, Connect):
            return [(source, encode_relay(self._connect(packet, source, now)))]
        self.stats.malformed += 1  # answers are never sent to a relay
        return []

    def expire(self, now: float) -> Outgoing:
        """End reservations and circuits past their time (call it about
        once a second); tells the ends of each ended circuit."""
        out: Outgoing = []
        for did in [d for d, r in self._reservations.items() if r.expires <= now]:
            out += self._drop_reservation(did, GONE)
        for circuit_id in [c for c, v in self._circuits.items() if v.expires <= now]:
            out += self._end(circuit_id, DURATION)
        return out

    # -- reservations -----------------------------------------------------------

    def _refuse(self, reason: int, name: str) -> int:
        self.stats.refused[name] = self.stats.refused.get(name, 0) + 1
        return reason

    def _reserve(self, packet: Reserve, source: Route, now: float) -> ReserveOk | ReserveReject:
        limits = self.limits
        nonce = packet.nonce
        if abs(packet.timestamp_ms / 1000.0 - now) > limits.max_skew or nonce in self._nonces:
            return ReserveReject(nonce, self._refuse(STALE, "stale"))
        try:
            key = self._signing_key(packet.did)
            signed = reserve_signed_bytes(self.relay_did, packet.did, packet.timestamp_ms, nonce)
            primitives.ed25519_verify(key, packet.signature, signed, what="relay RESERVE")
        except L2SessionError:
            return ReserveReject(nonce, self._refuse(BAD_SIGNATURE, "bad_signature"))
        self._remember(nonce, now)
        if self._gate is not None:
            why = self._gate(packet.did, now)
            if why is not None:
                return ReserveReject(nonce, self._refuse(DENIED, "denied"))
        ip = parse_address(source[0])[0]
        existing = self._reservations.get(packet.did)
        if existing is None:
            if len(self._reservations) >= limits.max_reservations:
                return ReserveReject(nonce, self._refuse(FULL, "full"))
            if self._per_ip.get(ip, 0) >= limits.max_reservations_per_ip:
                return ReserveReject(nonce, self._refuse(PER_IP, "per_ip"))
            existing = self._reservations[packet.did] = _Reservation(packet.did, source, ip, 0.0)
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        elif existing.ip != ip:
            if self._per_ip.get(ip, 0) >= limits.max_reservations_per_ip:
                return ReserveReject(nonce, self._refuse(PER_IP, "per_ip"))
            self._release_ip(existing.ip)
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
            existing.ip = ip
        # A refresh from a new address (the holder moved) follows it.
        existing.route = source
        existing.expires = now + limits.reservation_lifetime
        self.stats.reservations += 1
        return ReserveOk(nonce, limits.reservation_lifetime, source[0])

    def _remember(self, nonce: bytes, now: float) -> None:
        self._nonces[nonce] = now
        horizon = now - 2 * self.limits.max_skew
        while self._nonces and (
            len(self._nonces) > MAX_NONCES or next(iter(self._nonces.values())) < horizon
        ):
            self._nonces.popitem(last=False)

    def _release_ip(self, ip: str) -> None:
        left = self._per_ip.get(ip, 0) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)

    def _drop_reservation(self, did: str, reason: int) -> Outgoing:
        reservation = self._reservations.pop(did)
        self._release_ip(reservation.ip)
        out: Outgoing = []
        for circuit_id in list(reservation.circuits):
            out += self._end(circuit_id, reason)
        return out

    # -- circuits -----------------------------------------------------------------

    def _connect(self, packet: Connect, source: Route, now: float) -> ConnectOk | ConnectReject:
        limits = self.limits
        nonce = packet.nonce
        timestamp, initiator, signature = packet.timestamp_ms, packet.initiator, packet.signature
        if timestamp is None or initiator is None or signature is None:
            reason = self._refuse(UNAUTHENTICATED, "unauthenticated")
            return ConnectReject(nonce, reason, self.relay_did)
        if abs(timestamp / 1000.0 - now) > limits.max_skew or nonce in self._nonces:
            return ConnectReject(nonce, self._refuse(STALE, "connect_stale"))
        try:
            key = self._signing_key(initiator)
            signed = connect_signed_bytes(
                self.relay_did, initiator, packet.target, timestamp, nonce
            )
            primitives.ed25519_verify(key, signature, signed, what="relay CONNECT")
        except L2SessionError:
            reason = self._refuse(BAD_SIGNATURE, "connect_bad_signature")
            return ConnectReject(nonce, reason, self.relay_did)
        self._remember(nonce, now)
        reservation = self._reservations.get(packet.target)
        if reservation is None or reservation.expires <= now:
            return ConnectReject(packet.nonce, self._refuse(NO_RESERVATION, "no_reservation"))
        if len(self._circuits) >= limits.max_circuits or (
            len(reservation.circuits) >= limits.max_circuits_per_reservation
        ):
            return ConnectReject(packet.nonce, self._refuse(FULL, "circuits_full"))
        circuit_id = self._rng.random_bytes(CIRCUIT_ID_SIZE)
        while circuit_id in self._circuits:  # pragma: no cover - 2^-64
            circuit_id = self._rng.random_bytes(CIRCUIT_ID_SIZE)
        self._circuits[circuit_id] = _Circuit(source, initiator, packet.target, now, limits)
        reservation.circuits.add(circuit_id)
        self.stats.circuits_opened += 1
        return ConnectOk(
            packet.nonce,
            circuit_id,
            limits.circuit_max_bytes,
            limits.circuit_max_seconds,
            source[0],
        )

    def _end(self, circuit_id: bytes, reason: int) -> Outgoing:
        circuit = self._circuits.pop(circuit_id, None)
        if circuit is None:
            return []
        names = {BYTE_BUDGET: "bytes", DURATION: "duration", GONE: "reservation_gone"}
        name = names.get(reason, str(reason))
        self.stats.circuits_ended[name] = self.stats.circuits_ended.get(name, 0) + 1
        notice = encode_relay(CircuitEnd(circuit_id, reason))
        out: Outgoing = [(circuit.initiator, notice)]
        reservation = self._reservations.get(circuit.target)
        if reservation is not None:
            reservation.circuits.discard(circuit_id)
            out.append((reservation.route, notice))
        return out

    def _forward(self, packet: RelayData, data: bytes, source: Route, now: float) -> Outgoing:
        circuit = self._circuits.get(packet.circuit)
        reservation = None if circuit is None else self._reservations.get(circuit.target)
        if circuit is None or reservation is None:
            self.stats.dropped_foreign += 1
            return []
        if source == circuit.initiator:
            to = reservation.route
        elif source == reservation.route:
            to = circuit.initiator
        else:
            self.stats.dropped_foreign += 1  # a stranger guessing circuit ids
            return []
        if now >= circuit.expires:
            return self._end(packet.circuit, DURATION)
        size = len(packet.payload)
        limits = self.limits
        if circuit.bytes + size > limits.circuit_max_bytes:
            return self._end(packet.circuit, BYTE_BUDGET)
        circuit.tokens = min(
            float(limits.circuit_burst),
            circuit.tokens + max(0.0, now - circuit.last) * limits.circuit_rate,
        )
        circuit.last = max(circuit.last, now)
        if circuit.tokens < size:
            self.stats.dropped_rate += 1
            return []
        circuit.tokens -= size
        circuit.bytes += size
        self.stats.packets_forwarded += 1
        self.stats.bytes_forwarded += size
        return [(to, data)]  # the very bytes: the relay never rewrites a payload
