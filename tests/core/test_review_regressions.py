"""Regressions for defects found in review of the session core.

Each test fails on the code before its fix:

* a peer that restarted counts heartbeats from 1 again, and those were
  refused as replays (the survivor's peer counter outlived the channel);
* ``close()`` clipped the reason to 200 *characters*, so a reason of
  two-byte characters made the encoder raise instead of closing;
* the INIT's session id (a packet header its signature does not cover) was
  checked after the one-time prekey was spent and the INIT remembered, so a
  rewritten header burned the prekey and got the genuine INIT refused.
"""

from __future__ import annotations

from l2session.core.events import SessionClosedEvent
from l2session.core.states import State
from l2session.store.memory import MemoryStore
from l2session.testing.simulation import SimNode, Simulation, connected_pair
from l2session.wire.packets import PKT_HANDSHAKE, HandshakePacket, decode_packet, encode_packet


def _established(node: SimNode, peer: SimNode) -> bool:
    session = node.session(peer)
    return session is not None and session.state is State.ESTABLISHED


def test_heartbeats_of_a_restarted_peer_are_accepted() -> None:
    sim = Simulation("restart-heartbeats")
    stores = {"alice": MemoryStore(), "bob": MemoryStore()}
    alice = sim.add_node("alice", store=stores["alice"])
    bob = sim.add_node("bob", store=stores["bob"])
    alice.manager.establish(bob.did)
    sim.run_until(lambda: _established(alice, bob) and _established(bob, alice), timeout=30)
    # The side that opened the session is the one that heartbeats it while
    # idle (docs/PROTOCOL.md §10): restart that one.
    beating, other = alice, bob
    sim.run_for(200)  # its heartbeat counter climbs
    survivor = other.session(beating)
    assert survivor is not None
    assert survivor.hb_peer >= 2  # after the restart it starts at 1
    beating = sim.restart(beating.name, stores[beating.name])
    sim.run_until(lambda: _established(beating, other), timeout=30)
    rejected_before = survivor.rejected
    sim.run_for(300)  # several heartbeat intervals, all idle
    assert survivor.rejected == rejected_before
    assert survivor.state is State.ESTABLISHED
    assert State.DEGRADED not in {r.target for r in survivor.history}
    restarted = beating.session(other)
    assert restarted is not None
    assert State.DEGRADED not in {r.target for r in restarted.history}


def test_an_idle_session_costs_one_heartbeat_exchange_per_interval() -> None:
    """Only the opener's heartbeats run on an idle session; the accepting
    side's would come heartbeat_timeout later and are preempted by the
    answer (no crossing)."""
    sim = Simulation("one exchange")
    alice = sim.add_node("alice")
    bob = sim.add_node("bob")
    alice.manager.establish(bob.did)
    sim.run_until(lambda: _established(alice, bob) and _established(bob, alice), timeout=30)
    opener, acceptor = alice.session(bob), bob.session(alice)
    assert opener is not None
    assert acceptor is not None
    before = (opener.hb_counter, acceptor.hb_counter)
    sim.run_for(10 * 30.0)
    assert opener.hb_counter - before[0] >= 9
    assert acceptor.hb_counter == before[1]
    assert opener.state is State.ESTABLISHED
    assert acceptor.state is State.ESTABLISHED


def test_close_reason_is_clipped_to_bytes_not_characters() -> None:
    sim, alice, bob = connected_pair("close-reason")
    session = alice.session(bob)
    peer = bob.session(alice)
    assert session is not None
    assert peer is not None
    session.close("é" * 300)  # 600 UTF-8 bytes
    assert session.closed
    sim.run_until(lambda: peer.closed, timeout=5)
    closed = [e for e in bob.events if isinstance(e, SessionClosedEvent)]
    assert closed
    reason = closed[-1].reason.removeprefix("closed by peer: ")
    assert reason == "é" * 100


def test_rewritten_init_header_burns_no_prekey() -> None:
    sim = Simulation("init-header")
    alice = sim.add_node("alice")
    bob = sim.add_node("bob")
    prekeys_before = bob.party.prekeys.one_time_count
    original = sim.network.send
    rewritten: list[bytes] = []

    def rewrite(
        source: str, destination: str, path: str, data: bytes | bytearray | memoryview, now: float
    ) -> None:
        raw = bytes(data)
        if destination == "bob" and raw[1] == PKT_HANDSHAKE and not rewritten:
            packet = decode_packet(raw)
            assert isinstance(packet, HandshakePacket)
            forged = encode_packet(HandshakePacket(bytes(16), packet.message))
            rewritten.append(forged)
            original(source, destination, path, forged, now)  # the forgery arrives first
        original(source, destination, path, data, now)

    sim.network.send = rewrite  # type: ignore[method-assign]
    alice.manager.establish(bob.did)
    sim.run_until(lambda: _established(alice, bob) and _established(bob, alice), timeout=30)
    assert rewritten
    assert bob.manager.rejections.get("HandshakeError", 0) >= 1
    # Exactly one one-time prekey was spent: by the genuine INIT.
    assert bob.party.prekeys.one_time_count == prekeys_before - 1
