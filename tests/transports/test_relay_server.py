"""The relay's rules, pure (transports/relay_server.py): reservations are
authenticated by the DID and bound to this relay, fresh and single-use;
every limit holds and is counted; a circuit forwards the very bytes
between its two ends only, within its byte budget, time and bandwidth;
and honest reservations and circuits keep working beside abusive ones."""

from __future__ import annotations

from typing import Any

import pytest

from l2session.crypto import primitives
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError, DidResolutionError
from l2session.identity.identity import Identity
from l2session.transports.relay_server import RelayLimits, RelayServer
from l2session.wire.relay import (
    BAD_SIGNATURE,
    BYTE_BUDGET,
    DENIED,
    DURATION,
    FULL,
    NO_RESERVATION,
    PER_IP,
    STALE,
    UNAUTHENTICATED,
    CircuitEnd,
    Connect,
    ConnectOk,
    ConnectReject,
    RelayData,
    Reserve,
    ReserveOk,
    ReserveReject,
    connect_signed_bytes,
    decode_relay,
    encode_relay,
    reserve_signed_bytes,
)

NOW = 1_800_000_000.0
RELAY = Identity.generate(SeededRandom("relay server"))
PEOPLE = {name: Identity.generate(SeededRandom(f"relay user {name}")) for name in "abcdefgh"}
KEYS = {i.did_text: i.signing.public for i in PEOPLE.values()}
A_ROUTE = ("10.218.1.2:7000", "quic")
B_ROUTE = ("10.218.2.2:7000", "tcp")


def lookup(did: str) -> bytes:
    if did not in KEYS:
        raise DidResolutionError(f"unknown {did}")
    return KEYS[did]


def server(gate: Any = None, **limits: Any) -> RelayServer:
    return RelayServer(
        RELAY.did_text, lookup, SeededRandom("circuits"), RelayLimits(**limits), gate
    )


def reserve(who: str, *, at: float = NOW, nonce: bytes | None = None, relay: str = "") -> bytes:
    identity = PEOPLE[who]
    nonce = nonce or SeededRandom(f"{who}{at}").random_bytes(16)
    ts = int(at * 1000)
    signed = reserve_signed_bytes(relay or RELAY.did_text, identity.did_text, ts, nonce)
    signature = primitives.ed25519_sign(identity.signing, signed)
    return encode_relay(Reserve(ts, nonce, identity.did_text, signature))


def answer(out: list[tuple[tuple[str, str], bytes]]) -> object:
    assert len(out) == 1
    return decode_relay(out[0][1])


_nonces = iter(range(1 << 30))


def connect(
    target: str,
    *,
    by: str = "h",
    at: float = NOW,
    nonce: bytes | None = None,
    relay: str = "",
    signer: str = "",
) -> bytes:
    """A CONNECT to ``target`` signed by ``by`` (``signer``: a different key
    signs, a forgery), bound to ``relay`` (default: this relay)."""
    initiator = PEOPLE[by].did_text
    nonce = nonce or next(_nonces).to_bytes(16, "big")
    ts = int(at * 1000)
    target_did = PEOPLE[target].did_text
    signed = connect_signed_bytes(relay or RELAY.did_text, initiator, target_did, ts, nonce)
    signature = primitives.ed25519_sign(PEOPLE[signer or by].signing, signed)
    return encode_relay(Connect(nonce, target_did, ts, initiator, signature))


def open_circuit(relay: RelayServer, target: str = "a") -> bytes:
    reply = answer(relay.receive(connect(target), B_ROUTE, NOW))
    assert isinstance(reply, ConnectOk)
    return reply.circuit


def test_a_reservation_is_granted_to_a_signed_fresh_request() -> None:
    relay = server()
    reply = answer(relay.receive(reserve("a"), A_ROUTE, NOW))
    assert isinstance(reply, ReserveOk)
    assert reply.lifetime == 600
    assert reply.observed == A_ROUTE[0]
    assert relay.holder(PEOPLE["a"].did_text) == A_ROUTE
    assert relay.stats.reservations == 1


