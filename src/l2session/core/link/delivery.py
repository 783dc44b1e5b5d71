"""Exactly-once, in-order delivery over a lossy, duplicating, reordering path.

DESIGN.md §4: every application message gets a per-stream sequence number;
the sender keeps it until the peer acknowledges it and retransmits it on
timeout with backoff; the receiver delivers in order, exactly once, and
acknowledges cumulatively plus selectively (SACK ranges), so that a single
loss does not make the sender resend what already arrived.

A *stream* is one sender's sequence space, named by a random 64-bit id.  It
survives re-keying, rotation, path changes and resumption (they only change
the keys that carry it), so after any of those the two sides exchange a
:class:`~l2session.wire.records.Sync` and the sender resends exactly what the
receiver lacks.  A sender that lost its state (a restart without a store)
starts a new stream, and the receiver, seeing a new stream id, starts over at
the sender's first unacknowledged number instead of mistaking new messages
for duplicates.

Queues are bounded.  A full outbound queue refuses with :class:`QueueFull`
(backpressure; nothing is dropped).  A full inbox stops acknowledging, so the
sender holds and retransmits instead of the receiver dropping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from l2session.core.link.envelope import PLACEHOLDER_PREFIX as _PLACEHOLDER
from l2session.core.link.envelope import is_denial, is_placeholder
from l2session.errors import MessageTooLarge, QueueFull
from l2session.wire.records import MAX_ACK_RANGES, Ack, Message, Sync

_MAX_SEQ: Final = (1 << 64) - 1

#: Told of each inbound message when it is kept: (stream, seq, payload).
KeepHook = Callable[[int, int, bytes], None]
#: Told when kept messages of a stream from a seq on are abandoned.
DropHook = Callable[[int, int], None]
#: Asked once per message, when it is first kept: (seq, body) -> the body to
#: keep.  A placeholder (core/link/envelope.py) means "consumed": the stream moves
#: past its number and it never enters the inbox (an early one is stored, so
#: that a restart still knows the number is taken).  None means "not now":
#: the message is not kept nor acknowledged, and the sender will resend it.
ScreenHook = Callable[[int, bytes], bytes | None]


class _Pending:
    """One outbound message until it is acknowledged."""

    __slots__ = ("payload", "rto", "sent_at")

    def __init__(self, payload: bytes, rto: float) -> None:
        self.payload = payload
        self.sent_at: float | None = None
        self.rto = rto


class Outbound:
    """The sending half: queue, sequence numbers, acknowledgements, timers."""

    __slots__ = (
        "_floor",
        "_initial_rto",
        "_limit",
        "_max_message",
        "_max_rto",
        "_pending",
        "_retx_at",
        "_unsent",
        "next_seq",
        "stream",
    )

    def __init__(
        self,
        stream: int,
        *,
        limit: int,
        max_message: int,
        initial_rto: float,
        max_rto: float,
        next_seq: int = 0,
    ) -> None:
        self.stream = stream
        self.next_seq = next_seq
        self._limit = limit
        self._max_message = max_message
        self._initial_rto = initial_rto
        self._max_rto = max_rto
        self._pending: dict[int, _Pending] = {}
        #: No message below this number is pending.  Releases walk numbers
        #: from here instead of iterating the dict from its front, which
        #: costs O(deleted entries) per step in CPython (the dict keeps
        #: dummies until it resizes): O(1) per released message.
        self._floor = next_seq
        #: Allocated only while something waits to be sent: an empty deque
        #: takes about 760 bytes, and most sessions are idle most of the time.
        self._unsent: deque[int] | None = None
        self._retx_at: float | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def acknowledged(self, seq: int) -> bool:
        """Whether the peer has acknowledged message ``seq``."""
        return seq < self.next_seq and seq not in self._pending

    @property
    def first_unacked(self) -> int:
        pending, seq, end = self._pending, self._floor, self.next_seq
        while seq < end and seq not in pending:
            seq += 1
        self._floor = seq
        return seq

    @property
    def has_unsent(self) -> bool:
        return bool(self._unsent)

    @property
    def retransmit_at(self) -> float | None:
        """When the oldest unacknowledged transmission times out."""
        return self._retx_at

    def restore(self, messages: Iterable[tuple[int, bytes]]) -> None:
        """Reload unacknowledged messages after a restart (they are all
        resent once the session has a channel again)."""
        for seq, payload in messages:
            if seq >= self.next_seq:
                raise ValueError(f"stored message {seq} is beyond the stream's next number")
            self._pending[seq] = _Pending(bytes(payload), self._initial_rto)
        self._floor = min(self._pending, default=self.next_seq)
        self._unsent = deque(self._pending) if self._pending else None

    def pending_payloads(self) -> list[tuple[int, bytes]]:
        """Every unacknowledged message, in order (for persistence and tests)."""
        return [(seq, entry.payload) for seq, entry in self._pending.items()]

    def enqueue(self, payload: bytes, *, control: bool = False) -> int:
        """Queue ``payload``; returns its sequence number.  A ``control``
        message (a denial notice) is exempt from the size and queue limits
        (its caller bounds them) and goes out ahead of what waits unsent, so
        it travels with the acknowledgement of what it answers."""
        if not control and len(payload) > self._max_message:
            raise MessageTooLarge(
                f"message of {len(payload)} bytes exceeds the limit of {self._max_message}"
            )
        if not control and len(self._pending) >= self._limit:
            raise QueueFull(
                f"outbound queue holds {len(self._pending)} messages (the limit); "
                "wait for acknowledgements and retry"
            )
        seq = self.next_seq
        self._pending[seq] = _Pending(bytes(payload), self._initial_rto)
        if self._unsent is None:
            self._unsent = deque()
        if control:
            self._unsent.appendleft(seq)
        else:
            self._unsent.append(seq)
        self.next_seq = seq + 1
        return seq

    def take(
        self, now: float, budget: int, max_count: int, *, at_least_one: bool = True
    ) -> list[Message]:
        """Messages to transmit now, oldest first, at most ``max_count`` and
        about ``budget`` payload bytes (at least one message unless
        ``at_least_one`` is False: then strictly within ``budget``)."""
        out: list[Message] = []
        unsent = self._unsent
        if not unsent:
            return out
        used = count = 0
        pending = self._pending
        # The earliest retransmission deadline among these (one update of
        # _retx_at after the loop, not one per message).
        earliest: float | None = None
        append, popleft = out.append, unsent.popleft
        while unsent and count < max_count:
            seq = unsent[0]
            entry = pending.get(seq)
            if entry is None:
                popleft()
                continue
            payload = entry.payload
            size = len(payload)
            if (count or not at_least_one) and used + size > budget:
                break
            popleft()
            entry.sent_at = now
            used += size
            count += 1
            append(Message(seq, payload))
            rto = entry.rto
            if earliest is None or rto < earliest:
                earliest = rto
        if earliest is not None:
            deadline = now + earliest
            if self._retx_at is None or deadline < self._retx_at:
                self._retx_at = deadline
        return out

    def check_timeouts(self, now: float) -> int:
        """Queue for retransmission every message whose timer expired (its
        timeout doubles, up to the cap); returns how many."""
        if self._retx_at is None or now < self._retx_at:
            return 0
        expired: list[int] = []
        earliest: float | None = None
        for seq, entry in self._pending.items():
            if entry.sent_at is None:
                continue
            deadline = entry.sent_at + entry.rto
            if deadline <= now:
                entry.sent_at = None
                entry.rto = min(entry.rto * 2, self._max_rto)
                expired.append(seq)
            elif earliest is None or deadline < earliest:
                earliest = deadline
        self._retx_at = earliest
        if expired:
            # Retransmissions go ahead of never-sent messages: the receiver
            # cannot deliver anything past the gap they fill.
            rest = [seq for seq in self._unsent or () if seq not in expired]
            self._unsent = deque(expired + rest)
        return len(expired)

    def on_ack(self, ack: Ack) -> int:
        """Forget acknowledged messages; returns how many were released."""
        pending = self._pending
        before = len(pending)
        cumulative = min(ack.next_expected, self.next_seq)
        floor = self._floor
        if cumulative > floor:
            if cumulative - floor <= len(pending):
                pop = pending.pop
                for seq in range(floor, cumulative):
                    pop(seq, None)
            else:  # a few survivors of a long stream (after a restore)
                for seq in [s for s in pending if s < cumulative]:
                    del pending[seq]
            self._floor = cumulative
        for start, end in ack.ranges:
            start, end = max(start, cumulative), min(end, self.next_seq)
            if end - start <= len(pending):
                for seq in range(start, end):
                    pending.pop(seq, None)
            else:
                for seq in [s for s in pending if start <= s < end]:
                    del pending[seq]
        if not pending:
            self._retx_at = None
            self._unsent = None
        return before - len(pending)

    def resend_all(self) -> None:
        """After a re-key or a path change: everything unacknowledged goes
        out again now, in order, with a fresh timeout."""
        for entry in self._pending.values():
            entry.sent_at = None
            entry.rto = self._initial_rto
        self._unsent = deque(self._pending) if self._pending else None
        self._retx_at = None

    def mark_sent(self, seqs: Iterable[int], now: float) -> None:
        """Messages already transmitted another way (0-RTT early data)
        count as sent ``now``: not resent at once, timed out as usual."""
        sent = set(seqs)
        for seq in sent:
            entry = self._pending.get(seq)
            if entry is not None:
                entry.sent_at = now
                deadline = now + entry.rto
                if self._retx_at is None or deadline < self._retx_at:
                    self._retx_at = deadline
        if self._unsent:
            rest = [seq for seq in self._unsent if seq not in sent]
            self._unsent = deque(rest) if rest else None

    def requeue(self, seqs: Iterable[int]) -> None:
        """Send these unacknowledged messages again now, ahead of the rest
        (the peer's SYNC shows it lacks them)."""
        again = [seq for seq in seqs if seq in self._pending]
        if not again:
            return
        for seq in again:
            self._pending[seq].sent_at = None
        rest = [seq for seq in self._unsent or () if seq not in set(again)]
        self._unsent = deque(again + rest)

    def apply_sync(self, sync: Sync) -> None:
        """The peer's delivery version: if it is receiving our stream, what
        it has is acknowledged; everything else is resent."""
        if sync.in_stream == self.stream:
            self.on_ack(Ack(sync.next_expected))
        self.resend_all()

    def sync(self, inbound: Inbound) -> Sync:
        return Sync(self.stream, self.first_unacked, inbound.stream, inbound.next_expected)


class Inbound:
    """The receiving half: reorder buffer, duplicate suppression, inbox."""

    __slots__ = (
        "_buffer",
        "_inbox",
        "_inbox_limit",
        "_reorder_limit",
        "ack_needed",
        "drop",
        "keep",
        "next_expected",
        "screen",
        "stream",
    )

    def __init__(self, *, reorder_limit: int, inbox_limit: int) -> None:
        #: 0 until the peer's first SYNC names its stream.
        self.stream = 0
        self.next_expected = 0
        self._reorder_limit = reorder_limit
        self._inbox_limit = inbox_limit
        self._buffer: dict[int, bytes] | None = None
        #: Delivered, not yet read: (stream, seq, payload).
        self._inbox: deque[tuple[int, int, bytes]] | None = None
        self.ack_needed = False
        #: Persistence hooks (set by a durable session): every message kept
        #: (in the inbox or the reorder buffer) is reported before it can be
        #: acknowledged, and kept messages abandoned for a new stream too.
        self.keep: KeepHook | None = None
        self.drop: DropHook | None = None
        #: Set by the session (core/lifecycle/screening.py); called exactly once per
        #: sequence number, before the message is kept or acknowledged.
        self.screen: ScreenHook | None = None

    def restore(
        self, stream: int, next_expected: int, kept: Iterable[tuple[int, int, bytes]]
    ) -> None:
        """Reload after a restart: the stream's high-water mark and what was
        kept, as (stream, seq, payload) with older streams first."""
        self.stream = stream
        self.next_expected = next_expected
        for msg_stream, seq, payload in kept:
            if msg_stream == stream and seq >= next_expected:
                if self._buffer is None:
                    self._buffer = {}
                self._buffer[seq] = payload
            elif is_placeholder(payload):
                continue  # consumed: taken from the store with what follows
            else:
                if self._inbox is None:
                    self._inbox = deque()
                self._inbox.append((msg_stream, seq, payload))

    @property
    def buffered(self) -> int:
        return len(self._buffer) if self._buffer else 0

    @property
    def available(self) -> int:
        return len(self._inbox) if self._inbox else 0

    def pop(self) -> bytes | None:
        """The next delivered message, or None."""
        entry = self.pop_entry()
        return None if entry is None else entry[2]

    def peek(self, max_count: int) -> list[bytes]:
        """The next ``max_count`` delivered payloads, left in the inbox (a
        runtime that hands messages on takes them only once the receiver
        confirmed them: see :meth:`Session.peek`)."""
        inbox = self._inbox
        if not inbox:
            return []
        return [entry[2] for _, entry in zip(range(max_count), inbox, strict=False)]

    def peek_entries(self, max_count: int) -> list[tuple[int, int, bytes]]:
        """Like :meth:`peek`, as (stream, seq, payload) entries."""
        inbox = self._inbox
        if not inbox:
            return []
        return [entry for _, entry in zip(range(max_count), inbox, strict=False)]

    def pop_entry(self) -> tuple[int, int, bytes] | None:
        """The next delivered message as (stream, seq, payload), or None."""
        if not self._inbox:
            return None
        entry = self._inbox.popleft()
        # Messages that arrived while the inbox was full wait in the reorder
        # buffer (and may already be selectively acknowledged, so the sender
        # no longer holds them): move them in now that there is room.
        if self._drain():
            self.ack_needed = True
        return entry

    def _drain(self) -> int:
        """Move buffered messages that are next in order into the inbox,
        while it has room; returns how many."""
        buffer = self._buffer
        if not buffer:
            return 0
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        delivered = 0
        stream = self.stream
        while buffer and len(inbox) < self._inbox_limit:
            seq = self.next_expected
            payload = buffer.pop(seq, None)
            if payload is None:
                break
            self.next_expected = seq + 1
            if not is_placeholder(payload):
                inbox.append((stream, seq, payload))
                delivered += 1
        return delivered

    def accept(self, message: Message) -> int:
        """Take one message; returns how many became deliverable."""
        seq = message.seq
        self.ack_needed = True
        if seq < self.next_expected:
            return 0  # duplicate: acknowledged again, delivered never
        if seq - self.next_expected > self._reorder_limit:
            return 0  # beyond the window: the sender will retransmit
        if seq > self.next_expected:
            buffer = self._buffer
            if buffer is None:
                buffer = self._buffer = {}
            if seq not in buffer:
                body = message.payload if self.screen is None else self.screen(seq, message.payload)
                if body is None:
                    return 0
                buffer[seq] = body
                # Stored even when it is a placeholder: it will be
                # acknowledged selectively, and the sender then forgets it.
                if self.keep is not None:
                    self.keep(self.stream, seq, body)
            return 0
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        buffer = self._buffer
        body = buffer.pop(seq, None) if buffer else None
        full = len(inbox) >= self._inbox_limit
        if body is None:  # else kept (and screened) before: a retransmission
            if full and not is_denial(message.payload):
                return 0  # application not reading: hold back, do not drop
            body = message.payload if self.screen is None else self.screen(seq, message.payload)
            if body is None:
                return 0
            placeholder = body[:2] == _PLACEHOLDER  # is_placeholder, inlined
            if self.keep is not None and not placeholder:
                self.keep(self.stream, seq, body)
        else:
            placeholder = body[:2] == _PLACEHOLDER
        if full and not placeholder:
            self._buffer = buffer = buffer or {}
            buffer[seq] = body  # kept; delivered as the application reads
            return 0
        self.next_expected = seq + 1
        if placeholder:
            return self._drain()
        inbox.append((self.stream, seq, body))
        return 1 + self._drain() if buffer else 1

    def ack(self) -> Ack:
        """The acknowledgement for what arrived so far."""
        self.ack_needed = False
        if not self._buffer:
            return Ack(self.next_expected)
        ranges: list[tuple[int, int]] = []
        for seq in sorted(self._buffer):
            if seq <= self.next_expected:
                # Held only because the inbox is full: not acknowledged (the
                # sender keeps it), and a range must start above the gap.
                continue
            if ranges and ranges[-1][1] == seq:
                ranges[-1] = (ranges[-1][0], seq + 1)
            elif len(ranges) == MAX_ACK_RANGES:
                break
            else:
                ranges.append((seq, seq + 1))
        return Ack(self.next_expected, tuple(ranges))

    def apply_sync(self, sync: Sync) -> None:
        """Adopt the peer's stream: a new stream id (the sender restarted
        without its state) starts over at its first unacknowledged number;
        a first-unacked beyond ours means we lost state, so we skip ahead
        rather than wait forever for messages nobody holds any more.

        A first-unacked beyond ours is also normal when our inbox is full:
        the sender forgot messages we acknowledged selectively and still hold
        in the reorder buffer.  Held messages are never discarded: if every
        number up to the sender's is held, nothing is skipped (they are
        delivered as the application reads); otherwise the held ones are
        delivered in order and only the numbers nobody holds are skipped."""
        if sync.out_stream != self.stream:
            if self._buffer and self.drop is not None:
                self.drop(self.stream, self.next_expected)
            self.stream = sync.out_stream
            self.next_expected = sync.first_unacked
            self._buffer = None
        elif sync.first_unacked > self.next_expected:
            target = min(sync.first_unacked, _MAX_SEQ)
            buffer = self._buffer
            held = sorted(s for s in buffer if s < target) if buffer else []
            if len(held) < target - self.next_expected:
                if buffer and held:
                    inbox = self._inbox
                    if inbox is None:
                        inbox = self._inbox = deque()
                    # May exceed the inbox limit by at most the reorder window.
                    stream = self.stream
                    for seq in held:
                        body = buffer.pop(seq)
                        if not is_placeholder(body):
                            inbox.append((stream, seq, body))
                self.next_expected = target
            self._drain()
        self.ack_needed = True
