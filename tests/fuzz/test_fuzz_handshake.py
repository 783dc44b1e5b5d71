"""Mutated handshake and resumption packets fed to real session managers.

Each example stops a genuine Alice-Bob exchange at one message (INIT,
RESPONSE, FINISH, RESUME, RESUME_ACK), feeds the receiving node a damaged
copy instead, and checks what docs/ARCHITECTURE.md "State and commitment"
promises: the packet is refused and counted (never an exception out of
``receive_datagram``), the receiver's session, prekeys, replay guard and
tickets are as before, and the genuine message then completes the exchange.

The one documented exception is a RESPONSE whose *signature* fails: it
fails the initiator's session and quarantines the peer (PROTOCOL.md §6.4),
which the RESPONSE test checks instead.

Forged INITs come from another address ("mallory"): an INIT that fails
authentication quarantines the claimed DID *at the address it came from*
(§6.4), so one from Alice's own address would also block her genuine INIT
for 60 s, by design.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from l2session.core.link.session import Session
from l2session.core.states import State
from l2session.testing.fuzz import mutate, overwrite
from l2session.testing.fuzz_targets import NOW, Duo, packet_kind, rejected
from l2session.testing.simulation import SimNode
from l2session.wire.packets import PrekeyGonePacket, decode_packet

#: Per test; each example builds two nodes and a handshake (about 5 ms).
EXAMPLES = 80

fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _forged(data: st.DataObject, genuine: bytes) -> bytes:
    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        damage = draw(st.sampled_from([mutate, overwrite]))
        return damage(draw, genuine)

    forged = data.draw(mutated(), label="forged")
    assume(forged != genuine)
    return forged


def _state(session: Session) -> State:
    """The session's state, read afresh (mypy would narrow ``session.state``
    across the packet fed in between)."""
    return session.state


def _established(duo: Duo, *nodes: SimNode) -> bool:
    duo.settle(*nodes)
    sessions = [nodes[0].session(nodes[1]), nodes[1].session(nodes[0])]
    return all(s is not None and s.state is State.ESTABLISHED for s in sessions)


@dataclass
class _Handshake:
    duo: Duo
    session: Session
    init: bytes


def _until_init() -> _Handshake:
    duo = Duo()
    session = duo.alice.manager.establish(duo.bob.did)
    _, init = duo.run_until("INIT", duo.alice, duo.bob)
    return _Handshake(duo, session, init)


def _until_response() -> tuple[_Handshake, bytes]:
    handshake = _until_init()
    duo = handshake.duo
    duo.feed(duo.bob, handshake.init, duo.alice.address)
    _, response = duo.run_until("RESPONSE", duo.bob)
    return handshake, response


@fuzz_settings
@given(st.data())
def test_forged_init_is_refused_and_consumes_nothing(data: st.DataObject) -> None:
    handshake = _until_init()
    duo, bob = handshake.duo, handshake.duo.bob
    forged = _forged(data, handshake.init)
    # Damage to the type bytes makes another packet (a RESUME for no ticket
    # is answered RESUME_REJECT, uncounted): the decoder fuzz targets cover
    # those; this test is about damaged INITs.
    assume(packet_kind(forged) == "INIT")
    prekeys = bob.party.prekeys.to_bytes()

    events = duo.feed(bob, forged, "mallory")

    assert rejected(events), packet_kind(forged)
    event(f"refused: {rejected(events)[0].reason}")
    assert bob.manager.sessions == {}
    assert bob.party.prekeys.to_bytes() == prekeys  # no one-time prekey burnt
    assert bob.party.guard.remembered == 0  # the genuine INIT is not a replay
    answers = duo.outbox(bob)
    if rejected(events)[0].reason == "prekey_gone":
        # A damaged prekey id names a prekey Bob does not hold: the one
        # answer is PREKEY_GONE, unauthenticated by design (PROTOCOL.md
        # §3.11), for the INIT's session id and to where it came from.
        assert [type(decode_packet(out.data)) for out in answers] == [PrekeyGonePacket]
        assert {out.address for out in answers} == {"mallory"}
    else:
        assert answers == []  # nothing answered
    duo.feed(bob, handshake.init, duo.alice.address)
    assert _established(duo, duo.alice, bob)


@fuzz_settings
@given(st.data())
def test_forged_response_is_refused_or_fails_the_session_as_specified(
    data: st.DataObject,
) -> None:
    handshake, response = _until_response()
    duo, alice, session = handshake.duo, handshake.duo.alice, handshake.session
    forged = _forged(data, response)
    waiting = session.handshake

    refusals = rejected(duo.feed(alice, forged, duo.bob.address))

    assert len(refusals) == 1, packet_kind(forged)
    event(f"refused: {refusals[0].reason}")
    # PROTOCOL.md §6.4: whatever is wrong with it (an invalid signature
    # too), an unauthenticated RESPONSE fails nothing and quarantines no
    # one; the genuine RESPONSE still completes the handshake.
    assert alice.manager.quarantined_until(duo.bob.did, duo.bob.address, NOW) == 0.0
    assert _state(session) is State.HANDSHAKE_INITIATED
    assert session.handshake is waiting
    assert duo.outbox(alice) == []  # no FINISH for a refused RESPONSE
    duo.feed(alice, response, duo.bob.address)
    assert _established(duo, alice, duo.bob)


@fuzz_settings
@given(st.data())
def test_forged_finish_is_refused_and_the_genuine_one_completes(data: st.DataObject) -> None:
    handshake, response = _until_response()
    duo, bob = handshake.duo, handshake.duo.bob
    duo.feed(duo.alice, response, duo.bob.address)
    _, finish = duo.run_until("FINISH", duo.alice)
    forged = _forged(data, finish)
    session = bob.session(duo.alice)
    assert session is not None
    waiting = session.handshake

    events = duo.feed(bob, forged, duo.alice.address)

    assert rejected(events), packet_kind(forged)
    event(f"refused: {rejected(events)[0].reason}")
    assert _state(session) is State.HANDSHAKE_RECEIVED
    assert session.handshake is waiting
    duo.feed(bob, finish, duo.alice.address)
    assert _state(session) is State.ESTABLISHED


@dataclass
class _Resumption:
    duo: Duo
    alice: SimNode
    session: Session
    resume: bytes


def _until_resume() -> _Resumption:
    """Alice and Bob established; Alice restarted as "alice-2" and asks to
    resume with her ticket; the RESUME is not delivered yet."""
    handshake, response = _until_response()
    duo = handshake.duo
    duo.feed(duo.alice, response, duo.bob.address)
    duo.settle(duo.alice, duo.bob)
    stored = duo.alice.manager.stored[duo.bob.did]
    alice = duo.add("alice-2", "alice")
    session = alice.manager.resume(duo.bob.did, stored)
    _, resume = duo.run_until("RESUME", alice)
    return _Resumption(duo, alice, session, resume)


@fuzz_settings
@given(st.data())
def test_forged_resume_is_refused_and_the_ticket_survives(data: st.DataObject) -> None:
    resumption = _until_resume()
    duo, alice, bob = resumption.duo, resumption.alice, resumption.duo.bob
    forged = _forged(data, resumption.resume)
    tickets = dict(bob.manager.tickets)
    bob_session = bob.session(alice)
    assert bob_session is not None
    session_id = bob_session.session_id

    events = duo.feed(bob, forged, alice.address)

    answers = duo.outbox(bob)
    # Refused, or answered RESUME_REJ (a ticket Bob does not know): never
    # an ACK, and Bob's ticket and session are untouched.
    assert rejected(events) or [packet_kind(out.data) for out in answers] == ["RESUME_REJ"]
    event(f"refused: {rejected(events)[0].reason}" if rejected(events) else "answered RESUME_REJ")
    assert bob.manager.tickets == tickets
    assert _state(bob_session) is State.ESTABLISHED
    assert bob_session.session_id == session_id
    for out in answers:  # a RESUME_REJ for a ticket Alice never sent: refused
        assert rejected(duo.feed(alice, out.data, bob.address))
    assert _state(resumption.session) is State.HANDSHAKE_INITIATED
    duo.feed(bob, resumption.resume, alice.address)
    assert _established(duo, alice, bob)
    assert [r.reason for r in resumption.session.history][-1] == "resumed"


@fuzz_settings
@given(st.data())
def test_forged_resume_ack_is_refused_and_the_genuine_one_completes(
    data: st.DataObject,
) -> None:
    resumption = _until_resume()
    duo, alice, session = resumption.duo, resumption.alice, resumption.session
    duo.feed(duo.bob, resumption.resume, alice.address)
    _, ack = duo.run_until("RESUME_ACK", duo.bob)
    forged = _forged(data, ack)
    pending = session.resume

    events = duo.feed(alice, forged, duo.bob.address)

    assert rejected(events), packet_kind(forged)
    event(f"refused: {rejected(events)[0].reason}")
    assert _state(session) is State.HANDSHAKE_INITIATED
    assert session.resume is pending
    duo.feed(alice, ack, duo.bob.address)
    assert _state(session) is State.ESTABLISHED
