"""Adversarial peers on the wire: every packet of a real conversation --
handshake, data, acknowledgements, heartbeats, a key rotation, a
resumption after a restart -- captured and played back later, and every
packet damaged bit by bit.  Each must be rejected *and counted*, change
nothing, and leave the session working.

Two nodes over the seeded simulation (virtual time); the captured packets
are fed straight into the victim's ``SessionManager.receive_datagram``, as
a packet from the network would be.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import pytest

from l2session.core.config import SessionConfig
from l2session.core.link.session import Session
from l2session.core.states import State
from l2session.store.memory import MemoryStore
from l2session.testing.recorder import Sent, record_wire
from l2session.testing.simulation import SimNode, Simulation, both_established
from l2session.wire.packets import (
    BundlePacket,
    BundleRequest,
    DataPacket,
    HandshakePacket,
    ResumeAckPacket,
    ResumePacket,
    decode_packet,
)

#: A rotation every 8 encrypted frames, so the capture holds some.
CONFIG = SessionConfig(rekey_after_messages=8, heartbeat_interval=5.0)


@dataclass
class Capture:
    sim: Simulation
    alice: SimNode
    bob: SimNode
    wire: list[Sent]

    def session(self, node: SimNode, peer: SimNode) -> Session:
        session = node.session(peer)
        assert session is not None
        return session


def kind_of(data: bytes) -> str:
    packet = decode_packet(data)
    if isinstance(packet, HandshakePacket):
        return {1: "init", 2: "response", 3: "finish"}.get(packet.message[1], "handshake")
    return {
        BundleRequest: "bundle_request",
        BundlePacket: "bundle",
        DataPacket: "data",
        ResumePacket: "resume",
        ResumeAckPacket: "resume_ack",
    }.get(type(packet), type(packet).__name__)


@pytest.fixture(scope="module")
def capture() -> Capture:
    """A whole conversation on record: PQXDH, messages both ways with a
    rotation, heartbeats on an idle session, then Bob restarts from his
    store and resumes, and more messages flow."""
    sim = Simulation("adversarial-replay")
    alice = sim.add_node("alice", config=CONFIG)
    store = MemoryStore()
    bob = sim.add_node("bob", config=CONFIG, store=store)
    wire = record_wire(sim)
    alice.manager.establish(bob.did)
    up = Capture(sim, alice, bob, wire)

    sim.run_until(lambda: both_established(alice, bob), timeout=30)
    for round_ in range(10):  # separate frames, so the rotation threshold is reached
        exchange(up, 5, f"before {round_}")
    sim.run_for(CONFIG.heartbeat_interval * 3)  # idle: heartbeats both ways
    bob.manager.commit()
    sim.network.isolate("bob", drop_in_flight=True)
    bob = sim.restart("bob", store)
    sim.network.rejoin("bob")
    up.bob = bob
    sim.run_until(lambda: both_established(alice, bob), timeout=30)
    exchange(up, 10, "after")
    # The capture has its rotations; from here on the keys only move if a
    # replayed packet moves them.
    for session in (up.session(alice, bob), up.session(bob, alice)):
        session.config = replace(CONFIG, rekey_after_messages=1 << 20)
    sim.run_until(
        lambda: up.session(alice, bob).rotation is None and up.session(bob, alice).rotation is None,
        timeout=30,
    )
    return up


def exchange(up: Capture, count: int, tag: str) -> None:
    """``count`` messages each way, each delivered once."""
    a, b = up.session(up.alice, up.bob), up.session(up.bob, up.alice)
    for i in range(count):
        a.send(f"{tag} a{i}".encode())
        b.send(f"{tag} b{i}".encode())
    got_a: list[bytes] = []
    got_b: list[bytes] = []

    def done() -> bool:
        got_a.extend(a.receive_many())
        got_b.extend(b.receive_many())
        return len(got_a) >= count and len(got_b) >= count and not a.queued and not b.queued

    up.sim.run_until(done, timeout=60)
    assert got_b == [f"{tag} a{i}".encode() for i in range(count)]
    assert got_a == [f"{tag} b{i}".encode() for i in range(count)]


def settled_epochs(up: Capture) -> tuple[int | None, int | None]:
    """Both key epochs (no rotation is under way: see the fixture)."""
    a, b = up.session(up.alice, up.bob), up.session(up.bob, up.alice)
    assert a.rotation is None
    assert b.rotation is None
    return a.key_epoch, b.key_epoch


def total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def replay(up: Capture, packets: list[Sent]) -> tuple[int, int]:
    """Feed ``packets`` again to their destinations; the number of packets
    and of rejections counted meanwhile (both nodes' managers)."""
    managers = {"alice": up.alice.manager, "bob": up.bob.manager}
    before = total(up.alice.manager.rejections) + total(up.bob.manager.rejections)
    for sent in packets:
        managers[sent.destination].receive_datagram(sent.data, sent.source, sent.path)
    up.sim.run_for(2)
    after = total(up.alice.manager.rejections) + total(up.bob.manager.rejections)
    return len(packets), after - before


def still_works(up: Capture, epochs: tuple[int | None, int | None]) -> None:
    a, b = up.session(up.alice, up.bob), up.session(up.bob, up.alice)
    assert a.state is State.ESTABLISHED
    assert b.state is State.ESTABLISHED
    assert (a.key_epoch, b.key_epoch) == epochs  # no replay moved the keys
    assert a.receive_many() == []  # nothing delivered a second time
    assert b.receive_many() == []
    exchange(up, 3, f"check {random.random()}")


KINDS = ["bundle", "response", "finish", "init", "data", "resume", "resume_ack"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_replayed_packet_is_rejected_counted_and_changes_nothing(
    capture: Capture, kind: str
) -> None:
    packets = [s for s in capture.wire if kind_of(s.data) == kind]
    assert packets, f"the capture has no {kind} packet"
    epochs = settled_epochs(capture)
    sent, counted = replay(capture, packets)
    assert counted == sent, f"{sent} {kind} packets replayed, {counted} rejections counted"
    still_works(capture, epochs)


def test_the_capture_covers_heartbeats_a_rotation_and_a_resumption(capture: Capture) -> None:
    kinds = {kind_of(s.data) for s in capture.wire}
    assert {"init", "response", "finish", "data", "resume", "resume_ack"} <= kinds
    a = capture.session(capture.alice, capture.bob)
    rotations = [r for r in a.history if r.target is State.ROTATING]
    assert len(rotations) >= 2  # rotation packets are in the capture
    reasons = [r.reason for r in capture.session(capture.bob, capture.alice).history]
    assert "resumed" in " ".join(reasons)


def test_every_bit_flip_in_data_packets_is_rejected_and_counted(capture: Capture) -> None:
    data = [s for s in capture.wire if kind_of(s.data) == "data" and s.source == "alice"]
    rng = random.Random(7)
    epochs = settled_epochs(capture)
    damaged: list[Sent] = []
    for sent in rng.sample(data, min(10, len(data))):
        for bit in range(len(sent.data) * 8):
            if bit < 64 * 8 or rng.random() < 0.05:  # every header bit, a sample after
                flipped = bytearray(sent.data)
                flipped[bit // 8] ^= 1 << (bit % 8)
                damaged.append(
                    Sent(sent.at, sent.source, sent.destination, sent.path, bytes(flipped))
                )
    sent_count, counted = replay(capture, damaged)
    assert sent_count > 1000
    assert counted == sent_count
    still_works(capture, epochs)
