"""Finding 2: a forged RESPONSE never fails a handshake or quarantines anyone.

Before the fix a RESPONSE with a bad signature, from any address, failed
the initiator's handshake at once and quarantined the *genuine* peer's
(DID, address) for 60 s.  Now it is refused and counted, the handshake keeps
waiting, a genuine RESPONSE that arrives later wins, and only a handshake
that saw no valid RESPONSE by ``handshake_timeout`` fails with
``authentication_failed`` (SPEC-018 §2.1's rule, kept).
"""

from __future__ import annotations

from l2session.core.config import SessionConfig
from l2session.core.link.session import Session
from l2session.core.states import State, Trigger
from l2session.crypto.handshake_messages import HandshakeResponse
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.packets import HandshakePacket, decode_packet, encode_packet


def _forge(response: bytes) -> bytes:
    """The genuine RESPONSE packet with its signature replaced."""
    packet = decode_packet(response)
    assert isinstance(packet, HandshakePacket)
    message = HandshakeResponse.decode(packet.message)
    forged = HandshakeResponse(
        message.ephemeral_dh, message.kem_ciphertext, bytes(64), message.confirm
    )
    return encode_packet(HandshakePacket(packet.session_id, forged.encode()))


def _state(session: Session) -> State:
    """The state, read through a call (so checks are not narrowed away)."""
    return session.state


def _init_and_response(seed: str) -> tuple[Simulation, SimNode, SimNode, bytes]:
    """Alice's INIT delivered by hand to Bob; returns Bob's RESPONSE packet,
    not yet delivered."""
    sim = Simulation(seed)
    bob = sim.add_node("bob", config=SessionConfig(handshake_timeout=10))
    alice = sim.add_node(
        "alice",
        config=SessionConfig(handshake_timeout=10),
        bundles=lambda did: bob.ctx.keys.prekeys.bundle() if did == bob.did else None,
    )
    alice.manager.establish(bob.did)
    [init] = alice.manager.datagrams_to_send()
    bob.manager.receive_datagram(init.data, "alice", init.path)
    [response] = bob.manager.datagrams_to_send()
    return sim, alice, bob, response.data


def test_a_forged_response_is_refused_and_the_genuine_one_still_wins() -> None:
    sim, alice, bob, response = _init_and_response("forged-then-genuine")
    session = alice.session(bob)
    assert session is not None
    forged = _forge(response)
    for source in ("mallory", "bob", "mallory"):  # from anywhere, repeatedly
        alice.manager.receive_datagram(forged, source, "quic")
    assert _state(session) is State.HANDSHAKE_INITIATED
    assert alice.manager.rejections.get("invalid_signature") == 3
    assert alice.manager.quarantined_until(bob.did, "bob", sim.now) == 0.0
    alice.manager.receive_datagram(response, "bob", "quic")
    assert _state(session) is State.ESTABLISHED
    sim.run_until(
        lambda: (s := bob.session(alice)) is not None and s.state is State.ESTABLISHED, timeout=10
    )


def test_without_a_valid_response_the_handshake_fails_at_its_timeout() -> None:
    sim, alice, bob, response = _init_and_response("forged-only")
    session = alice.session(bob)
    assert session is not None
    alice.manager.receive_datagram(_forge(response), "bob", "quic")
    sim.network.partition("alice", "bob")
    sim.run_until(lambda: session.state is State.FAILED, timeout=20)
    last = session.history[-1]
    assert last.trigger is Trigger.INVALID_SIG
    assert session.failure_reason == "authentication_failed"
    assert alice.manager.quarantined_until(bob.did, "bob", sim.now) > sim.now


def test_a_lost_response_with_no_forgery_still_fails_as_a_timeout() -> None:
    sim, alice, bob, _ = _init_and_response("plain-timeout")
    session = alice.session(bob)
    assert session is not None
    sim.network.partition("alice", "bob")
    sim.run_until(lambda: session.state is State.FAILED, timeout=20)
    assert session.history[-1].trigger is Trigger.TIMEOUT
    assert alice.manager.quarantined_until(bob.did, "bob", sim.now) == 0.0
