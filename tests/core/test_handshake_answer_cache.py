"""The cached handshake answers: a lost FINISH is still answered, and the
cache (the INIT, RESPONSE and FINISH bytes, ~4 KB per session on the
responder, ~1.3 KB on the initiator) is dropped once the peer has proven it
completed, so that idle sessions do not carry it for their whole life.

Packets are relayed by hand between the two managers, so each one can be
dropped or replayed exactly where the test needs it.
"""

from __future__ import annotations

from l2session.core.link.session import Session
from l2session.core.management.manager import SessionManager
from l2session.core.states import State
from l2session.testing.simulation import Simulation


def _relay(source: SessionManager, target: SessionManager, address: str) -> int:
    """Deliver everything ``source`` queued to ``target``; returns how many."""
    packets = source.datagrams_to_send()
    for out in packets:
        target.receive_datagram(out.data, address, out.path)
    return len(packets)


def _state(session: Session) -> State:
    """The state now (a call, so that the type checker does not narrow it)."""
    return session.state


def test_a_lost_finish_is_answered_and_the_caches_go_once_proven() -> None:
    sim = Simulation("answer cache")
    alice, bob = sim.add_node("alice"), sim.add_node("bob")
    a, b = alice.manager, bob.manager
    ours = a.establish(bob.did)
    assert _relay(a, b, "alice") == 1  # BUNDLE_REQUEST
    assert _relay(b, a, "bob") == 1  # BUNDLE
    init = a.datagrams_to_send()
    assert len(init) == 1
    b.receive_datagram(init[0].data, "alice", init[0].path)
    assert _relay(b, a, "bob") == 1  # RESPONSE
    assert _state(ours) is State.ESTABLISHED
    assert len(a.datagrams_to_send()) == 1  # FINISH, lost
    theirs = b.session(alice.did)
    assert theirs is not None
    assert _state(theirs) is State.HANDSHAKE_RECEIVED

    sim.clock.advance(1.0)
    b.tick()
    assert _relay(b, a, "bob") == 1  # RESPONSE again
    assert _relay(a, b, "alice") == 1  # the cached FINISH
    assert theirs.state.value == "established"  # (.value: mypy narrowed .state above)
    assert theirs.answers is None  # FINISH proved the initiator is done
    assert ours.answers is not None  # nothing from bob in the channel yet

    # A late copy of INIT is refused (replay guard) and changes nothing.
    channel = theirs.channel
    b.receive_datagram(init[0].data, "alice", init[0].path)
    assert sum(b.rejections.values()) == 1
    assert b.datagrams_to_send() == []
    assert theirs.channel is channel
    assert _state(theirs) is State.ESTABLISHED

    theirs.send(b"hello")
    assert _relay(b, a, "bob") == 1
    assert ours.answers is None  # bob's traffic proves it completed
    assert ours.receive() == b"hello"
