"""Sparse sending DH steps (core/link/channel.py, CRYPTO.md §5.2).

Two Channels talk over a simulated link with a fixed round trip on a
manual clock.  The policy must (a) take far fewer steps than one per turn,
(b) never step in a packet of control records, (c) heal: after an attacker
copies one side's full state (snapshot *and* a prepared key pair), every
packet the peer sends more than ``dh_step_interval + RTT`` later is
unreadable with the copy, whatever the phase of the compromise.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import pytest

from l2session.core.link.channel import Channel
from l2session.crypto import primitives
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.rng import SeededRandom
from l2session.errors import L2SessionError
from l2session.wire.packets import DataPacket, decode_packet
from l2session.wire.records import Ack, Heartbeat, Message, Record

INTERVAL = 1.0
RTT = 0.04
SEND_EVERY = 0.013  # each side sends a data packet this often (two-way traffic)


def _pair(rng: SeededRandom, interval: float) -> dict[str, Channel]:
    responder_key = primitives.x25519_generate(rng)
    initiator_key = primitives.x25519_generate(rng)
    root, chain = bytes(range(32)), bytes(32)
    responder = DoubleRatchet.for_responder(
        root_key=root,
        chain_key=chain,
        own_ephemeral=responder_key,
        peer_ephemeral=initiator_key.public,
        associated_data=b"ad",
        rng=rng,
    )
    initiator = DoubleRatchet.for_initiator(
        root_key=root,
        chain_key=chain,
        own_ephemeral=initiator_key,
        peer_ephemeral=responder_key.public,
        associated_data=b"ad",
        rng=rng,
    )
    return {
        name: Channel(
            session_id=bytes(16),
            epoch=0,
            ratchet=ratchet,
            lineage=bytes(32),
            keyed_at=0.0,
            step_interval=interval,
        )
        for name, ratchet in (("a", responder), ("b", initiator))
    }


def _ratchet(channel: Channel) -> DoubleRatchet:
    return channel._ratchets[channel.send_epoch]


def _steal(channel: Channel) -> DoubleRatchet:
    """Everything an attacker reading the process memory gets: the state
    and a key pair drawn ahead for the next step, if any."""
    original = _ratchet(channel)
    copy = DoubleRatchet.from_bytes(original.to_bytes(), rng=SeededRandom(b"attacker"))
    copy._prepared = original._prepared
    return copy


steps: dict[str, int] = {}  # sending DH steps per side in the last _converse


@dataclass(order=True)
class _Event:
    at: float
    order: int
    kind: str = field(compare=False)  # "send" or "arrive"
    side: str = field(compare=False)
    packet: bytes = field(default=b"", compare=False)


def _converse(
    seed: bytes,
    interval: float,
    until: float,
    compromise_at: float,
    phase: float,
    victim: str = "a",
) -> tuple[dict[str, Channel], list[tuple[float, bytes]], DoubleRatchet, float]:
    """Run two-way traffic; return the channels, every packet to ``victim``
    with its send time, the copy of the victim's state taken at
    ``compromise_at``, and when."""
    rng = SeededRandom(seed)
    channels = _pair(rng, interval)
    events: list[_Event] = []
    order = 0

    def push(at: float, kind: str, side: str, packet: bytes = b"") -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, _Event(at, order, kind, side, packet))

    push(0.0, "send", "a")
    push(RTT + phase, "send", "b")  # b sends once it has heard from a
    to_a: list[tuple[float, bytes]] = []
    stolen: DoubleRatchet | None = None
    stolen_at = 0.0
    counter = {"a": 0, "b": 0}
    steps.clear()
    steps.update(a=0, b=0)
    for _ in range(1_000_000):
        if not events:
            break
        event = heapq.heappop(events)
        now = event.at
        if now > until:
            break
        if stolen is None and now >= compromise_at:
            stolen, stolen_at = _steal(channels[victim]), now
        side = event.side
        if event.kind == "send":
            counter[side] += 1
            before = _ratchet(channels[side]).sending_ratchet_key
            packet = channels[side].seal([Message(counter[side], b"x" * 64)], now)
            steps[side] += _ratchet(channels[side]).sending_ratchet_key != before
            channels[side].prepare_step(now)
            if side != victim:
                to_a.append((now, packet))
            push(now + RTT / 2, "arrive", "b" if side == "a" else "a", packet)
            push(now + SEND_EVERY, "send", side)
        else:
            parsed = decode_packet(event.packet)
            assert isinstance(parsed, DataPacket)
            channels[side].open(parsed)
            channels[side].prepare_step(now)
    assert stolen is not None
    return channels, to_a, stolen, stolen_at


def _readable(copy: DoubleRatchet, packet: bytes) -> bool:
    parsed = decode_packet(packet)
    assert isinstance(parsed, DataPacket)
    try:
        copy.decrypt(parsed.ciphertext)
    except L2SessionError:
        return False
    return True


@pytest.mark.parametrize("victim", ["a", "b"])
@pytest.mark.parametrize("phase", [0.0, 0.011])
@pytest.mark.parametrize("compromise_at", [0.3, 1.02, 1.5, 2.2, 2.51, 2.97])
def test_a_stolen_state_stops_reading_after_interval_plus_rtt(
    compromise_at: float, phase: float, victim: str
) -> None:
    until = compromise_at + 3 * INTERVAL
    _, to_a, stolen, stolen_at = _converse(
        b"heal" + str((compromise_at, phase)).encode(),
        INTERVAL,
        until,
        compromise_at,
        phase,
        victim,
    )
    heals_by = stolen_at + INTERVAL + RTT
    read_early = 0
    for sent_at, packet in to_a:
        if sent_at < stolen_at:
            continue
        # A passive attacker keeps its copy in step with every packet it can.
        readable = _readable(stolen, packet)
        if sent_at > heals_by:
            assert not readable, f"packet sent {sent_at - stolen_at:.3f} s after the copy"
        elif readable:
            read_early += 1
    # The test has teeth: right after the theft the copy does read traffic.
    assert read_early > 0


def test_per_turn_stepping_heals_within_one_round_trip() -> None:
    _, to_a, stolen, stolen_at = _converse(b"per turn", 0.0, 1.5, 0.7, 0.0)
    late = [packet for sent_at, packet in to_a if sent_at > stolen_at + RTT + SEND_EVERY]
    assert late
    assert not any(_readable(stolen, packet) for packet in late)


def test_steps_are_sparse_but_happen() -> None:
    channels, _, _, _ = _converse(b"count", INTERVAL, 10.0, 0.0, 0.0)
    assert _ratchet(channels["a"]).messages_sent > 700  # ~770 packets each way
    # At most one step per half interval per side, and they do happen.
    assert 10 <= steps["a"] <= 2 * 10 + 1
    assert 10 <= steps["b"] <= 2 * 10 + 1
    _converse(b"count", 0.0, 10.0, 0.0, 0.0)
    assert steps["a"] > 100  # per turn: a step whenever the peer stepped


def _stepped(channel: Channel, records: list[Record], now: float) -> bool:
    ratchet = _ratchet(channel)
    before = ratchet.sending_ratchet_key
    channel.seal(records, now)
    return ratchet.sending_ratchet_key != before


def _due_pair(interval: float) -> dict[str, Channel]:
    """a and b after one exchange: a's step is due."""
    channels = _pair(SeededRandom(b"due"), interval)
    for sender, receiver in (("a", "b"), ("b", "a")):
        packet = decode_packet(channels[sender].seal([Message(0, b"hi")], 0.0))
        assert isinstance(packet, DataPacket)
        channels[receiver].open(packet)
    assert _ratchet(channels["a"]).send_step_due
    return channels


