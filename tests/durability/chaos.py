"""Crashes of both kinds at random points, with a ledger of every promise.

:class:`Chaos` drives a :class:`~tests.durability.harness.Stream` between
two nodes on :class:`~l2session.store.memory.MemoryStore` journals and, at
points a seeded RNG chose, crashes one of them -- a process crash
(``crash()``: uncommitted writes lost) or a power cut (``power_cut()``:
also every commit no barrier covered, except a random prefix the disk
happened to keep) -- and restarts it from its store.  A crash point is a
number of delivered messages plus *where* the crash hits:

``receive``
    right after the victim processed a datagram, before it committed
    anything (mid-burst: the buffered writes of the burst are lost);
``send``
    right after the victim's ``datagrams_to_send`` committed and handed
    out its packets (they are on the wire: whatever they promised must be
    on disk; with no packets, the commit had no barrier and a power cut
    may take it back);
``step``
    between two turns of the applications;
``quiet``
    (power cuts only) the first time the victim's ``datagrams_to_send``
    committed something and sent nothing, so there was no barrier: commits
    only a power cut can take back.

The :class:`Ledger` records every resumption ticket and one-time prekey a
node accepted, across all its restarts; side nodes (``carol-N``) open full
handshakes to the receiver now and then so that one-time prekeys are spent
throughout; and after every restart every INIT and RESUME ever sent to the
restarted node is replayed to it.  A promise kept means: no ticket id and
no one-time prekey id is ever accepted twice.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from l2session.core.lifecycle.resumption import StoredSession
from l2session.crypto.handshake_messages import TYPE_INIT
from l2session.errors import MalformedMessage
from l2session.identity.prekeys import PrekeyStore
from l2session.store.memory import MemoryStore
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.packets import HandshakePacket, ResumePacket, decode_packet

from .harness import Stream

WHERE = ("receive", "send", "step")
#: Where replayed packets come from.
REPLAYER = "mallory"
KINDS = ("kill", "power")


@dataclass(frozen=True)
class CrashPoint:
    at_received: int
    victim: str
    kind: str
    where: str


@dataclass
class Ledger:
    """Every ticket and one-time prekey accepted, per node, ever.

    Accepting is a promise once the answer left: a node that crashed before
    any packet left after it consumed a ticket or prekey promised nothing
    (the initiator never heard back, and may try again), so consumptions
    wait in ``pending`` until the node next hands packets to the network."""

    tickets: list[tuple[str, bytes]] = field(default_factory=list)
    prekeys: list[tuple[str, int]] = field(default_factory=list)
    #: Per node DID: consumed, answer not yet sent.
    pending_tickets: dict[str, list[bytes]] = field(default_factory=dict)
    pending_prekeys: dict[str, list[int]] = field(default_factory=dict)
    replays_sent: int = 0

    def answered(self, did: str) -> None:
        """``did`` put packets on the network: its consumptions are promises."""
        self.tickets.extend((did, t) for t in self.pending_tickets.pop(did, ()))
        self.prekeys.extend((did, p) for p in self.pending_prekeys.pop(did, ()))

    def crashed(self, did: str) -> None:
        self.pending_tickets.pop(did, None)
        self.pending_prekeys.pop(did, None)

    def twice(self) -> tuple[list[tuple[str, bytes]], list[tuple[str, int]]]:
        """Tickets and one-time prekeys accepted more than once."""
        t = [k for k, n in Counter(self.tickets).items() if n > 1]
        p = [k for k, n in Counter(self.prekeys).items() if n > 1]
        return t, p


def schedule(
    rng: random.Random, total: int, crashes: int, sides: tuple[str, str]
) -> list[CrashPoint]:
    """``crashes`` crash points at random stream positions, each (side,
    kind) combination equally often, at random places."""
    combos = [(side, kind) for side in sides for kind in KINDS]
    picks = [combos[i % len(combos)] for i in range(crashes)]
    rng.shuffle(picks)
    positions = sorted(rng.sample(range(total // 50, total - total // 50), crashes))
    # Every other power cut hits right after a commit without a barrier
    # (where a power cut can lose what a kill cannot).
    return [
        CrashPoint(at, side, kind, "quiet" if kind == "power" and i % 4 < 2 else rng.choice(WHERE))
        for i, (at, (side, kind)) in enumerate(zip(positions, picks, strict=True))
    ]


class Chaos:
    """Applies the crash points, records promises, replays handshakes."""

    def __init__(
        self,
        sim: Simulation,
        stores: dict[str, MemoryStore],
        points: list[CrashPoint],
        rng: random.Random,
        *,
        side_handshake_every: int = 0,
        side_target: str = "bob",
        ledger: Ledger | None = None,
    ) -> None:
        self.sim, self.stores, self.rng = sim, stores, rng
        self.points = list(points)
        self.done: list[tuple[CrashPoint, int]] = []
        self.ledger = ledger if ledger is not None else Ledger()
        self.stream: Stream | None = None
        #: (source, destination, path, data) of every INIT and RESUME seen.
        self.openers: list[tuple[str, str, str, bytes]] = []
        self.side_every = side_handshake_every
        self.side_target = side_target
        self.side_nodes = 0
        self._restarting = False
        send = sim.network.send

        def tap(
            source: str,
            destination: str,
            path: str,
            data: bytes | bytearray | memoryview,
            now: float,
        ) -> None:
            if source != REPLAYER and _opener(bytes(data)):
                self.openers.append((source, destination, path, bytes(data)))
            send(source, destination, path, data, now)

        sim.network.send = tap  # type: ignore[method-assign]
        for name in stores:
            self._instrument(sim.nodes[name])

    # ------------------------------------------------------------------

    def on_step(self, stream: Stream) -> None:
        self.stream = stream
        self._maybe_crash("step", None)
        if self.side_every and len(stream.received) >= (self.side_nodes + 1) * self.side_every:
            self.side_nodes += 1
            carol = self.sim.add_node(f"carol-{self.side_nodes}")
            carol.manager.establish(self.sim.nodes[self.side_target].did)

    def _instrument(self, node: SimNode) -> None:
        manager, name = node.manager, node.name
        receive, to_send, consume = (
            manager.receive_datagram,
            manager.datagrams_to_send,
            manager.consume_ticket,
        )

        def receive_datagram(data: bytes, address: str, path: str) -> bool:
            authentic = receive(data, address, path)
            self._maybe_crash("receive", name)
            return authentic

        def datagrams_to_send() -> list:  # type: ignore[type-arg]
            out = to_send()
            if out:
                self.ledger.answered(node.did)
            self._maybe_crash("send", name)
            if not out and self.stores[name].unsynced:
                self._maybe_crash("quiet", name)
            return out

        def consume_ticket(stored: StoredSession, request: bytes, reply: bytes) -> None:
            self.ledger.pending_tickets.setdefault(node.did, []).append(stored.ticket_id)
            consume(stored, request, reply)

        manager.receive_datagram = receive_datagram  # type: ignore[method-assign]
        manager.datagrams_to_send = datagrams_to_send  # type: ignore[method-assign]
        manager.consume_ticket = consume_ticket  # type: ignore[method-assign]

    def _maybe_crash(self, where: str, name: str | None) -> None:
        if self._restarting or not self.points or self.stream is None:
            return
        point = self.points[0]
        if point.where != where or (name is not None and point.victim != name):
            return
        if len(self.stream.received) < point.at_received:
            return
        self.points.pop(0)
        store = self.stores[point.victim]
        lost = store.unsynced
        if point.kind == "kill":
            store.crash()
            lost = 0
        else:
            # The disk kept a random prefix of the unsynced commits, never
            # all of them (that case is a kill, tested as such).
            keep = self.rng.randint(0, max(0, store.unsynced - 1))
            store.power_cut(keep_unsynced=keep)
            lost -= keep
        self.ledger.crashed(self.sim.nodes[point.victim].did)
        self.done.append((point, lost))
        self._restarting = True
        try:
            node = self.sim.restart(point.victim, store)
            self._instrument(node)
            self._replay_to(point.victim)
        finally:
            self._restarting = False

    def _replay_to(self, victim: str) -> None:
        """Every distinct INIT and RESUME ever sent to ``victim``, again,
        from an attacker's address (so that the replays do not get the
        honest sender quarantined)."""
        now = self.sim.now
        seen: set[bytes] = set()
        for _source, dest, path, data in list(self.openers):
            if dest == victim and data not in seen:
                seen.add(data)
                self.sim.network.send(REPLAYER, dest, path, data, now)
                self.ledger.replays_sent += 1


def record_prekeys(ledger_of: Callable[[], Ledger]) -> Callable[[PrekeyStore, int], None]:
    """A replacement for ``PrekeyStore.consume_one_time_prekey`` that logs
    the prekey id as pending for its owner's DID in the current ledger."""
    real = PrekeyStore.consume_one_time_prekey

    def consume(self: PrekeyStore, prekey_id: int) -> None:
        ledger_of().pending_prekeys.setdefault(self.identity.did_text, []).append(prekey_id)
        real(self, prekey_id)

    return consume


def _opener(data: bytes) -> bool:
    """Whether ``data`` is a handshake INIT or a RESUME."""
    try:
        packet = decode_packet(data)
    except MalformedMessage:
        return False
    if isinstance(packet, ResumePacket):
        return True
    return isinstance(packet, HandshakePacket) and packet.message[1:2] == bytes([TYPE_INIT])