@pytest.mark.parametrize(
    ("make", "reason", "name"),
    [
        (lambda: reserve("a", at=NOW - 500), STALE, "stale"),
        (lambda: reserve("a", relay=PEOPLE["b"].did_text), BAD_SIGNATURE, "bad_signature"),
    ],
)
def test_stale_or_foreign_reservations_are_refused(make: Any, reason: int, name: str) -> None:
    relay = server()
    reply = answer(relay.receive(make(), A_ROUTE, NOW))
    assert reply == ReserveReject(reply.nonce, reason)  # type: ignore[attr-defined]
    assert relay.stats.refused == {name: 1}
    assert relay.reservations == 0


def test_a_replayed_reservation_is_refused() -> None:
    relay = server()
    data = reserve("a")
    assert isinstance(answer(relay.receive(data, A_ROUTE, NOW)), ReserveOk)
    replay = answer(relay.receive(data, ("10.218.9.9:1", "quic"), NOW + 1))
    assert isinstance(replay, ReserveReject)
    assert replay.reason == STALE
    assert relay.holder(PEOPLE["a"].did_text) == A_ROUTE  # not moved by the replay


def test_an_unknown_did_cannot_reserve() -> None:
    relay = server()
    stranger = Identity.generate(SeededRandom("stranger"))
    signed = reserve_signed_bytes(RELAY.did_text, stranger.did_text, int(NOW * 1000), bytes(16))
    data = encode_relay(
        Reserve(
            int(NOW * 1000),
            bytes(16),
            stranger.did_text,
            primitives.ed25519_sign(stranger.signing, signed),
        )
    )
    assert answer(relay.receive(data, A_ROUTE, NOW)) == ReserveReject(bytes(16), BAD_SIGNATURE)


def test_the_gate_decides_who_may_reserve() -> None:
    asked: list[str] = []

    def gate(did: str, now: float) -> str | None:
        asked.append(did)
        return None if did == PEOPLE["a"].did_text else "no grant"

    relay = server(gate)
    assert isinstance(answer(relay.receive(reserve("a"), A_ROUTE, NOW)), ReserveOk)
    refused = answer(relay.receive(reserve("b"), B_ROUTE, NOW))
    assert isinstance(refused, ReserveReject)
    assert refused.reason == DENIED
    assert asked == [PEOPLE["a"].did_text, PEOPLE["b"].did_text]
    assert relay.stats.refused == {"denied": 1}


def test_a_reservation_flood_hits_the_limits_and_honest_ones_keep_working() -> None:
    relay = server(max_reservations=4, max_reservations_per_ip=2)
    flood_ip = "10.218.3.3"
    outcomes = [
        answer(relay.receive(reserve(who), (f"{flood_ip}:{7000 + i}", "quic"), NOW))
        for i, who in enumerate("bcd")
    ]
    assert [type(o).__name__ for o in outcomes] == ["ReserveOk", "ReserveOk", "ReserveReject"]
    assert outcomes[2].reason == PER_IP  # type: ignore[attr-defined]
    assert isinstance(answer(relay.receive(reserve("a"), A_ROUTE, NOW)), ReserveOk)
    assert isinstance(answer(relay.receive(reserve("e"), ("10.218.4.4:1", "quic"), NOW)), ReserveOk)
    full = answer(relay.receive(reserve("f"), ("10.218.5.5:1", "quic"), NOW))
    assert isinstance(full, ReserveReject)
    assert full.reason == FULL
    assert relay.stats.refused == {"per_ip": 1, "full": 1}
    # The honest reservation still carries a circuit.
    circuit = open_circuit(relay, "a")
    out = relay.receive(encode_relay(RelayData(circuit, b"\x01\x20hello")), B_ROUTE, NOW)
    assert [route for route, _ in out] == [A_ROUTE]
    # A refresh is not a new reservation, and expiry frees the slots.
    assert isinstance(answer(relay.receive(reserve("a", at=NOW + 1), A_ROUTE, NOW + 1)), ReserveOk)
    assert relay.reservations == 4
    relay.expire(NOW + 600.5)
    assert relay.reservations == 1  # only "a", refreshed at NOW + 1
    relay.expire(NOW + 601)
    assert relay.reservations == 0