def test_control_records_never_force_a_step() -> None:
    a = _due_pair(INTERVAL)["a"]
    assert not _stepped(a, [Ack(3)], 100.0)
    assert not _stepped(a, [Heartbeat(1)], 100.0)
    assert _ratchet(a).send_step_due
    assert _stepped(a, [Heartbeat(2), Message(1, b"data")], 100.0)


def test_data_waits_for_half_the_interval() -> None:
    a = _due_pair(INTERVAL)["a"]
    assert not _stepped(a, [Message(1, b"early")], INTERVAL / 2 - 0.01)
    assert _stepped(a, [Message(2, b"now")], INTERVAL / 2)


def test_step_after_a_packet_count() -> None:
    channels = _due_pair(INTERVAL)
    a = channels["a"]
    a.step_after = 5
    stepped = [_stepped(a, [Message(i, b"m")], 0.01) for i in range(1, 8)]
    assert stepped.index(True) == 4  # the chain already had one packet


def test_interval_zero_steps_every_turn_even_for_control() -> None:
    a = _due_pair(0.0)["a"]
    assert _stepped(a, [Ack(1)], 0.0)


def test_prepared_key_is_used_only_against_the_same_peer_key() -> None:
    channels = _due_pair(INTERVAL)
    a = channels["a"]
    ratchet = _ratchet(a)
    assert not a.prepare_step(0.1)  # not yet allowed: nothing drawn
    assert a.prepare_step(INTERVAL)
    prepared = ratchet._prepared
    assert prepared is not None
    assert not a.prepare_step(INTERVAL)  # already prepared
    assert _stepped(a, [Message(1, b"go")], INTERVAL)
    assert ratchet.sending_ratchet_key == prepared[0].public
    assert ratchet._prepared is None
    # The peer still decrypts it: the step is the ordinary one.
    packet = decode_packet(a.seal([Message(2, b"more")], INTERVAL))
    assert isinstance(packet, DataPacket)
    assert channels["b"].open(packet) == [Message(2, b"more")]


def test_a_required_step_is_never_deferred() -> None:
    channels = _pair(SeededRandom(b"required"), INTERVAL)
    b = channels["b"]  # the initiator has no sending chain until it steps
    assert _ratchet(b).send_step_required
    assert _stepped(b, [Ack(0)], 0.0)
