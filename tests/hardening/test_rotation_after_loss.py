"""Finding 9: a rotation after a lost ROTATE_RESPONSE.

The rotation responder installs the new epoch, and with it the new lineage,
when it answers.  If that answer is lost and the rotation abandoned, the
two sides must still agree on the lineage, or the next rotation derives
different keys.  The channel now keeps a lineage per installed epoch, and
discarding an epoch that never carried traffic restores the lineage before
it.
"""

from __future__ import annotations

from l2session.core.config import SessionConfig
from l2session.core.link.channel import Channel
from l2session.core.link.session import Session
from l2session.core.states import State
from l2session.crypto.ratchet import DoubleRatchet
from l2session.testing.simulation import SimNode, Simulation, both_established, connected_pair

CONFIG = SessionConfig(ttl=120.0, rotation_window=60.0, rotation_timeout=30.0)


def _epoch(node: SimNode, peer: SimNode) -> int:
    session = node.session(peer)
    return -1 if session is None or session.key_epoch is None else session.key_epoch


def _responding(node: SimNode, peer: SimNode) -> bool:
    session = node.session(peer)
    return session is not None and session.rotation is not None and not session.rotation.initiator


def _full_handshakes(session: Session) -> int:
    return sum(1 for r in session.history if r.reason.startswith("PQXDH"))


def _setup(seed: str) -> tuple[Simulation, SimNode, SimNode, Session, Session]:
    sim, alice, bob = connected_pair(seed, config=CONFIG)
    ours, theirs = alice.session(bob), bob.session(alice)
    assert ours is not None
    assert theirs is not None
    return sim, alice, bob, ours, theirs


def test_losing_exactly_the_rotate_response_packet_costs_no_handshake() -> None:
    sim, alice, bob, ours, theirs = _setup("lost-rotate-response")
    session_id, handshakes = ours.session_id, _full_handshakes(ours)
    dropped: list[int] = []

    def drop_the_response() -> bool:
        if not dropped and _responding(bob, alice):
            # Bob just answered: the packet carrying ROTATE_RESPONSE is the
            # one of his in flight to alice.
            dropped.append(
                sim.network.drop_in_flight(lambda d: d.source == "bob" and d.destination == "alice")
            )
        return _epoch(alice, bob) >= 1 and _epoch(bob, alice) >= 1 and ours.rotation is None

    sim.run_until(drop_the_response, timeout=300)
    assert dropped == [1]
    # And the next rotation, from the lineage both now hold.
    sim.run_until(lambda: _epoch(alice, bob) >= 2 and _epoch(bob, alice) >= 2, timeout=300)
    assert ours.session_id == session_id == theirs.session_id
    assert _full_handshakes(ours) == handshakes
    assert State.FAILED not in {r.target for r in ours.history}
    assert State.FAILED not in {r.target for r in theirs.history}


def test_a_rotation_abandoned_at_its_timeout_is_followed_by_working_rotations() -> None:
    """Every packet bob sends while his answer could still arrive is lost:
    both sides reach rotation_timeout, fail as PROTOCOL.md §8 says, and
    re-key with a fresh PQXDH (the keys are past their rotation age, so
    the ticket is not used); no message is lost and the rotations after it
    succeed in-channel."""
    sim, alice, bob, ours, _ = _setup("abandoned-rotation")
    sim.run_until(lambda: _responding(bob, alice), timeout=300)
    for i in range(5):
        ours.send(b"during %d" % i)
    end = sim.now + CONFIG.rotation_timeout + 1
    while sim.now < end:
        sim.network.drop_in_flight(lambda d: d.source == "bob" and d.destination == "alice")
        sim.run_for(0.005)
    assert State.FAILED in {r.target for r in ours.history}

    def settled() -> bool:
        b = bob.session(alice)
        return both_established(alice, bob) and b is not None and b.available == 5

    sim.run_until(settled, timeout=300)
    b = bob.session(alice)
    assert b is not None
    assert b.receive_many() == [b"during %d" % i for i in range(5)]
    session_id = b.session_id
    sim.run_until(lambda: _epoch(alice, bob) >= 2 and _epoch(bob, alice) >= 2, timeout=300)
    assert b.session_id == session_id  # rotated in the channel, no further handshake


def test_discarding_an_unused_epoch_restores_the_lineage_before_it() -> None:
    channel = Channel(
        session_id=bytes(16),
        epoch=0,
        ratchet=_ratchet(),
        lineage=b"L0" * 16,
        keyed_at=0.0,
    )
    channel.install(1, _ratchet(), b"L1" * 16)
    assert channel.lineage == b"L1" * 16
    channel.discard(1)  # the rotation was abandoned before epoch 1 carried anything
    assert channel.lineage == b"L0" * 16
    channel.install(1, _ratchet(), b"L1'" + bytes(29))
    channel.switch_send(1, 1.0)
    assert channel.lineage == b"L1'" + bytes(29)


def _ratchet() -> DoubleRatchet:
    from l2session.crypto import primitives
    from l2session.crypto.rng import SeededRandom

    rng = SeededRandom("channel lineage")
    return DoubleRatchet.for_responder(
        root_key=bytes(32),
        chain_key=bytes(32),
        own_ephemeral=primitives.x25519_generate(rng),
        peer_ephemeral=primitives.x25519_generate(rng).public,
        associated_data=b"",
        rng=rng,
    )