def test_a_circuit_forwards_the_very_bytes_between_its_ends_only() -> None:
    relay = server()
    relay.receive(reserve("a"), A_ROUTE, NOW)
    circuit = open_circuit(relay, "a")
    to_a = encode_relay(RelayData(circuit, b"\x01\x20opaque"))
    assert relay.receive(to_a, B_ROUTE, NOW) == [(A_ROUTE, to_a)]
    to_b = encode_relay(RelayData(circuit, b"\x01\x20answer"))
    assert relay.receive(to_b, A_ROUTE, NOW) == [(B_ROUTE, to_b)]
    stranger = ("10.218.7.7:9", "quic")
    assert relay.receive(to_a, stranger, NOW) == []
    unknown = encode_relay(RelayData(bytes(8), b"\x01\x20x"))
    assert relay.receive(unknown, B_ROUTE, NOW) == []
    assert relay.stats.dropped_foreign == 2
    assert relay.stats.packets_forwarded == 2


def test_connect_to_a_did_without_a_reservation_is_refused() -> None:
    relay = server()
    reply = answer(relay.receive(connect("a", nonce=bytes(16)), B_ROUTE, NOW))
    assert reply == ConnectReject(bytes(16), NO_RESERVATION)


def test_a_circuit_over_its_byte_budget_ends_and_an_honest_one_goes_on() -> None:
    relay = server(circuit_max_bytes=1000)
    relay.receive(reserve("a"), A_ROUTE, NOW)
    relay.receive(reserve("b"), ("10.218.8.8:7000", "quic"), NOW)
    greedy = open_circuit(relay, "a")
    honest = open_circuit(relay, "b")
    chunk = encode_relay(RelayData(greedy, b"\x01\x20" + bytes(398)))
    assert relay.receive(chunk, B_ROUTE, NOW) == [(A_ROUTE, chunk)]
    assert relay.receive(chunk, B_ROUTE, NOW) == [(A_ROUTE, chunk)]
    ended = relay.receive(chunk, B_ROUTE, NOW)  # 1,200 > 1,000
    assert sorted(route for route, _ in ended) == sorted([A_ROUTE, B_ROUTE])
    assert {decode_relay(data) for _, data in ended} == {CircuitEnd(greedy, BYTE_BUDGET)}
    assert relay.stats.circuits_ended == {"bytes": 1}
    assert relay.receive(chunk, B_ROUTE, NOW) == []  # gone
    small = encode_relay(RelayData(honest, b"\x01\x20ok"))
    assert relay.receive(small, B_ROUTE, NOW) == [(("10.218.8.8:7000", "quic"), small)]


def test_a_circuit_ends_at_its_time_limit() -> None:
    relay = server(circuit_max_seconds=10)
    relay.receive(reserve("a"), A_ROUTE, NOW)
    circuit = open_circuit(relay, "a")
    ended = relay.expire(NOW + 10)
    assert {decode_relay(data) for _, data in ended} == {CircuitEnd(circuit, DURATION)}
    assert relay.circuits == 0


def test_bandwidth_per_circuit_is_a_token_bucket() -> None:
    relay = server(circuit_rate=1000.0, circuit_burst=1000)
    relay.receive(reserve("a"), A_ROUTE, NOW)
    circuit = open_circuit(relay, "a")
    packet = encode_relay(RelayData(circuit, b"\x01\x20" + bytes(598)))
    assert relay.receive(packet, B_ROUTE, NOW)
    assert relay.receive(packet, B_ROUTE, NOW) == []  # 1,200 > burst
    assert relay.stats.dropped_rate == 1
    assert relay.receive(packet, B_ROUTE, NOW + 0.6)  # refilled


def test_circuits_per_reservation_are_bounded() -> None:
    relay = server(max_circuits_per_reservation=2)
    relay.receive(reserve("a"), A_ROUTE, NOW)
    open_circuit(relay, "a")
    open_circuit(relay, "a")
    third = answer(relay.receive(connect("a"), B_ROUTE, NOW))
    assert isinstance(third, ConnectReject)
    assert third.reason == FULL
    assert relay.stats.refused == {"circuits_full": 1}


