"""One-time prekeys are handed out once, and an INIT naming a prekey that
is gone is answered PREKEY_GONE at once (docs/PROTOCOL.md §3.11, §6.1-§6.2).

Before, a bundle answer picked a one-time prekey at random from the pool,
so concurrent initiators often got the same one; the hub refused the
second INIT as ``PrekeyNotFound`` and sent nothing back, and that
initiator waited for its handshake timeout (11-15 % of first attempts at
100 peers).
"""

from __future__ import annotations

from dataclasses import replace

from l2session.core.config import SessionConfig
from l2session.core.lifecycle.establishment import MAX_PREKEY_RETRIES
from l2session.core.states import State
from l2session.crypto.rng import SeededRandom
from l2session.identity.bundle import PrekeyBundle
from l2session.testing.parties import Party
from l2session.testing.simulation import START, SimNode, Simulation
from l2session.wire.packets import (
    GONE_ONE_TIME,
    HandshakePacket,
    PrekeyGonePacket,
    decode_packet,
    encode_packet,
)

CONFIG = SessionConfig(handshake_timeout=5.0)


def _established(node: SimNode, peer: SimNode) -> bool:
    session = node.session(peer)
    return session is not None and session.state is State.ESTABLISHED


def test_concurrent_bundle_requests_get_distinct_one_time_prekeys() -> None:
    sim = Simulation("prekey hand-out")
    hub = sim.add_node("hub", config=CONFIG)
    pool = hub.party.prekeys.one_time_count
    peers = [sim.add_node(f"peer{i}", config=CONFIG) for i in range(30)]
    for peer in peers:
        peer.manager.establish(hub.did)
    sim.run_until(lambda: all(_established(p, hub) for p in peers), timeout=10)
    # Every first attempt worked: nothing was refused as gone, and 30
    # distinct one-time prekeys were consumed.
    assert "prekey_gone" not in hub.manager.rejections
    assert hub.party.prekeys.one_time_count == pool - 30
    assert all(p.manager.session(hub.did).prekey_retries == 0 for p in peers)  # type: ignore[union-attr]


def test_hand_out_never_repeats_and_runs_dry() -> None:
    party = Party.create(SeededRandom("hand out"), now=START)
    prekeys = party.prekeys
    pool = prekeys.one_time_count
    handed = [prekeys.hand_out() for _ in range(pool)]
    ids = [k.prekey_id for k in handed if k is not None]
    assert len(set(ids)) == pool
    assert prekeys.hand_out() is None  # the bundle then goes without one
    assert prekeys.one_time_available == 0
    assert prekeys.one_time_count == pool  # handed out, still usable
    prekeys.consume_one_time_prekey(ids[0])
    assert prekeys.one_time_count == pool - 1
    # Refilling watches what is still available to hand out.
    assert prekeys.maintain(rng=SeededRandom("refill"), now=START)
    assert prekeys.one_time_available == prekeys.policy.one_time_pool_size
    fresh = prekeys.hand_out()
    assert fresh is not None
    assert fresh.prekey_id not in ids


def test_what_was_handed_out_is_not_persisted() -> None:
    """After a restart every unconsumed key may be handed out again (the
    second INIT naming one is then answered PREKEY_GONE)."""
    party = Party.create(SeededRandom("hand out restart"), now=START)
    prekeys = party.prekeys
    first = prekeys.hand_out()
    restored = type(prekeys).from_bytes(prekeys.to_bytes(), party.identity)
    again = restored.hand_out()
    assert first is not None
    assert again is not None
    assert again.prekey_id == first.prekey_id


def _with_bundle(node: SimNode, bundle: PrekeyBundle) -> None:
    """``node`` takes ``bundle`` from its directory (Context.bundles)."""
    node.manager.ctx = replace(node.manager.ctx, bundles=lambda did: bundle)


def test_an_init_naming_a_spent_one_time_prekey_is_answered_at_once() -> None:
    """Two initiators hold the same published bundle with one one-time
    prekey: the second INIT is answered PREKEY_GONE, its initiator fetches
    a fresh bundle from the hub and is established well within its
    handshake timeout."""
    sim = Simulation("prekey gone")
    hub = sim.add_node("hub", config=CONFIG)
    full = hub.party.prekeys.bundle()
    stale = PrekeyBundle(full.did, full.signing_key, full.signed_prekeys, full.one_time_prekeys[:1])
    first, second = (sim.add_node(name, config=CONFIG) for name in ("first", "second"))
    for node in (first, second):
        _with_bundle(node, stale)
    first.manager.establish(hub.did)
    sim.run_until(lambda: _established(first, hub), timeout=5)
    started = sim.now
    session = second.manager.establish(hub.did)
    sim.run_until(lambda: _established(second, hub), timeout=CONFIG.handshake_timeout)
    assert hub.manager.rejections["prekey_gone"] == 1
    assert session.prekey_retries == 1
    # Three one-way trips (INIT, PREKEY_GONE, BUNDLE_REQ ...) on a fast
    # simulated link, no resend: nowhere near the resend interval.
    assert sim.now - started < 1.0


def test_prekey_gone_for_no_pending_init_is_refused() -> None:
    sim = Simulation("prekey gone refused")
    alice = sim.add_node("alice", config=CONFIG)
    sim.add_node("bob", config=CONFIG)
    stray = encode_packet(PrekeyGonePacket(bytes(16), GONE_ONE_TIME, 7))
    alice.manager.receive_datagram(stray, "bob", "quic")
    assert alice.manager.rejections == {"MalformedMessage": 1}
    assert alice.manager.datagrams_to_send() == []


def test_fresh_bundles_after_prekey_gone_are_bounded() -> None:
    """A forged PREKEY_GONE costs at most MAX_PREKEY_RETRIES bundle round
    trips per attempt; further ones are refused."""
    sim = Simulation("prekey gone bounded")
    alice = sim.add_node("alice", config=CONFIG)
    bob = sim.add_node("bob", config=CONFIG)
    session = alice.manager.establish(bob.did)
    refusals: list[int] = []
    for _ in range(50):  # bounded: each pass moves every packet one hop
        if len(refusals) > MAX_PREKEY_RETRIES:
            break
        # Deliver BUNDLE_REQ and BUNDLE, but answer each INIT with a forged
        # PREKEY_GONE instead of delivering it.
        for out in alice.manager.datagrams_to_send() + bob.manager.datagrams_to_send():
            target = bob if out.address == "bob" else alice
            source = "alice" if target is bob else "bob"
            packet = decode_packet(out.data)
            if isinstance(packet, HandshakePacket):
                forged = PrekeyGonePacket(packet.session_id, GONE_ONE_TIME, 1)
                before = sum(alice.manager.rejections.values())
                alice.manager.receive_datagram(encode_packet(forged), "bob", out.path)
                refusals.append(sum(alice.manager.rejections.values()) - before)
            else:
                target.manager.receive_datagram(out.data, source, out.path)
    assert refusals == [0] * MAX_PREKEY_RETRIES + [1]
    assert session.prekey_retries == MAX_PREKEY_RETRIES
    assert session.state is State.HANDSHAKE_INITIATED
