"""0-RTT resumption (docs/PROTOCOL.md §6.5) on the seeded simulation.

The resuming side's queued messages travel in its RESUME (RESUME_EARLY):
they arrive one one-way delay after the restart instead of three, with
their ordinary stream sequence numbers, screened by the Membrane, and at
most once however the first flight is replayed -- before and after the
responder restarts, and across a responder crash before its commit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from l2session.core.config import SessionConfig
from l2session.core.events import MessageDenied
from l2session.core.lifecycle import early
from l2session.core.link.envelope import Request
from l2session.core.link.session import Session
from l2session.core.states import State
from l2session.errors import MalformedMessage
from l2session.store.memory import MemoryStore
from l2session.testing.network import LinkProfile
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.packets import (
    PKT_RESUME_EARLY,
    ResumeEarlyPacket,
    decode_packet,
    encode_packet,
)
from l2session.wire.records import Message, Record, Sync

LATENCY = 0.05


class Recorder:
    """Counts and keeps every datagram the network carries."""

    def __init__(self, sim: Simulation) -> None:
        self.sent: Counter[str] = Counter()
        self.flights: list[bytes] = []
        network = sim.network
        original = network.send

        def send(source: str, destination: str, path: str, data: bytes, now: float) -> None:
            self.sent[type(decode_packet(data)).__name__] += 1
            if data[1] == PKT_RESUME_EARLY:
                self.flights.append(data)
            original(source, destination, path, data, now)

        network.send = send  # type: ignore[method-assign,assignment]


def _established(node: SimNode, peer: SimNode) -> bool:
    session = node.session(peer)
    return session is not None and session.state is State.ESTABLISHED


def _setup(
    seed: str,
    *,
    alice_config: SessionConfig | None = None,
    bob_config: SessionConfig | None = None,
) -> tuple[Simulation, SimNode, SimNode, MemoryStore, MemoryStore]:
    sim = Simulation(seed, profile=LinkProfile(latency=LATENCY))
    alice_store, bob_store = MemoryStore(), MemoryStore()
    alice = sim.add_node("alice", config=alice_config, store=alice_store)
    bob = sim.add_node("bob", config=bob_config, store=bob_store)
    alice.manager.establish(bob.did)
    sim.run_until(lambda: _established(alice, bob) and _established(bob, alice), timeout=10)
    return sim, alice, bob, alice_store, bob_store


def _restart_with_queue(
    sim: Simulation, alice: SimNode, bob: SimNode, store: MemoryStore, count: int
) -> tuple[SimNode, list[int]]:
    """Alice queues ``count`` messages while cut off, then restarts: her
    restored session resumes with them queued."""
    session = alice.session(bob)
    assert session is not None
    sim.network.partition("alice", "bob")
    seqs = [session.send(b"early %d" % i) for i in range(count)]
    sim.run_for(0.2)
    store.commit()
    restarted = sim.restart("alice", store)
    sim.network.heal("alice", "bob")
    return restarted, seqs


def _gather(session: Session, into: list[bytes], count: int) -> bool:
    into.extend(session.receive_many())
    return len(into) >= count


def _collect(sim: Simulation, session: Session, count: int, timeout: float = 10) -> float:
    got: list[bytes] = []

    def done() -> bool:
        got.extend(session.receive_many())
        return len(got) >= count

    took = sim.run_until(done, timeout=timeout)
    assert got == [b"early %d" % i for i in range(count)]
    return took


def test_queued_messages_ride_in_the_resume_and_arrive_after_one_way() -> None:
    sim, alice, bob, alice_store, _ = _setup("0rtt-basic")
    alice, seqs = _restart_with_queue(sim, alice, bob, alice_store, 5)
    recorder = Recorder(sim)
    b = bob.session(alice)
    assert b is not None
    start = sim.now
    deliveries = []

    def done() -> bool:
        deliveries.extend(b.receive_deliveries())
        return len(deliveries) >= 5

    took = sim.run_until(done, timeout=10)
    assert took == pytest.approx(LATENCY)  # one one-way delay: no round trip first
    assert [d.seq for d in deliveries] == seqs  # the ordinary stream numbers
    assert bob.manager.early_flights == 1
    a = alice.session(bob)
    assert a is not None
    sim.run_until(lambda: a.queued == 0, timeout=10)
    # One flight, one answer, bob's SYNC+ACK; the early messages were not resent.
    assert recorder.sent == Counter(ResumeEarlyPacket=1, ResumeAckPacket=1, DataPacket=1)
    assert a.state is State.ESTABLISHED
    assert sim.now - start < 3 * LATENCY


def test_one_rtt_resumption_takes_three_one_way_delays() -> None:
    off = SessionConfig(early_data_bytes=0)
    sim, alice, bob, alice_store, _ = _setup("0rtt-off", alice_config=off, bob_config=off)
    alice, _ = _restart_with_queue(sim, alice, bob, alice_store, 5)
    recorder = Recorder(sim)
    b = bob.session(alice)
    assert b is not None
    took = _collect(sim, b, 5)
    assert took == pytest.approx(3 * LATENCY)
    assert recorder.sent["ResumeEarlyPacket"] == 0
    assert recorder.sent["ResumePacket"] == 1
    assert bob.manager.early_flights == 0


def test_a_responder_without_0rtt_ignores_early_data_and_the_sync_resends_it() -> None:
    sim, alice, bob, alice_store, _ = _setup(
        "0rtt-ignored", bob_config=SessionConfig(early_data_bytes=0)
    )
    alice, _ = _restart_with_queue(sim, alice, bob, alice_store, 3)
    recorder = Recorder(sim)
    b = bob.session(alice)
    assert b is not None
    took = _collect(sim, b, 3)
    # Bob answers RESUME_ACK and at once his SYNC, which shows he lacks the
    # messages: alice sends them on receipt, not after a retransmission
    # timeout, so they take what a 1-RTT resumption takes (3 one-ways).
    assert took == pytest.approx(3 * LATENCY)
    assert recorder.sent["ResumeEarlyPacket"] == 1
    assert bob.manager.early_flights == 0


def _replay(sim: Simulation, bob: SimNode, flight: bytes) -> None:
    bob.manager.receive_datagram(flight, "alice", "quic")
    sim.run_for(1)


def test_a_replayed_flight_delivers_nothing_again_while_the_responder_runs() -> None:
    sim, alice, bob, alice_store, _ = _setup("0rtt-replay")
    alice, _ = _restart_with_queue(sim, alice, bob, alice_store, 4)
    recorder = Recorder(sim)
    b = bob.session(alice)
    assert b is not None
    _collect(sim, b, 4)
    (flight,) = recorder.flights
    before = dict(recorder.sent)
    # 1. The same bytes: the cached RESUME_ACK again, nothing else.
    _replay(sim, bob, flight)
    assert b.receive_many() == []
    assert bob.manager.early_flights == 1
    assert recorder.sent["ResumeAckPacket"] == before["ResumeAckPacket"] + 1
    # 2. After the answer memory forgot it: an unknown ticket.
    bob.manager.answered.clear()
    _replay(sim, bob, flight)
    assert b.receive_many() == []
    assert recorder.sent["ResumeRejectPacket"] == 1
    assert bob.manager.early_flights == 1
    assert _established(alice, bob)  # alice ignores a reject for no attempt of hers


def test_a_replayed_flight_after_the_responder_restarts_is_refused(tmp_path: object) -> None:
    sim, alice, bob, alice_store, bob_store = _setup("0rtt-replay-restart")
    alice, _ = _restart_with_queue(sim, alice, bob, alice_store, 4)
    recorder = Recorder(sim)
    b = bob.session(alice)
    assert b is not None
    _collect(sim, b, 4)
    (flight,) = recorder.flights
    bob = sim.restart("bob", bob_store)
    sim.run_until(lambda: _established(bob, alice) and _established(alice, bob), timeout=30)
    restored = bob.session(alice)
    assert restored is not None
    _replay(sim, bob, flight)
    assert restored.receive_many() == []
    assert bob.manager.early_flights == 0  # the consumed ticket is gone for good
    assert recorder.sent["ResumeRejectPacket"] >= 1


def test_a_replay_after_a_crash_before_the_commit_delivers_once() -> None:
    """The responder processes the flight but dies before committing: the
    ticket's consumption and the delivery are lost together, so what comes
    after (alice's resend, the crossing resumption, a replay) delivers the
    messages for the first and only time."""
    sim, alice, bob, alice_store, bob_store = _setup("0rtt-crash")
    alice, _ = _restart_with_queue(sim, alice, bob, alice_store, 3)
    # Take alice's flight off the wire and hand it to bob ourselves.
    alice.manager.tick()
    flight = next(
        out.data for out in alice.manager.datagrams_to_send() if out.data[1] == PKT_RESUME_EARLY
    )
    bob.manager.receive_datagram(flight, "alice", "quic")
    b = bob.session(alice)
    assert b is not None
    assert b.available == 3  # processed, not yet committed, never read
    bob_store.crash()
    bob = sim.restart("bob", bob_store)
    again = bob.session(alice)
    assert again is not None
    got: list[bytes] = []
    sim.run_until(lambda: _gather(again, got, 3), timeout=10)
    assert got == [b"early 0", b"early 1", b"early 2"]
    sim.run_for(5)
    _replay(sim, bob, flight)
    assert again.receive_many() == []  # resends and the replay add nothing


def test_a_tampered_flight_consumes_nothing() -> None:
    sim, alice, bob, alice_store, _ = _setup("0rtt-tamper")
    alice, _ = _restart_with_queue(sim, alice, bob, alice_store, 2)
    alice.manager.tick()
    flight = next(
        out.data for out in alice.manager.datagrams_to_send() if out.data[1] == PKT_RESUME_EARLY
    )
    tampered = flight[:-1] + bytes([flight[-1] ^ 1])
    bob.manager.receive_datagram(tampered, "alice", "quic")
    assert bob.manager.rejections.get("aead") == 1
    assert len(bob.manager.tickets) == 1  # still unused
    bob.manager.receive_datagram(flight, "alice", "quic")
    b = bob.session(alice)
    assert b is not None
    assert b.receive_many() == [b"early 0", b"early 1"]


@dataclass
class RefuseCalls:
    asked: list[Request] = field(default_factory=list)

    def screen(self, peer_did: str, request: Request, now: float) -> str | None:
        self.asked.append(request)
        return "no calls" if request.action == "call" else None


def test_the_membrane_screens_0rtt_messages_like_any_message() -> None:
    sim, alice, bob, alice_store, _ = _setup("0rtt-membrane")
    gate = RefuseCalls()
    bob.manager.gate = gate
    session = alice.session(bob)
    assert session is not None
    sim.network.partition("alice", "bob")
    allowed = session.send(b"read", Request("read", "feed://news"))
    refused = session.send(b"pay", Request("call", "service://payment", 5))
    sim.run_for(0.2)
    alice_store.commit()
    alice = sim.restart("alice", alice_store)
    sim.network.heal("alice", "bob")
    b = bob.session(alice)
    assert b is not None
    got: list[bytes] = []
    sim.run_until(lambda: _gather(b, got, 1), timeout=5)
    assert got == [b"read"]
    assert [r.action for r in gate.asked] == ["read", "call"]
    assert bob.manager.early_flights == 1
    a = alice.session(bob)
    assert a is not None
    sim.run_until(lambda: a.queued == 0, timeout=5)
    denied = [e for e in alice.events if isinstance(e, MessageDenied)]
    assert [e.seq for e in denied] == [refused]
    assert a.denied is not None
    assert allowed not in a.denied


def test_early_records_are_a_sync_then_messages() -> None:
    sync = Sync(1, 0, 2, 0)
    early.check_records([sync, Message(0, b"x")])
    bad_lists: list[list[Record]] = [[], [Message(0, b"x")], [sync, sync]]
    for bad in bad_lists:
        with pytest.raises(MalformedMessage):
            early.check_records(bad)


def test_resume_early_packet_bounds() -> None:
    packet = ResumeEarlyPacket(bytes(16), bytes(32), 1, bytes(32), bytes(17))
    raw = encode_packet(packet)
    assert len(raw) == 90 + 17
    assert decode_packet(raw) == packet
    with pytest.raises(MalformedMessage):
        decode_packet(raw[:-1])
    with pytest.raises(MalformedMessage):
        encode_packet(ResumeEarlyPacket(bytes(16), bytes(32), 1, bytes(32), bytes(16)))


def test_the_resume_early_vector_follows_the_spec_text() -> None:
    """extensions_kat.json ``resume_early`` re-derived from PROTOCOL.md §6.5
    with blake3 and cryptography only, and reproduced by the code."""
    import json
    from pathlib import Path

    import blake3
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    path = Path(__file__).resolve().parent.parent / "vectors" / "extensions_kat.json"
    vector = json.loads(path.read_text(encoding="utf-8"))["resume_early"]

    def parts(*items: bytes) -> bytes:
        return b"".join(len(p).to_bytes(4, "big") + p for p in items)

    def kdf(label: str, *items: bytes, length: int = 32) -> bytes:
        return blake3.blake3(parts(*items), derive_key_context="l2session v1 " + label).digest(
            length
        )

    secret = bytes.fromhex(vector["resumption_secret"])
    lineage = bytes.fromhex(vector["lineage"])
    packet = bytes.fromhex(vector["packet"])
    assert packet[:2] == bytes([1, PKT_RESUME_EARLY])
    ticket, ephemeral = packet[2:18], packet[18:50]
    timestamp, tag = packet[50:58], packet[58:90]
    assert ticket == kdf("resumption ticket id", secret, length=16)
    resume_mac = blake3.blake3(
        b"l2session v1 resume\x00" + ticket + ephemeral + timestamp,
        key=kdf("resumption ticket key", secret),
    ).digest()
    assert tag == resume_mac
    th_e = blake3.blake3(parts(ticket, ephemeral, timestamp, tag)).digest()
    assert th_e.hex() == vector["early_transcript"]
    okm = kdf("session early data", secret, lineage, th_e, length=44)
    assert okm[:32].hex() == vector["early_key"]
    assert okm[32:].hex() == vector["early_nonce"]
    plaintext = ChaCha20Poly1305(okm[:32]).decrypt(okm[32:], packet[90:], packet[:90])
    assert plaintext.hex() == vector["plaintext"]
    from l2session.testing.vectors_ext import extensions_vector

    assert extensions_vector()["resume_early"] == vector


def test_a_peer_that_predates_resume_early_gets_a_plain_resume_next() -> None:
    """A responder that refuses RESUME_EARLY as an unknown packet type (an
    older node): the 0-RTT attempt times out, the retry resumes without
    early data, and the messages arrive exactly once."""
    sim, alice, bob, alice_store, _ = _setup("0rtt-legacy")
    original = bob.manager.receive_datagram

    def legacy(data: bytes, address: str, path: str) -> bool:
        if data[1] == PKT_RESUME_EARLY:
            bob.manager.reject(address, "MalformedMessage")  # "unknown type"
            return False
        return original(data, address, path)

    bob.manager.receive_datagram = legacy  # type: ignore[method-assign]
    alice, _ = _restart_with_queue(sim, alice, bob, alice_store, 3)
    recorder = Recorder(sim)
    b = bob.session(alice)
    assert b is not None
    _collect(sim, b, 3, timeout=60)
    a = alice.session(bob)
    assert a is not None
    assert a.no_early_data
    assert recorder.sent["ResumePacket"] >= 1
    assert bob.manager.early_flights == 0
    sim.run_for(10)
    assert b.receive_many() == []


@pytest.mark.parametrize("value", [-1, (1 << 16) + 1, 1.5, True])
def test_early_data_bytes_is_validated(value: object) -> None:
    from l2session.errors import ConfigError

    with pytest.raises(ConfigError, match="early_data_bytes"):
        SessionConfig(early_data_bytes=value)  # type: ignore[arg-type]


def test_a_replay_after_a_power_cut_delivers_nothing() -> None:
    """With the barrier (the default ``durability="power"``) the commit that
    consumed the ticket and handed the messages over survives a power cut:
    the replayed flight delivers nothing.  (``"process"`` makes no such
    promise across a power cut; PROTOCOL.md §6.5 says so.)"""
    sim = Simulation("0rtt-power", profile=LinkProfile(latency=LATENCY))
    alice_store, bob_store = MemoryStore(), MemoryStore(durability="power")
    alice = sim.add_node("alice", store=alice_store)
    bob = sim.add_node("bob", store=bob_store)
    alice.manager.establish(bob.did)
    sim.run_until(lambda: _established(alice, bob) and _established(bob, alice), timeout=10)
    alice, _ = _restart_with_queue(sim, alice, bob, alice_store, 3)
    recorder = Recorder(sim)
    b = bob.session(alice)
    assert b is not None
    _collect(sim, b, 3)  # the application has read them
    (flight,) = recorder.flights
    bob_store.power_cut()
    bob = sim.restart("bob", bob_store)
    again = bob.session(alice)
    assert again is not None
    bob.manager.receive_datagram(flight, "alice", "quic")
    assert again.receive_many() == []
    assert bob.manager.early_flights == 0
    sim.run_for(5)
    assert again.receive_many() == []