def test_garbage_and_answers_sent_to_a_relay_are_counted_and_dropped() -> None:
    relay = server()
    assert relay.receive(b"\x01\x46", A_ROUTE, NOW) == []
    assert relay.receive(encode_relay(ReserveOk(bytes(16), 1, "1.2.3.4:5")), A_ROUTE, NOW) == []
    assert relay.stats.malformed == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_reservations": 0},
        {"max_reservations_per_ip": -1},
        {"reservation_lifetime": 0},
        {"circuit_max_bytes": 0},
        {"circuit_max_seconds": 1 << 33},
        {"circuit_rate": 0.0},
        {"circuit_rate": float("inf")},
        {"max_skew": -1.0},
        {"circuit_burst": True},
    ],
)
def test_every_limit_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="RelayLimits"):
        RelayLimits(**kwargs)


# -- CONNECT is authenticated (the initiator's DID signs it) ---------------------


def test_an_unsigned_connect_is_refused_and_told_the_relays_did() -> None:
    relay = server()
    relay.receive(reserve("a"), A_ROUTE, NOW)
    unsigned = encode_relay(Connect(bytes(16), PEOPLE["a"].did_text))
    reply = answer(relay.receive(unsigned, B_ROUTE, NOW))
    assert reply == ConnectReject(bytes(16), UNAUTHENTICATED, RELAY.did_text)
    assert relay.circuits == 0
    assert relay.stats.refused == {"unauthenticated": 1}


@pytest.mark.parametrize(
    ("make", "reason", "name"),
    [
        # Signed by another key than the initiator DID's (a forgery).
        (lambda: connect("a", by="h", signer="g"), BAD_SIGNATURE, "connect_bad_signature"),
        # Bound to another relay (replayed here from there).
        (lambda: connect("a", relay=PEOPLE["c"].did_text), BAD_SIGNATURE, "connect_bad_signature"),
        # Signed for another target, the target rewritten.
        (
            lambda: connect("b")[:18] + connect("a")[18 : 19 + 56] + connect("b")[19 + 56 :],
            BAD_SIGNATURE,
            "connect_bad_signature",
        ),
        # An initiator DID the relay cannot resolve.
        (
            lambda: encode_relay(
                Connect(bytes(16), PEOPLE["a"].did_text, int(NOW * 1000), "did:web:x", bytes(64))
            ),
            BAD_SIGNATURE,
            "connect_bad_signature",
        ),
        (lambda: connect("a", at=NOW - 500), STALE, "connect_stale"),
        (lambda: connect("a", at=NOW + 500), STALE, "connect_stale"),
    ],
)
def test_forged_foreign_or_stale_connects_are_refused_and_counted(
    make: Any, reason: int, name: str
) -> None:
    relay = server()
    relay.receive(reserve("a"), A_ROUTE, NOW)
    relay.receive(reserve("b"), ("10.218.8.8:7000", "quic"), NOW)
    reply = answer(relay.receive(make(), B_ROUTE, NOW))
    assert isinstance(reply, ConnectReject)
    assert reply.reason == reason
    assert relay.circuits == 0
    assert relay.stats.circuits_opened == 0
    assert relay.stats.refused == {name: 1}


def test_a_replayed_connect_is_refused_the_original_opened_one_circuit() -> None:
    relay = server()
    relay.receive(reserve("a"), A_ROUTE, NOW)
    packet = connect("a")
    assert isinstance(answer(relay.receive(packet, B_ROUTE, NOW)), ConnectOk)
    stranger = ("10.219.9.9:5000", "quic")  # an eavesdropper replays it
    replay = answer(relay.receive(packet, stranger, NOW + 1))
    assert isinstance(replay, ConnectReject)
    assert replay.reason == STALE
    assert relay.circuits == 1
    assert relay.stats.refused == {"connect_stale": 1}


def test_connect_and_reserve_nonces_share_one_replay_window() -> None:
    relay = server()
    nonce = bytes(range(16))
    relay.receive(reserve("a", nonce=nonce), A_ROUTE, NOW)
    reply = answer(relay.receive(connect("a", nonce=nonce), B_ROUTE, NOW))
    assert isinstance(reply, ConnectReject)
    assert reply.reason == STALE
