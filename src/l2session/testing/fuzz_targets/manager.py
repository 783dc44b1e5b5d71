"""The session manager fed whole datagrams, and :class:`Duo`, the
two-node kit the handshake fuzz tests (``tests/fuzz``) drive by hand.

Apart from :mod:`.session` because it runs two real
:class:`~l2session.core.management.manager.SessionManager` nodes on a simulation
rather than one decoder, and because :class:`Duo` is public.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from l2session.core.config import SessionConfig
from l2session.core.events import PacketRejected, SessionEvent
from l2session.core.management.manager import Outgoing
from l2session.core.states import State
from l2session.crypto.handshake_messages import TYPE_FINISH, TYPE_INIT, TYPE_RESPONSE
from l2session.testing.fuzz_targets._base import FuzzTarget, _handler, _require
from l2session.testing.fuzz_targets._fixtures import ENCAPSULATOR, _keys
from l2session.testing.fuzz_targets.wire import _packet_seeds
from l2session.testing.network import PATHS
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.packets import (
    PKT_BUNDLE,
    PKT_BUNDLE_REQUEST,
    PKT_DATA,
    PKT_HANDSHAKE,
    PKT_RESUME,
    PKT_RESUME_ACK,
    PKT_RESUME_EARLY,
    PKT_RESUME_REJECT,
)


def packet_kind(data: bytes) -> str:
    """A short name for a packet ("INIT", "DATA", ...) without decoding it
    fully: what the tests use to pick packets out of an outbox."""
    if len(data) < 2:
        return "?"
    kind = data[1]
    if kind == PKT_HANDSHAKE and len(data) > 19:
        return {TYPE_INIT: "INIT", TYPE_RESPONSE: "RESPONSE", TYPE_FINISH: "FINISH"}.get(
            data[19], "HANDSHAKE"
        )
    names = {
        PKT_BUNDLE_REQUEST: "BUNDLE_REQ",
        PKT_BUNDLE: "BUNDLE",
        PKT_DATA: "DATA",
        PKT_RESUME: "RESUME",
        PKT_RESUME_ACK: "RESUME_ACK",
        PKT_RESUME_REJECT: "RESUME_REJ",
        PKT_RESUME_EARLY: "RESUME_EARLY",
    }
    return names.get(kind, "?")


class Duo:
    """Alice and Bob as two real nodes (:class:`SessionManager` each, on one
    virtual clock) whose packets move only when the caller moves them, so a
    test can stop a handshake at any message and feed a mutation instead.

    Deterministic: the same keys, and the same handshake bytes, every time
    (fresh prekey pools from :func:`_keys`, :data:`ENCAPSULATOR`).
    """

    #: Rounds of delivery per :meth:`run_until` or :meth:`settle` at most
    #: (a handshake takes three).
    MAX_STEPS: Final = 64

    def __init__(self, seed: str = "fuzz duo", config: SessionConfig | None = None) -> None:
        self.sim = Simulation(seed)
        self.alice = self.add("alice", "alice", config)
        self.bob = self.add("bob", "bob", config)

    def add(self, name: str, keys: str, config: SessionConfig | None = None) -> SimNode:
        """A node named ``name`` with the keys of ``keys`` ("alice"/"bob")."""
        return self.sim.add_node(
            name, party=_keys(keys).party(), encapsulator=ENCAPSULATOR, config=config
        )

    def outbox(self, node: SimNode) -> list[Outgoing]:
        """What ``node`` sends now (its timers run first, at the same time)."""
        node.manager.tick()
        return node.manager.datagrams_to_send()

    def feed(self, node: SimNode, data: bytes, source: str) -> list[SessionEvent]:
        """``data`` arrives at ``node`` from ``source``; returns its events."""
        node.manager.receive_datagram(data, source, PATHS[0])
        return node.manager.events()

    def run_until(self, kind: str, *nodes: SimNode) -> tuple[SimNode, bytes]:
        """Deliver packets between ``nodes`` until one of them sends a
        packet of ``kind``; returns the sender and that packet, undelivered."""
        found = self._pump(nodes, kind)
        if found is None:
            raise RuntimeError(f"no {kind} packet was sent")
        return found

    def settle(self, *nodes: SimNode) -> None:
        """Deliver packets between ``nodes`` until none is left."""
        self._pump(nodes, None)

    def _pump(self, nodes: Sequence[SimNode], kind: str | None) -> tuple[SimNode, bytes] | None:
        for _ in range(self.MAX_STEPS):
            moved = False
            for sender in nodes:
                for out in self.outbox(sender):
                    if kind is not None and packet_kind(out.data) == kind:
                        return sender, out.data
                    self.feed(self._node_at(out.address), out.data, sender.address)
                    moved = True
            if not moved:
                return None
        raise RuntimeError(f"the nodes still exchange packets after {self.MAX_STEPS} rounds")

    def _node_at(self, address: str) -> SimNode:
        for node in self.sim.nodes.values():
            if node.address == address:
                return node
        raise RuntimeError(f"no node at {address!r}")


def rejected(events: Sequence[SessionEvent]) -> list[PacketRejected]:
    """The rejections among ``events``."""
    return [event for event in events if isinstance(event, PacketRejected)]


@dataclass(frozen=True, slots=True)
class _ManagerStage:
    finish: bytes
    init: bytes


def _manager_stage(duo: Duo) -> _ManagerStage:
    """Bob has answered Alice's INIT and waits for her FINISH."""
    duo.alice.manager.establish(duo.bob.did)
    _, init = duo.run_until("INIT", duo.alice, duo.bob)
    duo.feed(duo.bob, init, duo.alice.address)
    _, finish = duo.run_until("FINISH", duo.bob, duo.alice)
    return _ManagerStage(finish, init)


def _session_manager(data: bytes) -> bool:
    """SessionManager.receive_datagram never raises; a datagram it rejects
    leaves Bob's half-open session as it was, so that Alice's FINISH still
    completes the handshake."""
    duo = Duo()
    stage = _manager_stage(duo)
    session = duo.bob.session(duo.alice)
    assert session is not None
    handshake, state = session.handshake, session.state
    prekeys = duo.bob.party.prekeys.to_bytes()
    events = duo.feed(duo.bob, bytes(data), "mallory")
    if not rejected(events):
        return True
    _require(
        duo.bob.session(duo.alice) is session
        and session.handshake is handshake
        and session.state is state
        and duo.bob.party.prekeys.to_bytes() == prekeys,
        "a rejected datagram changed Bob's session",
    )
    duo.feed(duo.bob, stage.finish, duo.alice.address)
    _require(session.state is State.ESTABLISHED, "FINISH no longer completes the handshake")
    return False


@functools.cache
def _manager_seeds() -> tuple[bytes, ...]:
    duo = Duo()
    stage = _manager_stage(duo)
    return (stage.finish, stage.init, *_packet_seeds())


#: The target of the session manager (core/management/manager.py).
TARGETS: Final[tuple[FuzzTarget, ...]] = (
    _handler(
        "session_manager",
        ("l2session.core.management.manager:SessionManager.receive_datagram",),
        _session_manager,
        _manager_seeds,
        (),
        max_len=8192,
        cost=25,
    ),
)
