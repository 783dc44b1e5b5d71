"""The ``"relay"`` path: session packets through a relay (client side).

A relayed route is one more path of a session (DESIGN.md §2.10): the core
sends to ``(address, "relay")`` like to QUIC or μTCP, and this transport
wraps each packet in RELAY_DATA to the relay, which forwards it unread.
Relay addresses have two forms, both ``RELAY_HOST:PORT/...``:

* ``relay/DID`` -- the dialling side: "the node DID, through that relay".
  The first packet opens a circuit (CONNECT, answered CONNECT_OK with the
  circuit id; packets wait in a bounded queue meanwhile); a refusal or no
  answer within ``connect_timeout`` is reported as ``path_down``.  CONNECT
  is signed with the node's DID key, bound to the relay's DID and the
  target: the relay's DID is known from a reservation there, else learnt
  from the relay's refusal of an unsigned CONNECT (CONNECT_REJ
  ``UNAUTHENTICATED`` names it), after which one signed CONNECT follows.
* ``relay/~CIRCUIT`` -- the reserved side: a circuit a peer opened to us.
  It is routed only by that circuit (:meth:`dialable` is False): when the
  circuit ends, the peer comes back by opening a new one.

Reservations: for every configured relay (``(relay DID, host:port)``) the
transport sends RESERVE, signed with the node's DID key and bound to the
relay's DID, resends it every second until RESERVE_OK, and refreshes it at
half its lifetime or every ``keepalive`` seconds, whichever comes first
(this keeps our connection to the relay, and the NAT's mapping for it,
alive).  Only relays we hold a reservation on may open circuits
to us.  The relay packets travel on the node's other transports (the
``inner`` callable the node passes), which also tell this transport when
the connection to a relay is lost (:meth:`relay_lost`): every circuit
through it is reported down, so sessions fail over to their next route.
A relay that went silent -- circuits through it carried packets for
``silence_timeout`` seconds and nothing came back from it (a relay killed
without closing its connections looks like that until QUIC's idle
timeout) -- is declared lost the same way, and ``lost`` is called so the
node drops its connection to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from l2session.crypto import primitives
from l2session.crypto.rng import RandomSource
from l2session.errors import MalformedMessage, TransportFailed
from l2session.identity.identity import Identity
from l2session.transports.address import format_address, parse_address
from l2session.transports.base import TransportListener, TransportStats
from l2session.wire.relay import (
    BAD_SIGNATURE,
    NONCE_SIZE,
    REASONS,
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

PATH: Final = "relay"
#: Packets (and bytes) queued per address while its circuit opens.
MAX_PENDING_PACKETS: Final = 256
MAX_PENDING_BYTES: Final = 4 << 20
#: RESERVE and CONNECT are resent this often while unanswered.
RESEND: Final = 1.0
#: After a refused reservation, try again this much later.
RESERVE_BACKOFF: Final = 30.0
#: Relays' DIDs remembered (learnt from their refusals; oldest forgotten).
MAX_RELAY_DIDS: Final = 1024

log = logging.getLogger(__name__)


def relay_address(relay: str, did: str) -> str:
    """The route to ``did`` through ``relay`` (``host:port``)."""
    return f"{format_address(*parse_address(relay))}/{did}"


def split(address: str) -> tuple[str, str] | None:
    """``(relay host:port, DID or ~circuit)`` of a relay address, else None."""
    relay, sep, rest = address.partition("/")
    if not sep or not rest:
        return None
    return relay, rest


@dataclass(slots=True)
class Reservation:
    """Our reservation at one relay, as the relay last answered."""

    relay_did: str
    relay: str
    nonce: bytes = b""
    #: Wall-clock seconds until which the relay holds it (0: not reserved).
    until: float = 0.0
    #: Our address as the relay sees it (the reflexive address of our
    #: session socket).
    observed: str | None = None
    error: str | None = None
    #: Wall-clock seconds when the next RESERVE goes out.
    next_at: float = 0.0


class _Opening:
    __slots__ = ("address", "nbytes", "nonce", "queue", "relay", "signed", "started", "target")

    def __init__(self, address: str, relay: str, target: str, nonce: bytes, now: float) -> None:
        self.address, self.relay, self.target, self.nonce = address, relay, target, nonce
        self.queue: list[bytes] = []
        self.nbytes = 0
        self.started = now
        #: Whether the CONNECT in flight is signed (a refused signed one is
        #: not retried: at most one unsigned and one signed per opening).
        self.signed = False


class RelayTransport:
    """The relay path of a node (see the module docstring)."""

    name = PATH

    def __init__(
        self,
        identity: Identity,
        inner: Callable[[str, bytes], None],
        wall_clock: Callable[[], float],
        rng: RandomSource,
        *,
        relays: Sequence[tuple[str, str]] = (),
        connect_timeout: float = 5.0,
        silence_timeout: float = 5.0,
        keepalive: float = 15.0,
        lost: Callable[[str], None] | None = None,
    ) -> None:
        self.identity = identity
        self.stats = TransportStats()
        self.connect_timeout = connect_timeout
        self.silence_timeout = silence_timeout
        self.keepalive = keepalive
        self._lost_hook = lost
        #: Loop time a packet last came from / went through each relay.
        self._heard: dict[str, float] = {}
        self._sent: dict[str, float] = {}
        self._inner = inner
        self._wall = wall_clock
        self._rng = rng
        self.reservations = {
            format_address(*parse_address(address)): Reservation(did, address)
            for did, address in relays
        }
        self._listener: TransportListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: Our address as each relay saw us when we opened a circuit there.
        self._observed: dict[str, str] = {}
        #: address -> (relay, circuit id), and (relay, circuit id) -> address.
        self._circuit_of: dict[str, tuple[str, bytes]] = {}
        self._address_of: dict[tuple[str, bytes], str] = {}
        self._opening: dict[str, _Opening] = {}
        self._by_nonce: dict[bytes, _Opening] = {}
        #: Relay address -> its DID (CONNECT signatures are bound to it).
        self._relay_dids: dict[str, str] = {
            address: reservation.relay_did for address, reservation in self.reservations.items()
        }
        self._closed = False

    # -- Transport ------------------------------------------------------------------

    async def start(self, listener: TransportListener, host: str, port: int) -> int:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._tick()
        return 0

    def send(self, address: str, data: bytes) -> None:
        circuit = self._circuit_of.get(address)
        if circuit is not None:
            self._wrap(circuit, data)
            return
        opening = self._opening.get(address) or self._open(address)
        if opening is None or (
            len(opening.queue) >= MAX_PENDING_PACKETS
            or opening.nbytes + len(data) > MAX_PENDING_BYTES
        ):
            self.stats.dropped += 1
            return
        opening.queue.append(data)
        opening.nbytes += len(data)

    def is_connected(self, address: str) -> bool:
        return address in self._circuit_of

    def progressed(self, address: str) -> bool:
        return address in self._circuit_of

    def dialable(self, address: str) -> bool:
        """False for ``relay/~circuit`` (only the peer can open a circuit
        to us again); no opinion (True) on other addresses."""
        parts = split(address)
        return parts is None or not parts[1].startswith("~")

    def confirm(self, address: str) -> None:
        """Nothing to do: a circuit is the relay's, keyed by an id the relay
        chose and forwarded only between the circuit's two ends."""

    def probe(self, address: str) -> None:
        if address not in self._circuit_of and address not in self._opening:
            self._open(address)

    def disconnect(self, address: str) -> None:
        circuit = self._circuit_of.pop(address, None)
        if circuit is not None:
            self._address_of.pop(circuit, None)
        opening = self._opening.pop(address, None)
        if opening is not None:
            self._by_nonce.pop(opening.nonce, None)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- what the node hands us -------------------------------------------------------

    def relay_packet(self, data: bytes, source: str) -> None:
        """A relay packet arrived from ``source`` (a relay's address)."""
        try:
            packet = decode_relay(data)
        except MalformedMessage:
            self.stats.malformed += 1
            return
        self.stats.packets_received += 1
        self.stats.bytes_received += len(data)
        if self._loop is not None:
            self._heard[source] = self._loop.time()
        if isinstance(packet, RelayData):
            self._relayed(packet, source)
        elif isinstance(packet, ConnectOk):
            self._connected(packet, source)
        elif isinstance(packet, ConnectReject):
            self._refused(packet, source)
        elif isinstance(packet, CircuitEnd):
            address = self._address_of.get((source, packet.circuit))
            if address is not None:
                self.disconnect(address)
                self._down(address, REASONS.get(packet.reason, str(packet.reason)))
        elif isinstance(packet, ReserveOk | ReserveReject):
            self._reserved(packet, source)
        else:
            self.stats.malformed += 1  # a request: we are not this relay

    def relay_lost(self, relay: str, reason: str) -> None:
        """The connection to ``relay`` is gone: its circuits (and our
        reservation there) went with it."""
        log.info("relay %s lost: %s", relay, reason)
        reservation = self.reservations.get(relay)
        if reservation is not None:
            reservation.until = 0.0
            reservation.error = reason
            reservation.next_at = 0.0  # reserve again at once (on the next path)
        for address, (via, _) in list(self._circuit_of.items()):
            if via == relay:
                self.disconnect(address)
                self._down(address, f"relay {relay} lost: {reason}")
        for address, opening in list(self._opening.items()):
            if opening.relay == relay:
                self.disconnect(address)
                self._down(address, f"relay {relay} lost: {reason}")

    # -- internals -------------------------------------------------------------------------

    def _wrap(self, circuit: tuple[str, bytes], data: bytes) -> None:
        packet = encode_relay(RelayData(circuit[1], data))
        if self._loop is not None:
            now = self._loop.time()
            if circuit[0] not in self._sent or now - self._sent[circuit[0]] > self.silence_timeout:
                self._heard.setdefault(circuit[0], now)  # silence counts from here
            self._sent[circuit[0]] = now
        self.stats.packets_sent += 1
        self.stats.bytes_sent += len(packet)
        self._inner(circuit[0], packet)

    def _open(self, address: str) -> _Opening | None:
        parts = split(address)
        if parts is None or parts[1].startswith("~") or self._closed or self._loop is None:
            self.stats.extra["not_dialled"] = self.stats.extra.get("not_dialled", 0) + 1
            return None
        relay, target = parts
        opening = _Opening(address, relay, target, b"", self._loop.time())
        self._opening[address] = opening
        self.stats.connects += 1
        self._send_connect(opening)
        return opening

    def _send_connect(self, opening: _Opening) -> None:
        """CONNECT for ``opening`` with a fresh nonce: signed when the
        relay's DID is known, else unsigned (the relay's refusal names it)."""
        nonce = self._rng.random_bytes(NONCE_SIZE)
        self._by_nonce.pop(opening.nonce, None)
        opening.nonce = nonce
        self._by_nonce[nonce] = opening
        relay_did = self._relay_dids.get(opening.relay)
        if relay_did is None:
            packet = Connect(nonce, opening.target)
        else:
            opening.signed = True
            me = self.identity.did_text
            timestamp = int(self._wall() * 1000)
            signed = connect_signed_bytes(relay_did, me, opening.target, timestamp, nonce)
            signature = primitives.ed25519_sign(self.identity.signing, signed)
            packet = Connect(nonce, opening.target, timestamp, me, signature)
        self._inner(opening.relay, encode_relay(packet))

    def _connected(self, packet: ConnectOk, source: str) -> None:
        opening = self._by_nonce.pop(packet.nonce, None)
        if opening is None or opening.relay != source:
            self.stats.extra["unsolicited"] = self.stats.extra.get("unsolicited", 0) + 1
            return
        self._opening.pop(opening.address, None)
        self._observed[source] = packet.observed
        circuit = (source, packet.circuit)
        self._circuit_of[opening.address] = circuit
        self._address_of[circuit] = opening.address
        for data in opening.queue:
            self._wrap(circuit, data)
        if self._listener is not None:
            self._listener.path_up(opening.address, PATH)

    def _refused(self, packet: ConnectReject, source: str) -> None:
        opening = self._by_nonce.get(packet.nonce)
        if opening is None or opening.relay != source:
            return
        del self._by_nonce[packet.nonce]
        reason = REASONS.get(packet.reason, str(packet.reason))
        relay_did = packet.relay_did
        if (
            packet.reason in (UNAUTHENTICATED, BAD_SIGNATURE)
            and relay_did is not None
            and not opening.signed
        ):
            # The relay told us its DID: sign a CONNECT bound to it (once).
            self._relay_dids.pop(source, None)
            self._relay_dids[source] = relay_did
            while len(self._relay_dids) > MAX_RELAY_DIDS:
                del self._relay_dids[next(iter(self._relay_dids))]
            self.stats.extra["connect_signed_retry"] = (
                self.stats.extra.get("connect_signed_retry", 0) + 1
            )
            self._send_connect(opening)
            return
        self._opening.pop(opening.address, None)
        self.stats.connect_failures += 1
        self.stats.dropped += len(opening.queue)
        self._down(opening.address, f"relay refused the circuit: {reason}")

    def _relayed(self, packet: RelayData, source: str) -> None:
        circuit = (source, packet.circuit)
        address = self._address_of.get(circuit)
        if address is None:
            reservation = self.reservations.get(source)
            if reservation is None or not reservation.until:
                self.stats.extra["foreign"] = self.stats.extra.get("foreign", 0) + 1
                return  # only a relay we reserved on opens circuits to us
            address = f"{source}/~{packet.circuit.hex()}"
            self._circuit_of[address] = circuit
            self._address_of[circuit] = address
            self.stats.accepted += 1
            if self._listener is not None:
                self._listener.path_up(address, PATH)
        if self._listener is not None:
            self._listener.packet_received(packet.payload, address, PATH)

    def _down(self, address: str, reason: str) -> None:
        if self._listener is not None and not self._closed:
            self._listener.path_down(address, PATH, reason)

    def _reserved(self, packet: ReserveOk | ReserveReject, source: str) -> None:
        reservation = self.reservations.get(source)
        if reservation is None or not primitives.ct_equal(packet.nonce, reservation.nonce):
            self.stats.extra["unsolicited"] = self.stats.extra.get("unsolicited", 0) + 1
            return
        now = self._wall()
        if isinstance(packet, ReserveOk):
            if not reservation.until:
                log.info("reserved at relay %s (seen as %s)", source, packet.observed)
            reservation.until = now + packet.lifetime
            reservation.next_at = now + max(RESEND, min(packet.lifetime / 2, self.keepalive))
            reservation.observed = packet.observed
            reservation.error = None
        else:
            reservation.until = 0.0
            reservation.next_at = now + RESERVE_BACKOFF
            reservation.error = REASONS.get(packet.reason, str(packet.reason))
            log.warning("relay %s refused our reservation: %s", source, reservation.error)
        reservation.nonce = b""

    def _send_reserve(self, reservation: Reservation) -> None:
        if self._closed:
            return
        nonce = self._rng.random_bytes(NONCE_SIZE)
        reservation.nonce = nonce
        now = self._wall()
        reservation.next_at = now + RESEND  # again, unless answered
        timestamp = int(now * 1000)
        did = self.identity.did_text
        signed = reserve_signed_bytes(reservation.relay_did, did, timestamp, nonce)
        signature = primitives.ed25519_sign(self.identity.signing, signed)
        self._inner(reservation.relay, encode_relay(Reserve(timestamp, nonce, did, signature)))

    def _tick(self) -> None:
        """Once a second: (re)send reservations that are due (RESERVE is
        idempotent: a copy refreshes), give up on circuits that did not
        open in time."""
        self._timer = None
        if self._closed or self._loop is None:
            return
        now = self._wall()
        for reservation in self.reservations.values():
            if reservation.until and now >= reservation.until:
                reservation.until = 0.0  # lapsed (the relay forgot it too)
            if now >= reservation.next_at:
                self._send_reserve(reservation)
        loop_now = self._loop.time()
        for relay in {via for via, _ in self._circuit_of.values()}:
            sent, heard = self._sent.get(relay, 0.0), self._heard.get(relay, loop_now)
            if loop_now - sent < self.silence_timeout and sent - heard > self.silence_timeout:
                self.stats.extra["silent_relays"] = self.stats.extra.get("silent_relays", 0) + 1
                reason = f"nothing heard for {self.silence_timeout:g} s"
                self._heard.pop(relay, None)
                self._sent.pop(relay, None)
                if self._lost_hook is not None:
                    self._lost_hook(relay)
                self.relay_lost(relay, reason)
        for address, opening in list(self._opening.items()):
            if loop_now - opening.started > self.connect_timeout:
                self._by_nonce.pop(opening.nonce, None)
                self._opening.pop(address, None)
                self.stats.connect_failures += 1
                self.stats.dropped += len(opening.queue)
                self._down(address, f"no answer from relay {opening.relay}")
            # No resend: CONNECT rides a QUIC stream or μTCP (reliable), and
            # a copy would open a second circuit at the relay.
        self._timer = self._loop.call_later(RESEND, self._tick)

    def observed(self, address: str) -> str | None:
        """Our reflexive address as the relay of route ``address`` saw it
        (from RESERVE_OK or CONNECT_OK), or None."""
        parts = split(address)
        if parts is None:
            return None
        reservation = self.reservations.get(parts[0])
        if reservation is not None and reservation.observed is not None:
            return reservation.observed
        return self._observed.get(parts[0])

    def reserved(self, relay: str) -> bool:
        """Whether we hold a live reservation at ``relay`` (host:port)."""
        reservation = self.reservations.get(relay)
        return reservation is not None and reservation.until > self._wall()


def check_relay_address(address: str) -> None:
    """Raise TransportFailed unless ``address`` is a relay address."""
    if split(address) is None:
        raise TransportFailed(f"{address!r} is not a relay address (relay host:port/DID)")
