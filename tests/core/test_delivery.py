"""Exactly-once, in-order delivery: Outbound and Inbound on their own, and
together over a channel that drops, duplicates and reorders."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.core.link.delivery import Inbound, Outbound
from l2session.errors import MessageTooLarge, QueueFull
from l2session.wire.records import (
    MAX_ACK_RANGES,
    Ack,
    Message,
    Sync,
    decode_records,
    encode_records,
)

U64_MAX = (1 << 64) - 1
STREAM = 0x5EED


def outbound(
    *,
    limit: int = 100,
    max_message: int = 64,
    initial_rto: float = 1.0,
    max_rto: float = 8.0,
    next_seq: int = 0,
) -> Outbound:
    return Outbound(
        STREAM,
        limit=limit,
        max_message=max_message,
        initial_rto=initial_rto,
        max_rto=max_rto,
        next_seq=next_seq,
    )


def inbound(*, reorder_limit: int = 64, inbox_limit: int = 100) -> Inbound:
    receiver = Inbound(reorder_limit=reorder_limit, inbox_limit=inbox_limit)
    receiver.apply_sync(Sync(STREAM, 0, 0, 0))
    return receiver


def msg(seq: int) -> Message:
    return Message(seq, b"m%d" % seq)


def drain(receiver: Inbound) -> list[bytes]:
    out = []
    while (payload := receiver.pop()) is not None:
        out.append(payload)
    return out


def seqs(messages: list[Message]) -> list[int]:
    return [m.seq for m in messages]


def wire(ack: Ack) -> Ack:
    """An ACK as the peer would see it (it must survive the codec)."""
    decoded = decode_records(encode_records([ack]))
    assert decoded == [ack]
    return ack


# --------------------------------------------------------------------------
# Outbound


def test_enqueue_numbers_messages_in_order() -> None:
    sender = outbound(next_seq=40)
    assert sender.first_unacked == 40
    assert [sender.enqueue(b"a"), sender.enqueue(b"b"), sender.enqueue(b"")] == [40, 41, 42]
    assert len(sender) == 3
    assert sender.next_seq == 43
    assert sender.first_unacked == 40
    assert sender.has_unsent
    assert sender.pending_payloads() == [(40, b"a"), (41, b"b"), (42, b"")]


def test_enqueue_copies_the_payload() -> None:
    sender = outbound()
    buf = bytearray(b"abc")
    sender.enqueue(bytes(buf))
    buf[0] = 0
    assert sender.pending_payloads() == [(0, b"abc")]


def test_message_too_large_queues_nothing() -> None:
    sender = outbound(max_message=10)
    assert sender.enqueue(b"x" * 10) == 0
    with pytest.raises(MessageTooLarge, match="exceeds the limit of 10"):
        sender.enqueue(b"x" * 11)
    assert len(sender) == 1
    assert sender.next_seq == 1


def test_queue_full_refuses_and_drops_nothing() -> None:
    sender = outbound(limit=3)
    for payload in (b"a", b"b", b"c"):
        sender.enqueue(payload)
    before = sender.pending_payloads()
    with pytest.raises(QueueFull, match="limit"):
        sender.enqueue(b"d")
    assert sender.pending_payloads() == before
    assert sender.next_seq == 3
    # Taking them does not free room: only acknowledgements do.
    assert seqs(sender.take(0.0, 1000, 10)) == [0, 1, 2]
    with pytest.raises(QueueFull):
        sender.enqueue(b"d")
    assert sender.on_ack(Ack(1)) == 1
    assert sender.enqueue(b"d") == 3
    assert sender.pending_payloads() == [(1, b"b"), (2, b"c"), (3, b"d")]


def test_take_respects_count_and_budget() -> None:
    sender = outbound()
    for i in range(6):
        sender.enqueue(bytes(10 + i))
    assert sender.retransmit_at is None
    assert seqs(sender.take(0.0, 1000, 2)) == [0, 1]
    assert sender.retransmit_at == 1.0
    assert seqs(sender.take(0.5, 25, 10)) == [2, 3]  # 12 + 13 bytes fit, 14 more do not
    assert sender.retransmit_at == 1.0  # the oldest timer
    # At least one message, even over budget.
    assert seqs(sender.take(0.5, 1, 10)) == [4]
    assert seqs(sender.take(0.5, 0, 10)) == [5]
    assert not sender.has_unsent
    assert sender.take(0.5, 1000, 10) == []


def test_timeouts_retransmit_with_doubling_rto_up_to_the_cap() -> None:
    sender = outbound(initial_rto=1.0, max_rto=3.0)
    sender.enqueue(b"a")
    sender.take(0.0, 100, 10)
    assert sender.check_timeouts(0.99) == 0
    assert not sender.has_unsent
    now = 0.0
    for rto in (1.0, 2.0, 3.0, 3.0):
        now += rto
        assert sender.retransmit_at == now
        assert sender.check_timeouts(now - 0.01) == 0
        assert sender.check_timeouts(now) == 1
        assert sender.retransmit_at is None
        assert sender.take(now, 100, 10) == [Message(0, b"a")]


def test_retransmissions_go_ahead_of_new_messages() -> None:
    sender = outbound()
    sender.enqueue(b"a")
    sender.enqueue(b"b")
    sender.take(0.0, 100, 1)  # only 0 goes out
    sender.enqueue(b"c")
    assert sender.check_timeouts(1.0) == 1
    assert seqs(sender.take(1.0, 100, 10)) == [0, 1, 2]


def test_cumulative_ack_releases_and_stops_timers() -> None:
    sender = outbound()
    for i in range(4):
        sender.enqueue(b"%d" % i)
    sender.take(0.0, 100, 10)
    assert sender.on_ack(Ack(2)) == 2
    assert sender.first_unacked == 2
    assert sender.on_ack(Ack(1)) == 0  # stale: nothing more
    assert sender.on_ack(Ack(4)) == 2
    assert len(sender) == 0
    assert sender.retransmit_at is None
    assert sender.check_timeouts(100.0) == 0
    assert sender.first_unacked == sender.next_seq == 4


def test_selective_ack_is_honoured_by_retransmission() -> None:
    sender = outbound()
    for i in range(6):
        sender.enqueue(b"%d" % i)
    sender.take(0.0, 100, 10)
    assert sender.on_ack(Ack(1, ((2, 4), (5, 6)))) == 4
    assert [seq for seq, _ in sender.pending_payloads()] == [1, 4]
    assert sender.check_timeouts(1.0) == 2
    assert seqs(sender.take(1.0, 100, 10)) == [1, 4]


def test_huge_ack_ranges_are_bounded_and_never_ack_unsent_numbers() -> None:
    sender = outbound(limit=10)
    for i in range(5):
        sender.enqueue(b"%d" % i)
    sender.take(0.0, 100, 10)
    ranges = tuple((2 + (U64_MAX >> 5) * i, (U64_MAX >> 5) * (i + 1)) for i in range(16))
    started = time.perf_counter()
    released = sender.on_ack(Ack(1, ranges)) + sender.on_ack(Ack(1, ((2, U64_MAX),)))
    assert time.perf_counter() - started < 0.5
    assert released == 4
    assert [seq for seq, _ in sender.pending_payloads()] == [1]
    # Numbers at or beyond next_seq were not acknowledged in advance.
    assert sender.enqueue(b"later") == 5
    assert [seq for seq, _ in sender.pending_payloads()] == [1, 5]
    started = time.perf_counter()
    assert sender.on_ack(Ack(U64_MAX)) == 2
    assert time.perf_counter() - started < 0.5
    assert sender.enqueue(b"after") == 6
    assert sender.pending_payloads() == [(6, b"after")]


def test_resend_all_sends_everything_again_in_order() -> None:
    sender = outbound(initial_rto=1.0, max_rto=8.0)
    for i in range(3):
        sender.enqueue(b"%d" % i)
    sender.take(0.0, 100, 2)
    sender.check_timeouts(1.0)  # rto of 0 and 1 doubles to 2
    sender.take(1.0, 100, 10)
    sender.resend_all()
    assert sender.retransmit_at is None
    assert seqs(sender.take(5.0, 100, 10)) == [0, 1, 2]
    assert sender.retransmit_at == 6.0  # back to the initial rto


def test_apply_sync_acks_what_the_peer_has_and_resends_the_rest() -> None:
    sender = outbound()
    for i in range(4):
        sender.enqueue(b"%d" % i)
    sender.take(0.0, 100, 10)
    sender.apply_sync(Sync(out_stream=99, first_unacked=0, in_stream=STREAM, next_expected=2))
    assert [seq for seq, _ in sender.pending_payloads()] == [2, 3]
    assert seqs(sender.take(0.1, 100, 10)) == [2, 3]
    # A peer that receives another stream of ours acknowledges nothing.
    sender.apply_sync(Sync(out_stream=99, first_unacked=0, in_stream=STREAM + 1, next_expected=4))
    assert len(sender) == 2
    assert seqs(sender.take(0.2, 100, 10)) == [2, 3]


def test_sync_describes_both_directions() -> None:
    sender = outbound(next_seq=10)
    sender.enqueue(b"x")
    receiver = inbound()
    receiver.accept(msg(0))
    assert sender.sync(receiver) == Sync(STREAM, 10, STREAM, 1)


# --------------------------------------------------------------------------
# Inbound


def test_in_order_delivery() -> None:
    receiver = inbound()
    assert receiver.pop() is None
    assert [receiver.accept(msg(i)) for i in range(3)] == [1, 1, 1]
    assert receiver.available == 3
    assert drain(receiver) == [b"m0", b"m1", b"m2"]
    assert receiver.available == 0
    assert receiver.ack() == Ack(3)


def test_reordering_and_duplicates() -> None:
    receiver = inbound()
    assert receiver.accept(msg(2)) == 0
    assert receiver.accept(msg(1)) == 0
    assert receiver.accept(msg(2)) == 0  # duplicate while buffered
    assert receiver.buffered == 2
    assert receiver.accept(msg(0)) == 3
    assert receiver.buffered == 0
    assert receiver.accept(msg(1)) == 0  # duplicate after delivery
    assert drain(receiver) == [b"m0", b"m1", b"m2"]
    assert receiver.next_expected == 3


def test_buffered_duplicates_keep_the_first_copy() -> None:
    receiver = inbound()
    receiver.accept(Message(1, b"first"))
    receiver.accept(Message(1, b"second"))
    receiver.accept(Message(0, b"zero"))
    assert drain(receiver) == [b"zero", b"first"]


def test_messages_beyond_the_reorder_window_are_not_buffered() -> None:
    receiver = inbound(reorder_limit=4)
    assert receiver.accept(msg(4)) == 0
    assert receiver.accept(msg(5)) == 0
    assert receiver.buffered == 1
    assert receiver.accept(msg(U64_MAX)) == 0
    assert receiver.buffered == 1
    assert receiver.ack() == Ack(0, ((4, 5),))


def test_ack_flag_follows_arrivals() -> None:
    receiver = inbound()
    receiver.ack()
    assert not receiver.ack_needed
    receiver.accept(msg(0))
    assert receiver.ack_needed
    receiver.ack()
    assert not receiver.ack_needed
    receiver.accept(msg(0))  # a duplicate is acknowledged again
    assert receiver.ack_needed


def test_sack_ranges() -> None:
    receiver = inbound()
    for seq in (2, 3, 5, 7, 8, 9):
        receiver.accept(msg(seq))
    assert wire(receiver.ack()) == Ack(0, ((2, 4), (5, 6), (7, 10)))


def test_sack_ranges_are_capped() -> None:
    receiver = inbound(reorder_limit=1000)
    for i in range(MAX_ACK_RANGES + 5):
        receiver.accept(msg(2 * i + 1))
    ack = wire(receiver.ack())
    assert len(ack.ranges) == MAX_ACK_RANGES
    assert ack.ranges[0] == (1, 2)
    assert ack.ranges[-1] == (2 * MAX_ACK_RANGES - 1, 2 * MAX_ACK_RANGES)


def test_sack_end_to_end_avoids_needless_retransmission() -> None:
    sender = outbound()
    receiver = inbound()
    for i in range(5):
        sender.enqueue(b"m%d" % i)
    sent = sender.take(0.0, 1000, 10)
    for message in sent:
        if message.seq != 1:  # 1 is lost
            receiver.accept(message)
    ack = wire(receiver.ack())
    assert ack == Ack(1, ((2, 5),))
    assert sender.on_ack(ack) == 4
    assert sender.check_timeouts(1.0) == 1
    resent = sender.take(1.0, 1000, 10)
    assert seqs(resent) == [1]
    assert receiver.accept(resent[0]) == 4
    assert drain(receiver) == [b"m0", b"m1", b"m2", b"m3", b"m4"]


def test_full_inbox_holds_back_until_the_application_reads() -> None:
    sender = outbound(initial_rto=1.0, max_rto=1.0)
    receiver = inbound(inbox_limit=2)
    for i in range(4):
        sender.enqueue(b"m%d" % i)
    now = 0.0
    for message in sender.take(now, 1000, 10):
        receiver.accept(message)
    assert receiver.available == 2
    # 2 arrived when the inbox was full: not acknowledged (3 is, selectively).
    assert wire(receiver.ack()) == Ack(2, ((3, 4),))
    sender.on_ack(receiver.ack())
    assert [seq for seq, _ in sender.pending_payloads()] == [2]
    # Retransmissions change nothing while nobody reads.
    for _ in range(3):
        now += 1.0
        assert sender.check_timeouts(now) == 1
        for message in sender.take(now, 1000, 10):
            assert receiver.accept(message) == 0
        assert receiver.available == 2
        assert receiver.ack() == Ack(2, ((3, 4),))
        sender.on_ack(receiver.ack())
        assert len(sender) == 1
    assert receiver.pop() == b"m0"
    assert receiver.pop() == b"m1"
    now += 1.0
    assert sender.check_timeouts(now) == 1
    assert sum(receiver.accept(m) for m in sender.take(now, 1000, 10)) == 2
    sender.on_ack(wire(receiver.ack()))
    assert len(sender) == 0
    assert drain(receiver) == [b"m2", b"m3"]


def test_messages_acked_selectively_before_the_inbox_filled_are_not_lost() -> None:
    # 1..3 arrive first and are acknowledged selectively (the sender forgets
    # them); then 0 fills the inbox.  Reading must release what is held.
    sender = outbound()
    receiver = inbound(inbox_limit=2)
    for i in range(4):
        sender.enqueue(b"m%d" % i)
    sent = sender.take(0.0, 1000, 10)
    for message in sent[1:]:
        receiver.accept(message)
    sender.on_ack(wire(receiver.ack()))
    assert [seq for seq, _ in sender.pending_payloads()] == [0]
    assert receiver.accept(sent[0]) == 2
    ack = wire(receiver.ack())  # 2 is held, not acknowledged: ranges start above the gap
    assert ack == Ack(2, ((3, 4),))
    sender.on_ack(ack)
    assert len(sender) == 0
    assert drain(receiver) == [b"m0", b"m1", b"m2", b"m3"]
    assert receiver.buffered == 0
    assert receiver.ack_needed
    assert wire(receiver.ack()) == Ack(4)


def test_a_sync_during_a_full_inbox_does_not_discard_held_messages() -> None:
    sender = outbound()
    receiver = inbound(inbox_limit=1)
    sender.enqueue(b"a")
    sender.enqueue(b"b")
    first, second = sender.take(0.0, 1000, 10)
    receiver.accept(second)
    sender.on_ack(wire(receiver.ack()))
    receiver.accept(first)
    sender.on_ack(wire(receiver.ack()))
    assert len(sender) == 0
    assert sender.first_unacked == 2 > receiver.next_expected
    receiver.apply_sync(Sync(STREAM, sender.first_unacked, 0, 0))
    assert drain(receiver) == [b"a", b"b"]
    assert receiver.next_expected == 2


def test_apply_sync_with_a_new_stream_starts_over() -> None:
    receiver = inbound()
    for seq in (0, 1, 5, 6):
        receiver.accept(msg(seq))
    receiver.ack()
    receiver.apply_sync(Sync(STREAM + 1, 100, 0, 0))
    assert receiver.stream == STREAM + 1
    assert receiver.next_expected == 100
    assert receiver.buffered == 0
    assert receiver.ack_needed
    assert receiver.ack() == Ack(100)
    # Low numbers of the new stream are not mistaken for anything.
    assert receiver.accept(Message(100, b"new")) == 1
    assert drain(receiver) == [b"m0", b"m1", b"new"]


def test_a_restarted_sender_is_not_mistaken_for_duplicates() -> None:
    receiver = inbound()
    for seq in range(5):
        receiver.accept(msg(seq))
    drain(receiver)
    receiver.apply_sync(Sync(STREAM + 7, 0, 0, 0))
    assert receiver.accept(Message(0, b"fresh")) == 1
    assert drain(receiver) == [b"fresh"]


def test_apply_sync_on_the_same_stream_skips_numbers_nobody_holds() -> None:
    receiver = inbound()
    for seq in (3, 5, 9):
        receiver.accept(msg(seq))
    receiver.apply_sync(Sync(STREAM, 5, 0, 0))
    # 0..2 and 4 are gone for good; 3 and 5 are held and delivered.
    assert receiver.next_expected == 6
    assert drain(receiver) == [b"m3", b"m5"]
    assert receiver.ack() == Ack(6, ((9, 10),))
    # An older first-unacked changes nothing.
    receiver.apply_sync(Sync(STREAM, 2, 0, 0))
    assert receiver.next_expected == 6
    assert receiver.buffered == 1


def test_apply_sync_may_jump_to_the_top_of_the_sequence_space() -> None:
    receiver = inbound()
    receiver.apply_sync(Sync(STREAM, U64_MAX, 0, 0))
    assert receiver.next_expected == U64_MAX
    assert wire(receiver.ack()) == Ack(U64_MAX)


# --------------------------------------------------------------------------
# Sender and receiver over a hostile channel


QUEUE_LIMIT = 6
MAX_RTO = 4.0


@dataclass
class World:
    sender: Outbound
    receiver: Inbound
    now: float = 0.0
    to_receiver: list[bytes] = field(default_factory=list)
    to_sender: list[bytes] = field(default_factory=list)
    enqueued: list[bytes] = field(default_factory=list)
    delivered: list[bytes] = field(default_factory=list)

    def read(self, count: int) -> None:
        for _ in range(count):
            payload = self.receiver.pop()
            if payload is None:
                break
            self.delivered.append(payload)
        # Safety at every step: in order, exactly once, nothing invented.
        assert self.delivered == self.enqueued[: len(self.delivered)]

    def arrive(self, packet: bytes) -> None:
        before = self.receiver.next_expected
        for record in decode_records(packet):
            assert isinstance(record, Message)
            self.receiver.accept(record)
        assert self.receiver.next_expected >= before

    def resync(self) -> None:
        """A re-key or resumption: both sides exchange delivery versions."""
        sync = encode_records([Sync(STREAM, self.sender.first_unacked, 0, 0)])
        (record,) = decode_records(sync)
        assert isinstance(record, Sync)
        self.receiver.apply_sync(record)
        reply = Sync(0xBEEF, 0, self.receiver.stream, self.receiver.next_expected)
        self.sender.apply_sync(reply)

    def ack_arrives(self, packet: bytes) -> None:
        (ack,) = decode_records(packet)
        assert isinstance(ack, Ack)
        # Never acknowledges what was not enqueued.
        assert ack.next_expected <= self.sender.next_seq
        self.sender.on_ack(ack)


def fates() -> st.SearchStrategy[int]:
    """How many copies the channel delivers: 0 (dropped), 1, or 2."""
    return st.sampled_from([0, 1, 1, 1, 2])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_exactly_once_in_order_over_a_lossy_channel(data: st.DataObject) -> None:
    world = World(
        Outbound(
            STREAM,
            limit=QUEUE_LIMIT,
            max_message=32,
            initial_rto=0.5,
            max_rto=MAX_RTO,
        ),
        Inbound(
            reorder_limit=data.draw(st.integers(1, 8), label="reorder_limit"),
            inbox_limit=data.draw(st.integers(1, 4), label="inbox_limit"),
        ),
    )
    world.receiver.apply_sync(Sync(STREAM, 0, 0, 0))
    sender, receiver = world.sender, world.receiver

    # Weighted so that inboxes fill up, acknowledgements overtake each other
    # and re-keys happen while messages are held.
    actions = st.sampled_from(
        [
            *["enqueue"] * 3,
            *["send"] * 3,
            *["deliver"] * 4,
            *["ack"] * 2,
            *["deliver_ack"] * 2,
            *["tick"] * 2,
            "read",
            "resync",
        ]
    )
    for _ in range(data.draw(st.integers(0, 80), label="steps")):
        action = data.draw(actions)
        if action == "enqueue":
            payload = b"p%d" % len(world.enqueued)
            if len(sender) == QUEUE_LIMIT:
                with pytest.raises(QueueFull):
                    sender.enqueue(payload)
            else:
                sender.enqueue(payload)
                world.enqueued.append(payload)
        elif action == "send":
            batch = sender.take(
                world.now,
                data.draw(st.integers(0, 20), label="budget"),
                data.draw(st.integers(1, 4), label="max_count"),
            )
            if batch:
                packet = encode_records(tuple(batch))
                world.to_receiver += [packet] * data.draw(fates())
        elif action == "deliver" and world.to_receiver:
            index = data.draw(st.integers(0, len(world.to_receiver) - 1))
            world.arrive(world.to_receiver.pop(index))
        elif action == "ack":
            world.to_sender += [encode_records([receiver.ack()])] * data.draw(fates())
        elif action == "deliver_ack" and world.to_sender:
            index = data.draw(st.integers(0, len(world.to_sender) - 1))
            world.ack_arrives(world.to_sender.pop(index))
        elif action == "tick":
            world.now += data.draw(st.floats(0.0, 3.0, allow_nan=False))
            sender.check_timeouts(world.now)
        elif action == "read":
            world.read(data.draw(st.integers(1, 3)))
        elif action == "resync":
            world.resync()
        assert len(sender) <= QUEUE_LIMIT

    # Heal the channel: the path comes back (a resumption, so the two sides
    # exchange SYNCs), packets in flight arrive, then everything is lossless
    # until nothing is left to do.
    world.resync()
    for _ in range(200):
        for packet in world.to_receiver:
            world.arrive(packet)
        for packet in world.to_sender:
            world.ack_arrives(packet)
        world.to_receiver.clear()
        world.to_sender.clear()
        world.read(1_000)
        world.ack_arrives(encode_records([receiver.ack()]))
        if len(sender) == 0:
            break
        world.now += MAX_RTO
        sender.check_timeouts(world.now)
        while batch := sender.take(world.now, 64, 4):
            world.to_receiver.append(encode_records(tuple(batch)))
    else:
        pytest.fail(f"no quiescence: {len(sender)} messages still pending")

    assert world.delivered == world.enqueued
    assert len(sender) == 0
    assert not sender.has_unsent
    assert sender.retransmit_at is None
    assert receiver.available == 0
    assert receiver.buffered == 0
    assert receiver.next_expected == sender.next_seq == len(world.enqueued)


# --------------------------------------------------------------------------
# O(1) release (issue 18): a floor cursor instead of iterating the dict


def test_release_after_a_restore_with_gaps_and_selective_acks() -> None:
    sender = outbound(next_seq=100)
    sender.restore([(10, b"a"), (11, b"b"), (40, b"c"), (41, b"d"), (99, b"e")])
    assert sender.first_unacked == 10
    assert sender.on_ack(Ack(12, ((40, 41),))) == 3  # 10, 11 and 40
    assert sender.first_unacked == 41
    assert sender.on_ack(Ack(50)) == 1
    assert sender.pending_payloads() == [(99, b"e")]
    assert sender.on_ack(Ack(30)) == 0  # an old cumulative ack changes nothing
    assert sender.on_ack(Ack(100)) == 1
    assert len(sender) == 0
    assert sender.first_unacked == 100


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 60), st.lists(st.tuples(st.integers(0, 60), st.integers(1, 8)))),
        max_size=20,
    )
)
def test_release_matches_a_plain_model(acks: list[tuple[int, list[tuple[int, int]]]]) -> None:
    sender = outbound(limit=100, next_seq=0)
    for seq in range(50):
        sender.enqueue(b"m%d" % seq)
    model = set(range(50))
    for below, raw_ranges in acks:
        ranges, low = [], below
        for start, length in sorted(raw_ranges):
            if start > low:
                ranges.append((start, start + length))
                low = start + length
        released = sender.on_ack(Ack(below, tuple(ranges)))
        gone = {s for s in model if s < below or any(a <= s < b for a, b in ranges)}
        assert released == len(gone)
        model -= gone
        assert [s for s, _ in sender.pending_payloads()] == sorted(model)
        assert sender.first_unacked == (min(model) if model else 50)
