"""The harness behind the executable SPEC-018 §2 scenarios.

Every scenario drives two real nodes, Alice and Bob (real identities, real
PQXDH with ML-KEM-768, real Double Ratchet), over the seeded MockNetwork on
virtual time.  Nothing in the session core is stubbed.  The :class:`World`
only *watches*:

* every datagram a node puts on the network (and may tamper with or drop
  one, as an attacker or a lossy link would);
* every record a channel seals or opens, and which node's channel it was
  (heartbeats, acknowledgements and rotation records travel encrypted, so
  this is the only place a test can see them);
* every call of a crypto primitive (ML-KEM, X25519, Ed25519), counted.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import pytest

from l2session.core.config import SessionConfig
from l2session.core.link.channel import Channel
from l2session.core.link.session import Session
from l2session.core.states import State, TransitionRecord
from l2session.crypto import primitives
from l2session.errors import MalformedMessage
from l2session.testing.network import LinkProfile
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.packets import DataPacket, HandshakePacket, Packet, decode_packet
from l2session.wire.records import Message, Record

P = ParamSpec("P")
T = TypeVar("T")

#: The crypto primitives counted (module attributes of l2session.crypto.primitives;
#: every caller reaches them as ``primitives.<name>``).
COUNTED: tuple[str, ...] = (
    "mlkem_generate",
    "mlkem_from_seed",
    "mlkem_encapsulate",
    "mlkem_decapsulate",
    "x25519_generate",
    "x25519",
    "ed25519_sign",
    "ed25519_verify",
)
MLKEM: tuple[str, ...] = COUNTED[:4]
#: The mock network's one-way delay (its default profile).
LATENCY = LinkProfile().latency
EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Sent:
    """A datagram a node put on the network (after any tampering)."""

    at: float
    source: str
    destination: str
    path: str
    data: bytes
    packet: Packet | None

    @property
    def handshake_type(self) -> int | None:
        """INIT, RESPONSE or FINISH for a PQXDH handshake packet."""
        if isinstance(self.packet, HandshakePacket) and len(self.packet.message) > 1:
            return self.packet.message[1]
        return None


@dataclass(frozen=True, slots=True)
class Sealed:
    """Records one node's channel encrypted into a DATA packet."""

    at: float
    node: str
    epoch: int
    records: tuple[Record, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    """Records one node's channel authenticated and decrypted."""

    at: float
    node: str
    epoch: int
    records: tuple[Record, ...]


def _counting(counter: Counter[str], name: str, func: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        counter[name] += 1
        return func(*args, **kwargs)

    return wrapper


class World:
    """One scenario's simulation and everything observed in it.

    ``role`` names map the scenario's characters to simulation nodes
    (Alice restarts as node "alice2" in the resumption scenario).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self._sim: Simulation | None = None
        self.role = {"alice": "alice", "bob": "bob"}
        self.sent: list[Sent] = []
        self.dropped: list[Sent] = []
        self.sealed: list[Sealed] = []
        self.opened: list[Opened] = []
        self.crypto: Counter[str] = Counter()
        #: Sees each datagram before the network does: return the bytes to
        #: send (possibly altered), or None to drop it.
        self.tamper: Callable[[Sent], bytes | None] | None = None
        #: Points in virtual time a scenario remembers between steps.
        self.marks: dict[str, float] = {}
        #: Application messages each role sent, and received, in order.
        self.outbox: dict[str, list[bytes]] = {"alice": [], "bob": []}
        self.inbox: dict[str, list[bytes]] = {"alice": [], "bob": []}
        #: What a scenario keeps to compare with later (see :meth:`keep`).
        self.kept: dict[str, Session] = {}
        self.kept_ids: dict[str, bytes | None] = {}
        self.kept_history: dict[str, tuple[TransitionRecord, ...]] = {}
        #: A persisted resumption ticket (StoredSession bytes).
        self.ticket = b""
        #: Key material of an earlier key epoch (a channel's lineage key).
        self.lineage = b""
        self._install_probes()

    # ------------------------------------------------------------------
    # set-up

    def _install_probes(self) -> None:
        mp = self._monkeypatch
        for name in COUNTED:
            mp.setattr(primitives, name, _counting(self.crypto, name, getattr(primitives, name)))
        seal, open_ = Channel.seal, Channel.open

        def sealing(channel: Channel, records: list[Record], now: float | None = None) -> bytes:
            epoch = channel.send_epoch
            data = seal(channel, records, now)
            self.sealed.append(
                Sealed(self.now, self.owner_of(channel), epoch, tuple(records), data)
            )
            return data

        def opening(channel: Channel, packet: DataPacket) -> list[Record]:
            records = open_(channel, packet)
            self.opened.append(
                Opened(self.now, self.owner_of(channel), packet.epoch, tuple(records))
            )
            return records

        mp.setattr(Channel, "seal", sealing)
        mp.setattr(Channel, "open", opening)

    def start(
        self,
        *,
        config: SessionConfig | None = None,
        report_connectivity: bool = False,
        seed: str = "spec-018",
    ) -> Simulation:
        sim = Simulation(seed, report_connectivity=report_connectivity)
        sim.add_node("alice", config=config)
        sim.add_node("bob", config=config)
        send = sim.network.send

        def recording(source: str, destination: str, path: str, data: bytes, now: float) -> None:
            sent = Sent(now, source, destination, path, data, _decode(data))
            if self.tamper is not None:
                altered = self.tamper(sent)
                if altered is None:
                    self.dropped.append(sent)
                    return
                if altered != data:
                    sent = Sent(now, source, destination, path, altered, _decode(altered))
            self.sent.append(sent)
            send(source, destination, path, sent.data, now)

        self._monkeypatch.setattr(sim.network, "send", recording)
        self._sim = sim
        return sim

    # ------------------------------------------------------------------
    # access

    @property
    def sim(self) -> Simulation:
        assert self._sim is not None, "no simulation yet: a Given step starts one"
        return self._sim

    @property
    def now(self) -> float:
        return self._sim.now if self._sim is not None else 0.0

    def node(self, role: str) -> SimNode:
        return self.sim.nodes[self.role[role]]

    @property
    def alice(self) -> SimNode:
        return self.node("alice")

    @property
    def bob(self) -> SimNode:
        return self.node("bob")

    def session(self, role: str = "alice") -> Session:
        peer = "bob" if role == "alice" else "alice"
        session = self.node(role).session(self.node(peer).did)
        assert session is not None, f"{role} has no session with {peer}"
        return session

    def owner_of(self, channel: Channel) -> str:
        if self._sim is not None:
            for node in self._sim.nodes.values():
                for session in node.manager.sessions.values():
                    if session.channel is channel:
                        return node.name
        return "?"

    def transitions(self, role: str = "alice") -> list[tuple[str, str, str]]:
        return [
            (r.source.value, r.target.value if r.target else "closed", r.trigger.value)
            for r in self.session(role).history
        ]

    def sealed_by(self, role: str, kind: type[Record], since: float = 0.0) -> list[Sealed]:
        name = self.role[role]
        return [
            s
            for s in self.sealed
            if s.node == name and s.at >= since and any(isinstance(r, kind) for r in s.records)
        ]

    def opened_by(self, role: str, kind: type[Record], since: float = 0.0) -> list[Opened]:
        name = self.role[role]
        return [
            o
            for o in self.opened
            if o.node == name and o.at >= since and any(isinstance(r, kind) for r in o.records)
        ]

    def sent_by(self, role: str, since: float = 0.0) -> list[Sent]:
        name = self.role[role]
        return [s for s in self.sent if s.source == name and s.at >= since]

    def keep(self) -> None:
        """Remember both sessions as they are now: object, id, audit trail."""
        for role in ("alice", "bob"):
            session = self.session(role)
            self.kept[role] = session
            self.kept_ids[role] = session.session_id
            self.kept_history[role] = session.history

    def assert_kept(self, *, history: bool = False) -> None:
        """The application still holds the same sessions, under the same
        keys (no re-handshake), and with ``history`` not one transition more."""
        for role in ("alice", "bob"):
            session = self.session(role)
            assert session is self.kept[role]
            assert not session.closed
            assert session.session_id == self.kept_ids[role]
            if history:
                assert session.history == self.kept_history[role]

    # ------------------------------------------------------------------
    # driving

    def both_established(self) -> bool:
        sessions = [
            self.node(r).session(self.node(p).did) for r, p in (("alice", "bob"), ("bob", "alice"))
        ]
        return all(s is not None and s.state is State.ESTABLISHED for s in sessions)

    def establish(self) -> Session:
        """Alice opens a session with Bob; both reach ``established`` and
        the first acknowledgements settle."""
        session = self.alice.manager.establish(self.bob.did)
        self.sim.run_until(self.both_established, timeout=10)
        self.sim.run_for(0.2)
        assert self.both_established()
        return session

    def send(self, role: str, payload: bytes) -> None:
        """The application sends; no error may reach it."""
        self.session(role).send(payload)
        self.outbox[role].append(payload)

    def drain(self) -> None:
        for role in ("alice", "bob"):
            session = self.session(role)
            while (message := session.try_receive()) is not None:
                self.inbox[role].append(message)

    def delivered(self) -> bool:
        self.drain()
        return all(
            len(self.inbox[role]) >= len(self.outbox[peer])
            for role, peer in (("alice", "bob"), ("bob", "alice"))
        )

    def assert_exactly_once_in_order(self, *, timeout: float = 30.0) -> None:
        """Every message sent arrives, once, in order, and nothing more
        arrives later; both send queues empty (all acknowledged)."""
        self.sim.run_until(self.delivered, timeout=timeout)
        self.sim.run_until(
            lambda: self.session("alice").queued == 0 and self.session("bob").queued == 0,
            timeout=timeout,
        )
        self.sim.run_for(5.0)
        self.drain()
        assert self.inbox["bob"] == self.outbox["alice"], "Bob did not get Alice's messages"
        assert self.inbox["alice"] == self.outbox["bob"], "Alice did not get Bob's messages"


def _decode(data: bytes) -> Packet | None:
    try:
        return decode_packet(data)
    except MalformedMessage:
        return None


def record_of(session: Session, target: State) -> TransitionRecord:
    """The most recent transition of ``session`` into ``target``."""
    for record in reversed(session.history):
        if record.target is target:
            return record
    raise AssertionError(f"{session!r} never entered {target.value}: {session.history}")


def has_message(sealed: Sealed) -> bool:
    return any(isinstance(r, Message) for r in sealed.records)
