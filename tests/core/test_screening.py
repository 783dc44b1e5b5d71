"""Capability requests in the session path (core/lifecycle/screening.py), over the
seeded simulation: screened once, before the application sees them; a
refusal consumes the sequence number, the stream goes on, and the sender
hears why.  The gate here is a small rule table; tests/membrane runs the
same path with the real Membrane."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.events import MessageDenied, RequestRefused, SessionClosedEvent
from l2session.core.link.envelope import Delivery, Denial, Request, denial, refused, unwrap, wrap
from l2session.core.link.session import Session
from l2session.errors import ConfigError, MalformedMessage, MessageTooLarge
from l2session.store import MemoryStore
from l2session.testing.network import LinkProfile
from l2session.testing.simulation import SimNode, Simulation, connected_pair

PAY = Request("call", "service://payment", 5)
READ = Request("read", "feed://news")


@dataclass
class RuleGate:
    """Refuses every action in ``refuse``; remembers each question."""

    refuse: set[str] = field(default_factory=lambda: {"call"})
    asked: list[tuple[str, Request, float]] = field(default_factory=list)

    def screen(self, peer_did: str, request: Request, now: float) -> str | None:
        self.asked.append((peer_did, request, now))
        return f"no {request.action} for you" if request.action in self.refuse else None


def _pair(
    seed: str, profile: LinkProfile | None = None
) -> tuple[Simulation, SimNode, SimNode, Session, Session, RuleGate]:
    sim, alice, bob = connected_pair(seed, profile=profile)
    gate = RuleGate()
    bob.manager.gate = gate
    a, b = alice.session(bob), bob.session(alice)
    assert a is not None
    assert b is not None
    return sim, alice, bob, a, b, gate


def _drain(sim: Simulation, b: Session, want: int, timeout: float = 60) -> list[Delivery]:
    got: list[Delivery] = []

    def done() -> bool:
        got.extend(b.receive_deliveries())
        return len(got) >= want

    sim.run_until(done, timeout=timeout)
    return got


def test_the_envelope_round_trips_and_never_mistakes_a_payload() -> None:
    for payload in (b"", b"x", b"\xff", b"\xff\x01abc", b"\xff\x02", b"\x00\xff"):
        assert unwrap(wrap(payload)) == (payload, None)
    assert wrap(b"plain") == b"plain"  # plain payloads travel as they are
    assert unwrap(wrap(b"body", PAY)) == (b"body", PAY)
    assert unwrap(denial(9, 7, "no ✓")) == Denial(9, 7, "no ✓")
    for bad in (
        b"\xff",
        b"\xff\x07",
        b"\xff\x01",
        b"\xff\x01\x04cal",
        wrap(b"", PAY)[:-3],
        b"\xff\x03\x00\x01",  # a denial notice cut short
        b"\xff\x03" + bytes(16) + b"\xff",  # ... with a reason that is not UTF-8
    ):
        with pytest.raises(MalformedMessage):
            unwrap(bad)
    # A request field that decodes but is not valid is malformed too.
    assert unwrap(refused("why")).reason == "why"  # type: ignore[union-attr]
    with pytest.raises(MalformedMessage, match="capability request"):
        unwrap(b"\xff\x01\x04CALL\x00\x0bfeed://news\x00\x00\x00\x01")


@pytest.mark.parametrize(
    "text",
    ["read", "read feed://x 0", "Read feed://x", "read feed x", "read feed://x many", "a b c d"],
)
def test_bad_requests_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        Request.parse(text)


def test_parse_and_str() -> None:
    assert Request.parse("call service://payment 5") == PAY
    assert str(PAY) == "call service://payment (5 units)"
    assert str(READ) == "read feed://news"


def test_allowed_requests_are_delivered_with_the_request_and_plain_ones_untouched() -> None:
    sim, alice, _bob, a, b, gate = _pair("screen-allow")
    a.send(b"hello")
    a.send(b"\xffstarts with the mark")
    a.send(b"news please", READ)
    got = _drain(sim, b, 3)
    assert got == [
        Delivery(0, b"hello"),
        Delivery(1, b"\xffstarts with the mark"),
        Delivery(2, b"news please", READ),
    ]
    assert [(did, req) for did, req, _ in gate.asked] == [(alice.did, READ)]
    assert not [e for e in alice.events if isinstance(e, MessageDenied)]


def test_a_refused_request_never_reaches_the_application_and_the_sender_hears_why() -> None:
    sim, alice, bob, a, b, gate = _pair("screen-deny")
    seqs = [a.send(b"m0"), a.send(b"pay me", PAY), a.send(b"m2"), a.send(b"news", READ)]
    got = _drain(sim, b, 3)
    assert [d.payload for d in got] == [b"m0", b"m2", b"news"]
    assert [d.seq for d in got] == [0, 2, 3]
    sim.run_until(lambda: a.queued == 0, timeout=10)  # the refused one is acknowledged
    assert MessageDenied(bob.did, seqs[1], "no call for you") in alice.events
    assert RequestRefused(alice.did, seqs[1], PAY, "no call for you") in bob.events
    assert a.denied == {1: "no call for you"}
    # The notice travelled on Bob's stream, consumed by Alice's session:
    # her application sees nothing of it.
    assert a.try_receive() is None
    assert a.available == 0
    # The peer is the session's authenticated DID, and `now` is virtual time.
    assert {did for did, _, _ in gate.asked} == {alice.did}
    assert all(now == pytest.approx(sim.now, abs=1) for _, _, now in gate.asked)
    assert b.available == 0
    assert b.try_receive() is None


def test_each_request_is_decided_once_on_a_lossy_duplicating_path() -> None:
    profile = LinkProfile(latency=0.01, jitter=0.01, loss=0.15, duplicate=0.1, reorder=0.1)
    sim, alice, _bob, a, b, gate = _pair("screen-lossy", profile)
    sent: dict[int, bytes] = {}
    for i in range(300):
        request = PAY if i % 7 == 3 else (READ if i % 5 == 0 else None)
        sent[a.send(b"%d" % i, request)] = b"%d" % i
    expected = [s for s in sent if s % 7 != 3]
    got = _drain(sim, b, len(expected), timeout=600)
    assert [d.seq for d in got] == expected  # in order, exactly once, none refused
    refused_seqs = [s for s in sent if s % 7 == 3]
    asked = [req for _, req, _ in gate.asked]
    assert asked.count(PAY) == len(refused_seqs)  # one decision per message
    assert asked.count(READ) == len([s for s in sent if s % 5 == 0 and s % 7 != 3])
    sim.run_until(lambda: a.queued == 0, timeout=120)
    sim.run_until(lambda: b.queued == 0, timeout=120)  # the notices, acknowledged
    denied = [e.seq for e in alice.events if isinstance(e, MessageDenied)]
    # Each exactly once (a notice is screened when first kept, which may be
    # before the notices ahead of it arrive: the events need not be in order).
    assert sorted(denied) == refused_seqs


def test_a_malformed_envelope_is_refused_even_without_a_gate() -> None:
    sim, alice, bob = connected_pair("screen-malformed")
    a, b = alice.session(bob), bob.session(alice)
    assert a is not None
    assert b is not None
    # Bypass send()'s wrapping: a peer that puts garbage in an envelope.
    seq = a.outbound.enqueue(b"\xff\x01\x09")
    a.owner.want_flush(a)
    a.send(b"after")
    got = _drain(sim, b, 1)
    assert [d.payload for d in got] == [b"after"]
    sim.run_until(lambda: any(isinstance(e, MessageDenied) for e in alice.events), timeout=10)
    (denial,) = [e for e in alice.events if isinstance(e, MessageDenied)]
    assert denial.seq == seq
    assert "malformed capability request" in denial.reason


def test_without_a_gate_requests_are_delivered_for_the_application_to_judge() -> None:
    sim, alice, bob = connected_pair("screen-nogate")
    a, b = alice.session(bob), bob.session(alice)
    assert a is not None
    assert b is not None
    a.send(b"pay", PAY)
    assert _drain(sim, b, 1) == [Delivery(0, b"pay", PAY)]


def test_a_refusal_survives_a_restart_of_the_receiver() -> None:
    """A refusal in order moves the stream's committed high-water mark past
    the message: after a crash it is neither delivered nor decided again."""
    sim = Simulation("screen-restart")
    store = MemoryStore()
    alice = sim.add_node("alice")
    bob = sim.add_node("bob", store=store)
    gate = RuleGate()
    bob.manager.gate = gate
    a = alice.manager.establish(bob.did)
    sim.run_until(lambda: a.state.value == "established", timeout=60)
    a.send(b"first")
    a.send(b"pay", PAY)
    a.send(b"third")
    sim.run_until(lambda: a.queued == 0, timeout=30)  # all kept and acknowledged by bob
    assert len(gate.asked) == 1
    bob = sim.restart("bob", store)
    later = RuleGate()
    bob.manager.gate = later
    b = bob.session(alice)
    assert b is not None
    assert [d.payload for d in _drain(sim, b, 2)] == [b"first", b"third"]
    assert later.asked == []
    assert store.load().inbound == {}  # nothing of the refused message was kept


def test_peek_skips_placeholders_like_receive() -> None:
    sim, _alice, _bob, a, b, _gate = _pair("screen-peek")
    for i in range(6):
        a.send(b"%d" % i, PAY if i % 2 else None)
    sim.run_until(lambda: a.queued == 0, timeout=30)
    assert b.peek(2) == [b"0", b"2"]
    assert b.receive_many(2) == [b"0", b"2"]
    assert b.peek(10) == [b"4"]


# --------------------------------------------------------------------------
# Regressions found in review: restarts, floods, stale notices, ephemeral


def _durable_bob(
    seed: str, config: SessionConfig | None = None
) -> tuple[Simulation, SimNode, SimNode, MemoryStore, RuleGate, Session]:
    sim = Simulation(seed)
    store = MemoryStore()
    alice = sim.add_node("alice", config=config)
    bob = sim.add_node("bob", store=store, config=config)
    gate = RuleGate()
    bob.manager.gate = gate
    a = alice.manager.establish(bob.did)
    sim.run_until(
        lambda: (
            a.state.value == "established"
            and (s := bob.session(alice)) is not None
            and s.state.value == "established"
        ),
        timeout=60,
    )
    return sim, alice, bob, store, gate, a


def test_an_early_refusal_survives_a_crash_and_the_stream_goes_on() -> None:
    """m0 is lost; the refused request behind it arrives early (and is
    acknowledged selectively); Bob crashes.  Its number must still be known
    as taken after the restart, or the stream would wait for it forever."""
    sim, alice, bob, store, gate, a = _durable_bob("screen-early-crash")
    a.send(b"m0")
    lost = alice.manager.datagrams_to_send()
    assert lost  # m0's packet, dropped on the floor
    a.send(b"pay", PAY)
    a.send(b"m2")
    sim.run_until(lambda: len(gate.asked) == 1, timeout=5)
    sim.run_for(0.5)  # Bob's selective ack reaches Alice, who forgets #1 and #2
    store.crash()
    bob = sim.restart("bob", store)
    later = RuleGate()
    bob.manager.gate = later
    b = bob.session(alice)
    assert b is not None
    got = _drain(sim, b, 2, timeout=120)
    assert [d.payload for d in got] == [b"m0", b"m2"]
    assert later.asked == []  # decided once, before the crash


def test_a_request_is_decided_once_across_a_restart_after_reading() -> None:
    sim, alice, bob, store, gate, a = _durable_bob("screen-read-restart")
    for i in range(4):
        a.send(b"r%d" % i, READ)
    b = bob.session(alice)
    assert b is not None
    got = _drain(sim, b, 4)
    assert [d.payload for d in got] == [b"r0", b"r1", b"r2", b"r3"]
    bob = sim.restart("bob", store)
    later = RuleGate()
    bob.manager.gate = later
    a.send(b"after")
    b = bob.session(alice)
    assert b is not None
    assert [d.payload for d in _drain(sim, b, 1, timeout=120)] == [b"after"]
    assert later.asked == []
    assert len(gate.asked) == 4


def test_a_flood_of_refused_requests_is_held_back_not_queued_without_bound() -> None:
    """Bob's outbound queue is tiny and Alice never acknowledges his denial
    notices: they may overflow his queue by MAX_PENDING_NOTICES, then her
    requests wait unscreened (unacknowledged) instead of growing it."""
    from functools import partial

    from l2session.core.lifecycle import screening
    from l2session.core.link.envelope import is_denial

    sim = Simulation("screen-flood")
    alice = sim.add_node("alice")
    bob = sim.add_node("bob", config=SessionConfig(max_queued=4))
    gate = RuleGate()
    bob.manager.gate = gate
    a = alice.manager.establish(bob.did)
    sim.run_until(
        lambda: bob.session(alice) is not None and a.state.value == "established", timeout=60
    )
    b = bob.session(alice)
    assert b is not None
    real = a.inbound.screen
    # A peer that holds every notice back: never kept, never acknowledged.
    a.inbound.screen = lambda seq, body: None if is_denial(body) else body
    cap = 4 + screening.MAX_PENDING_NOTICES
    total = cap + 50
    for _ in range(total):
        a.send(b"pay", PAY)
    sim.run_for(20)
    assert len(b.outbound) == cap
    assert len(gate.asked) == cap  # the other 50 wait, not yet decided
    a.inbound.screen = real if real is not None else partial(screening.screen, a)
    sim.run_until(lambda: a.queued == 0 and b.queued == 0, timeout=600)
    denied = [e.seq for e in alice.events if isinstance(e, MessageDenied)]
    assert len(gate.asked) == total  # each decided once, in the end
    assert sorted(denied) == list(range(total))  # and each answered once


def test_a_stale_notice_is_not_pinned_on_a_new_stream() -> None:
    """Alice restarts without a store: her new stream numbers from 0 again.
    A notice about her old stream's #0 must not name her new #0."""
    sim, alice, _bob, a, b, _gate = _pair("screen-stale")
    notice = denial(a.outbound.stream ^ 1, 0, "old news")
    b.outbound.enqueue(notice, control=True)
    b.owner.want_flush(b)
    a.send(b"fresh")
    sim.run_until(lambda: a.queued == 0 and b.queued == 0, timeout=30)
    assert a.denied is None
    assert not [e for e in alice.events if isinstance(e, MessageDenied)]


def test_an_ephemeral_exchange_ends_when_its_request_is_refused() -> None:
    config = SessionConfig(kind=SessionKind.EPHEMERAL)
    sim, alice, bob = connected_pair("screen-ephemeral", config=config)
    bob.manager.gate = RuleGate()
    a, b = alice.session(bob), bob.session(alice)
    assert a is not None
    assert b is not None
    a.send(b"pay", PAY)
    sim.run_until(lambda: a.closed and b.closed, timeout=30)
    closed = [e for e in alice.events if isinstance(e, SessionClosedEvent)]
    assert "refused" in closed[-1].reason


def test_payload_limits_are_about_the_payload() -> None:
    sim, _alice, _bob, a, b, _gate = _pair("screen-limits")
    limit = a.config.max_message_size
    a.send(b"\xff" * limit)  # escaped: 2 bytes longer on the wire, still fine
    a.send(b"x" * limit, READ)
    with pytest.raises(MessageTooLarge, match=f"message of {limit + 1} bytes"):
        a.send(b"\xff" * (limit + 1))
    got = _drain(sim, b, 2)
    assert [len(d.payload) for d in got] == [limit, limit]
