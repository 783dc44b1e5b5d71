"""Finding 3, the core's half: ``receive_datagram`` says whether a packet
authenticated as the peer of a session reached at its source address.

The runtime passes that to ``Transport.confirm``: only then may a μTCP
connection that arrived with a HELLO claim carry the node's packets.
"""

from __future__ import annotations

from l2session.testing.simulation import connected_pair


def test_only_an_authenticated_packet_from_the_sessions_address_confirms() -> None:
    _, alice, bob = connected_pair("authenticated-source")
    session = alice.session(bob)
    assert session is not None
    alice.manager.datagrams_to_send()
    session.send(b"one")
    [first] = alice.manager.datagrams_to_send()
    session.send(b"two")
    [second] = alice.manager.datagrams_to_send()

    assert bob.manager.receive_datagram(first.data, "alice", first.path) is True
    assert bob.manager.receive_datagram(first.data, "alice", first.path) is False  # replay
    flipped = bytearray(second.data)
    flipped[-1] ^= 1
    assert bob.manager.receive_datagram(bytes(flipped), "alice", second.path) is False
    assert bob.manager.receive_datagram(b"\x00garbage", "alice", second.path) is False
    # Genuine, but from elsewhere: a migration candidate, not a confirmation.
    assert bob.manager.receive_datagram(second.data, "mallory", second.path) is False
