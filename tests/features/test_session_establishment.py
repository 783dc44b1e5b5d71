"""SPEC-018 §2.1 Session Establishment, executed (steps for session_establishment.feature)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, scenarios, then, when

from l2session.core.events import SessionAccepted
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.states import State, Trigger
from l2session.crypto.handshake_messages import (
    TYPE_INIT,
    TYPE_RESPONSE,
    HandshakeInit,
    HandshakeResponse,
)
from l2session.crypto.primitives import MLKEM768_CIPHERTEXT_SIZE, MLKEM768_PUBLIC_KEY_SIZE
from l2session.crypto.rng import SeededRandom
from l2session.errors import PeerQuarantined
from l2session.identity.bundle import PrekeyBundle
from l2session.testing.parties import Party
from l2session.wire.packets import (
    BundlePacket,
    BundleRequest,
    DataPacket,
    HandshakePacket,
    ResumeAckPacket,
    ResumePacket,
    encode_packet,
)

from .scenario_harness import EPS, LATENCY, MLKEM, Sent, World, record_of

scenarios("session_establishment.feature")

DAY = 24 * 3600.0


def _inits(world: World) -> list[Sent]:
    return [s for s in world.sent_by("alice") if s.handshake_type == TYPE_INIT]


# ----------------------------------------------------------------------
# Scenario: Successful establishment with new peer


@when("session establishment is initiated")
def initiate(world: World) -> None:
    world.marks["initiated"] = world.now
    world.alice.manager.establish(world.bob.did)


@then("PQxdh handshake request is sent")
def handshake_request_sent(world: World) -> None:
    session = world.session("alice")
    # Alice does not know Bob's prekeys yet: she asks him for his bundle ...
    world.sim.pump()
    first = world.sent_by("alice")[0]
    assert isinstance(first.packet, BundleRequest)
    assert first.packet.did == world.bob.did
    assert first.at == world.marks["initiated"]
    # ... and the PQXDH INIT leaves as soon as the bundle is in.
    world.sim.run_until(lambda: bool(_inits(world)), timeout=1.0)
    (sent,) = _inits(world)
    assert sent.destination == "bob"
    assert isinstance(sent.packet, HandshakePacket)
    init = HandshakeInit.decode(sent.packet.message)
    assert (init.initiator_did, init.responder_did) == (world.alice.did, world.bob.did)
    assert len(init.ephemeral_kem) == MLKEM768_PUBLIC_KEY_SIZE
    assert len(init.kem_ciphertext) == MLKEM768_CIPHERTEXT_SIZE
    assert world.crypto["mlkem_encapsulate"] == 1  # to Bob's signed PQ prekey
    # Sent, not yet answered.
    assert session.state is State.HANDSHAKE_INITIATED
    world.marks["init_sent"] = sent.at


@when("valid handshake response received")
def response_received(world: World) -> None:
    session = world.session("alice")
    world.sim.run_until(lambda: session.state is not State.HANDSHAKE_INITIATED, timeout=5.0)
    (init,) = _inits(world)
    responses = [s for s in world.sent_by("bob") if s.handshake_type == TYPE_RESPONSE]
    assert len(responses) == 1
    response = responses[0]
    assert isinstance(response.packet, HandshakePacket)
    assert isinstance(init.packet, HandshakePacket)
    assert response.packet.session_id == init.packet.session_id
    HandshakeResponse.decode(response.packet.message)  # a well-formed RESPONSE
    established = session.history[-1]
    # Alice moved the moment Bob's RESPONSE arrived.
    assert established.at == pytest.approx(response.at + LATENCY, abs=EPS)
    world.marks["established"] = established.at
    world.marks["lease"] = session.lease_until


@then("shared session keys are derived")
def shared_keys(world: World) -> None:
    world.sim.run_until(world.both_established, timeout=5.0)
    alice, bob = world.session("alice"), world.session("bob")
    assert alice.channel is not None
    assert bob.channel is not None
    (init,) = _inits(world)
    assert isinstance(init.packet, HandshakePacket)
    assert alice.session_id == bob.session_id == init.packet.session_id
    # Both derived the same secrets: the lineage key the next epoch derives
    # from, and the resumption secret of the ticket each side keeps.
    assert alice.channel.lineage == bob.channel.lineage
    alice_ticket = world.alice.manager.stored[world.bob.did]
    bob_ticket = world.bob.manager.stored[world.alice.did]
    assert alice_ticket.resumption_secret == bob_ticket.resumption_secret
    # And the keys work, both ways.
    world.send("alice", b"hello Bob")
    world.send("bob", b"hello Alice")
    world.assert_exactly_once_in_order(timeout=5.0)


@then("TTL is set to 24 hours")
def ttl_24h(world: World) -> None:
    session = world.session("alice")
    assert session.config.ttl == DAY
    assert world.marks["lease"] - world.marks["established"] == pytest.approx(DAY, abs=EPS)
    # Traffic since then only pushed it forward, never beyond a day ahead.
    assert session.lease_until >= world.marks["lease"]
    assert DAY - 10.0 < session.lease_until - world.now <= DAY


# ----------------------------------------------------------------------
# Scenario: Session resumption


@given("previous session exists with unchanged prekeys")
def previous_session(world: World) -> None:
    world.start()
    world.establish()
    world.send("alice", b"before restart")
    world.assert_exactly_once_in_order(timeout=5.0)
    # The prekeys Bob's handshake used are still the ones he publishes.
    (bundle,) = [s.packet for s in world.sent_by("bob") if isinstance(s.packet, BundlePacket)]
    used = PrekeyBundle.decode(bundle.bundle).signed_prekeys
    assert world.bob.party.prekeys.bundle().signed_prekeys == used
    # Alice persists her ticket and restarts: a new node, same identity,
    # nothing in memory but the stored bytes.
    alice = world.alice
    world.ticket = alice.manager.stored[world.bob.did].to_bytes()
    world.keep()
    world.marks["bob_pq_keyed_at"] = world.session("bob").pq_keyed_at
    del world.sim.nodes["alice"]
    world.sim.add_node("alice2", party=alice.party)
    world.role["alice"] = "alice2"
    world.outbox = {"alice": [], "bob": []}
    world.inbox = {"alice": [], "bob": []}


@when("resumption is initiated")
def resume(world: World) -> None:
    stored = StoredSession.from_bytes(world.ticket)
    world.crypto.clear()
    world.marks["resume"] = world.now
    session = world.alice.manager.resume(world.bob.did, stored)
    assert session.state is State.HANDSHAKE_INITIATED
    world.sim.run_until(world.both_established, timeout=5.0)


@then("existing key material is reused")
def key_material_reused(world: World) -> None:
    stored = StoredSession.from_bytes(world.ticket)
    alice, bob = world.session("alice"), world.session("bob")
    assert alice.state is State.ESTABLISHED
    # No KEM work at all, on either side: the ticket's secret is the key material.
    assert {name: world.crypto[name] for name in MLKEM} == dict.fromkeys(MLKEM, 0)
    packets = [s for s in world.sent if s.at >= world.marks["resume"]]
    kinds = {(s.source, type(s.packet).__name__) for s in packets}
    assert ("alice2", "ResumePacket") in kinds
    assert ("bob", "ResumeAckPacket") in kinds
    assert not {k for k in kinds if k[1] in ("BundleRequest", "BundlePacket", "HandshakePacket")}
    resumes = [s.packet for s in packets if isinstance(s.packet, ResumePacket)]
    assert {p.ticket_id for p in resumes} == {stored.ticket_id}
    acks = [s.packet for s in packets if isinstance(s.packet, ResumeAckPacket)]
    assert {p.ticket_id for p in acks} == {stored.ticket_id}
    # The post-quantum keying of the original handshake is carried on (its
    # age still drives rotation); Bob kept his session object.
    assert alice.pq_keyed_at == stored.pq_keyed_at
    assert bob.pq_keyed_at == world.marks["bob_pq_keyed_at"]
    assert bob is world.kept["bob"]
    assert alice.channel is not None
    assert bob.channel is not None
    assert alice.session_id == bob.session_id
    assert alice.channel.lineage == bob.channel.lineage
    world.send("alice", b"resumed, Bob")
    world.send("bob", b"resumed, Alice")
    world.assert_exactly_once_in_order(timeout=5.0)


@then('state becomes "established" within 100ms')
def established_within_100ms(world: World) -> None:
    alice = world.session("alice")
    record = record_of(alice, State.ESTABLISHED)
    assert record.source is State.HANDSHAKE_INITIATED
    assert record.reason == "resumed"
    assert record.at - world.marks["resume"] <= 0.100
    # Single use: replaying the RESUME (from Alice's address, or anyone's)
    # does not open a second session or re-key the first.
    stored = StoredSession.from_bytes(world.ticket)
    assert stored.ticket_id not in world.bob.manager.tickets
    bob = world.session("bob")
    session_id, history, sessions = bob.session_id, bob.history, dict(world.bob.manager.sessions)
    accepted = sum(isinstance(e, SessionAccepted) for e in world.bob.events)
    raw = next(s.data for s in world.sent if isinstance(s.packet, ResumePacket))
    answer = next(s.data for s in world.sent if isinstance(s.packet, ResumeAckPacket))
    replayed = world.now
    for source in ("alice2", "mallory"):
        world.sim.network.send(source, "bob", "quic", raw, replayed)
    world.sim.run_for(2.0)
    # At most the cached answer is repeated (a lost RESUME_ACK); no new keys.
    answers = [s for s in world.sent_by("bob", replayed) if not isinstance(s.packet, DataPacket)]
    assert answers
    assert {s.data for s in answers} == {answer}
    assert world.bob.manager.sessions == sessions
    assert world.session("bob") is bob
    assert bob.session_id == session_id
    assert bob.history == history
    assert sum(isinstance(e, SessionAccepted) for e in world.bob.events) == accepted
    assert bob.state is State.ESTABLISHED
    assert world.session("alice").state is State.ESTABLISHED


# ----------------------------------------------------------------------
# Scenario: Establishment timeout


@given("the peer is unreachable")
def peer_unreachable(world: World) -> None:
    world.sim.network.partition("alice", "bob")


@when("no response within 5 seconds")
def no_response(world: World) -> None:
    session = world.alice.manager.establish(world.bob.did)
    start = world.now
    took = world.sim.run_until(lambda: session.state is State.FAILED, timeout=10.0)
    assert took == pytest.approx(session.config.handshake_timeout, abs=EPS)
    assert session.config.handshake_timeout == 5.0
    # Alice kept asking (resent every second); nothing came back.
    asked = world.sent_by("alice", since=start)
    assert len(asked) >= 5
    assert all(isinstance(s.packet, BundleRequest) for s in asked)
    assert not world.sent_by("bob")
    assert world.sim.network.stats.dropped_partition == len(world.sent)


@then("retry is scheduled with exponential backoff")
def retry_with_backoff(world: World) -> None:
    session = world.session("alice")
    policy = session.config.reconnect
    assert policy.jitter > 0
    delays: list[float] = []
    for attempt in (1, 2, 3):
        failed = record_of(session, State.FAILED)
        assert failed.reason == "timeout"
        assert session.retry_at is not None
        delay = session.retry_at - failed.at
        base = policy.initial_delay * policy.backoff_multiplier ** (attempt - 1)
        assert base == 2.0 ** (attempt - 1)
        assert base * (1 - policy.jitter) - EPS <= delay <= base + EPS, (attempt, delay)
        delays.append(delay)
        retry_at = session.retry_at
        world.sim.run_until(lambda: session.state is State.HANDSHAKE_INITIATED, timeout=60.0)
        retried = session.history[-1]
        assert retried.trigger is Trigger.RETRY_WITH_BACKOFF
        assert retried.at == pytest.approx(retry_at, abs=EPS)
        # The retry really goes out on the wire ...
        assert any(s.at == retried.at for s in world.sent_by("alice"))
        # ... and times out again (Bob is still unreachable).
        world.sim.run_until(lambda: session.state is State.FAILED, timeout=10.0)
    assert delays == sorted(delays)
    assert delays != [1.0, 2.0, 4.0]  # jittered, not lockstep


# ----------------------------------------------------------------------
# Scenario: Authentication failure


@given("an impostor answers in the peer's name")
def impostor(world: World) -> None:
    """Mallory, on the path, replaces the signature of Bob's RESPONSE with
    her own: a RESPONSE in Bob's name that Bob's DID key did not sign."""
    mallory = Party.create(SeededRandom("mallory"), now=world.now)

    def forge(sent: Sent) -> bytes | None:
        packet = sent.packet
        if sent.source != "bob" or sent.handshake_type != TYPE_RESPONSE:
            return sent.data
        assert isinstance(packet, HandshakePacket)
        response = HandshakeResponse.decode(packet.message)
        signature = mallory.identity.signing.private.sign(response.body())
        forged = HandshakeResponse(
            response.ephemeral_dh, response.kem_ciphertext, signature, response.confirm
        )
        assert forged.signature != response.signature
        world.marks["forged"] = sent.at
        return encode_packet(HandshakePacket(packet.session_id, forged.encode()))

    world.tamper = forge


@when("invalid signature received")
def invalid_signature(world: World) -> None:
    # A forged RESPONSE is refused and the handshake keeps waiting for the
    # genuine one (an unauthenticated packet fails nothing); every RESPONSE
    # here is forged, so the attempt fails authentication_failed at its
    # handshake_timeout.
    started = world.now
    session = world.alice.manager.establish(world.bob.did)
    timeout = session.config.handshake_timeout
    world.sim.run_until(lambda: session.state is State.FAILED, timeout=timeout + 5.0)
    failed = session.history[-1]
    assert failed.trigger is Trigger.INVALID_SIG
    assert world.marks["forged"] + LATENCY < failed.at
    # The genuine, signed BUNDLE came back after one round trip and gave
    # the INIT's round trip a handshake_timeout of its own (PROTOCOL.md §6.4).
    assert failed.at == pytest.approx(started + 2 * LATENCY + timeout, abs=EPS)
    assert session.channel is None  # nothing was derived from the forgery


@then("peer is quarantined for 60 seconds")
def quarantined(world: World) -> None:
    manager, bob = world.alice.manager, world.bob
    session = world.session("alice")
    failed = record_of(session, State.FAILED)
    now = world.now
    until = manager.quarantined_until(bob.did, "bob", now)
    assert until == pytest.approx(failed.at + 60.0, abs=EPS)
    assert until > now + 59.0
    # Refused before any crypto is spent or any packet sent.
    world.tamper = None
    world.crypto.clear()
    sent = len(world.sent_by("alice"))
    with pytest.raises(PeerQuarantined) as refused:
        manager.establish(bob.did)
    assert refused.value.until == until
    assert not any(world.crypto.values())
    world.sim.pump()
    assert len(world.sent_by("alice")) == sent
    # The failed session's own retry waits for the quarantine too.
    assert session.retry_at is not None
    assert session.retry_at >= until
    # Nothing from Alice's side reaches for Bob until the 60 s are over ...
    world.sim.run_for(until - world.now - 0.5)
    assert manager.quarantined_until(bob.did, "bob", world.now) == until
    with pytest.raises(PeerQuarantined):
        manager.establish(bob.did)
    initiating = [
        s
        for s in world.sent_by("alice", since=failed.at + EPS)
        if isinstance(s.packet, BundleRequest | ResumePacket) or s.handshake_type == TYPE_INIT
    ]
    assert not initiating
    assert session.state is State.FAILED
    # ... and then, with the impostor gone, the retry establishes for real.
    world.sim.run_until(world.both_established, timeout=60.0)
    established = record_of(session, State.ESTABLISHED)
    assert established.at >= until
    assert manager.quarantined_until(bob.did, "bob", world.now) == 0.0
