"""Finding 4: a captured INIT replayed after a responder restart, and
handshake packets that re-addressed an established session.

Before the fix the handshake replay guard lived only in memory, so a
restarted responder answered a captured INIT again; and any INIT or RESUME
moved an established session to the packet's source address.  Now the
guard is journalled (committed before the RESPONSE leaves) and restored at
start, and a handshake packet's source only becomes a migration candidate
that must pass PATH_CHALLENGE.
"""

from __future__ import annotations

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.states import State
from l2session.crypto.pqxdh import InitiatorHandshake
from l2session.identity.bundle import PrekeyBundle
from l2session.identity.resolver import resolve_signing_key
from l2session.store.memory import MemoryStore
from l2session.testing.simulation import SimNode, Simulation, connected_pair
from l2session.wire.packets import HandshakePacket, encode_packet


def _without_one_time(bundle: PrekeyBundle) -> PrekeyBundle:
    """A bundle without one-time prekeys: nothing but the guard can then
    tell a replayed INIT from a fresh one."""
    return PrekeyBundle(bundle.did, bundle.signing_key, bundle.signed_prekeys, ())


def _fresh_init(sim: Simulation, initiator: SimNode, responder: SimNode) -> bytes:
    """A genuine, fresh INIT from ``initiator`` (what an attacker captures)."""
    bundle = _without_one_time(responder.ctx.keys.prekeys.bundle())
    handshake, init = InitiatorHandshake.start(
        local=initiator.ctx.keys.identity,
        peer_did=responder.did,
        peer_signing_key=resolve_signing_key(sim.resolver, responder.did),
        signed_prekeys=bundle.signed_prekeys,
        one_time_prekey=None,
        rng=initiator.ctx.rng,
        now=sim.now,
    )
    return encode_packet(HandshakePacket(handshake.session_id, init))


def test_a_replayed_init_is_refused_by_a_restarted_responder() -> None:
    sim = Simulation("replay-after-restart")
    store = MemoryStore()
    # An ephemeral session (the initiator's kind): bob keeps none of it, so
    # nothing of his own crosses the replay; only the guard stands between
    # it and an answer.
    bob = sim.add_node("bob", store=store)
    alice = sim.add_node(
        "alice",
        config=SessionConfig(kind=SessionKind.EPHEMERAL),
        bundles=lambda did: _without_one_time(bob.ctx.keys.prekeys.bundle()),
    )
    alice.manager.establish(bob.did)
    [init] = alice.manager.datagrams_to_send()
    bob.manager.receive_datagram(init.data, "alice", init.path)
    answers = bob.manager.datagrams_to_send()  # commits, then the RESPONSE leaves
    assert len(answers) == 1
    assert len(store.load().handshake_guard) == 1
    store.crash()
    del sim.nodes["alice"]  # alice is gone; only her INIT's copy remains
    bob = sim.restart("bob", store)
    bob.manager.datagrams_to_send()  # bob's own recovery attempt, to alice
    sim.clock.set(sim.now + 30)  # later, but inside the freshness window
    before = dict(bob.manager.rejections)
    bob.manager.receive_datagram(init.data, "mallory", init.path)
    assert [o for o in bob.manager.datagrams_to_send() if o.address == "mallory"] == []
    after = bob.manager.rejections
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {
        "ReplayDetected": 1
    }


def test_a_genuine_init_from_elsewhere_does_not_re_address_an_established_session() -> None:
    sim, alice, bob = connected_pair("init-from-elsewhere")
    session = bob.session(alice)
    assert session is not None
    before = (session.address, session.path)
    bob.manager.receive_datagram(_fresh_init(sim, alice, bob), "mallory", "quic")
    assert (session.address, session.path) == before
    sent = bob.manager.datagrams_to_send()
    assert [o.address for o in sent] == ["mallory"]  # answered where it came from
    sim.run_for(30)  # the attempt is abandoned; the session carries on at alice
    assert (session.address, session.path) == before
    assert session.state is State.ESTABLISHED
    ours = alice.session(bob)
    assert ours is not None
    ours.send(b"still here")
    sim.run_until(lambda: session.available == 1, timeout=10)
    assert session.receive() == b"still here"


def test_a_resume_from_elsewhere_does_not_re_address_an_established_session() -> None:
    sim = Simulation("resume-from-elsewhere")
    alice_store = MemoryStore()
    alice = sim.add_node("alice", store=alice_store)
    bob = sim.add_node("bob", store=MemoryStore())
    alice.manager.establish(bob.did)
    sim.run_until(
        lambda: (s := bob.session(alice)) is not None and s.state is State.ESTABLISHED, timeout=30
    )
    sim.run_for(5)
    session = bob.session(alice)
    assert session is not None
    before = (session.address, session.path)
    alice = sim.restart("alice", alice_store)  # she resumes with her ticket
    [resume] = alice.manager.datagrams_to_send()
    # The RESUME arrives first from somewhere else (captured and raced).
    bob.manager.receive_datagram(resume.data, "mallory", resume.path)
    assert (session.address, session.path) == before
    # RESUME_ACK and a PATH_CHALLENGE go there; nothing else.
    assert [o.address for o in bob.manager.datagrams_to_send()] == ["mallory", "mallory"]
    # ... and the session is still reached at alice: her copy gets the
    # cached answer there, and traffic flows.
    bob.manager.receive_datagram(resume.data, "alice", resume.path)
    sim.run_until(
        lambda: (s := alice.session(bob)) is not None and s.state is State.ESTABLISHED, timeout=30
    )
    sim.run_for(10)  # the challenge to mallory goes unanswered
    assert (session.address, session.path) == before
    ours = alice.session(bob)
    assert ours is not None
    ours.send(b"resumed")
    sim.run_until(lambda: session.available == 1, timeout=10)
