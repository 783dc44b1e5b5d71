"""PQXDH: the happy paths, and every way an attacker or a fault can break it.

Each refusal is typed, and leaves the refusing side able to complete the
genuine handshake (nothing committed on failure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.crypto import primitives
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.handshake_messages import HandshakeFinish, HandshakeInit, HandshakeResponse
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.crypto.prekey_records import OneTimePrekey, SignedPrekeySet
from l2session.crypto.rng import RandomSource, SeededRandom
from l2session.errors import (
    AuthenticationFailed,
    ConfigError,
    DidNotFound,
    HandshakeError,
    L2SessionError,
    MalformedMessage,
    PrekeyExpired,
    PrekeyNotFound,
    ReplayDetected,
)
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.testing.parties import Party, run_handshake
from l2session.testing.resolver import MockResolver

RESOLVER = default_resolver()
_SEEDS = itertools.count()


def lookup(did: str) -> bytes:
    return resolve_signing_key(RESOLVER, did)


def start(
    initiator: Party,
    responder: Party,
    now: float,
    *,
    rng: RandomSource | None = None,
    one_time: bool = True,
    signed: SignedPrekeySet | None = None,
    one_time_record: OneTimePrekey | None = None,
    peer_key: bytes | None = None,
    encapsulator: primitives.Encapsulator | None = None,
) -> tuple[InitiatorHandshake, bytes]:
    rng = rng or SeededRandom(f"start {next(_SEEDS)}")
    bundle = responder.prekeys.bundle()
    return InitiatorHandshake.start(
        local=initiator.identity,
        peer_did=responder.did,
        peer_signing_key=peer_key or responder.identity.signing_public,
        signed_prekeys=signed or bundle.signed_prekeys,
        one_time_prekey=one_time_record or (bundle.pick_one_time(rng) if one_time else None),
        rng=rng,
        now=now,
        encapsulator=encapsulator,
    )


def answer(
    responder: Party,
    init: bytes,
    now: float,
    *,
    key_lookup: Callable[[str], bytes] = lookup,
    guard: HandshakeReplayGuard | None = None,
) -> tuple[ResponderHandshake, bytes]:
    return ResponderHandshake.receive_init(
        init,
        local=responder.identity,
        prekeys=responder.prekeys,
        peer_signing_key=key_lookup,
        guard=guard if guard is not None else responder.guard,
        rng=SeededRandom("answer"),
        now=now,
    )


def responder_snapshot(responder: Party) -> tuple[int, int, bytes]:
    return (
        responder.guard.remembered,
        responder.prekeys.one_time_count,
        responder.prekeys.to_bytes(),
    )


# --------------------------------------------------------------------------
# happy paths


@pytest.mark.parametrize("one_time", [True, False])
def test_handshake_agrees_on_everything(
    make_party: Callable[..., Party], now: float, one_time: bool
) -> None:
    alice, bob = make_party("a"), make_party("b")
    pool = bob.prekeys.one_time_count
    a, b = run_handshake(alice, bob, rng=SeededRandom(1), now=now, use_one_time_prekey=one_time)
    assert a.session_id == b.session_id
    assert len(a.session_id) == 16
    assert a.handshake_hash == b.handshake_hash
    assert a.root_key == b.root_key
    assert a.resumption_secret == b.resumption_secret
    assert a.root_key != a.resumption_secret
    assert (a.role, b.role) == ("initiator", "responder")
    assert (a.peer_did, b.peer_did) == (bob.did, alice.did)
    assert a.peer_signing_key == bob.identity.signing_public
    assert b.peer_identity_dh == alice.identity.agreement_public
    assert a.used_one_time_prekey is b.used_one_time_prekey is one_time
    assert bob.prekeys.one_time_count == pool - (1 if one_time else 0)
    assert a.ratchet.decrypt(b.ratchet.encrypt(b"hello")) == b"hello"


def test_two_handshakes_share_no_keys(alice: Party, bob: Party, now: float) -> None:
    first = run_handshake(alice, bob, rng=SeededRandom(2), now=now, use_one_time_prekey=False)[0]
    second = run_handshake(alice, bob, rng=SeededRandom(3), now=now, use_one_time_prekey=False)[0]
    assert first.root_key != second.root_key
    assert first.session_id != second.session_id


def test_results_hide_secrets(alice: Party, bob: Party, now: float) -> None:
    a, _ = run_handshake(alice, bob, rng=SeededRandom(4), now=now, use_one_time_prekey=False)
    text = repr(a)
    assert a.root_key.hex() not in text
    assert repr(a.root_key) not in text
    assert repr(a.resumption_secret) not in text
    assert "session_id" in text


def test_message_sizes(alice: Party, bob: Party, now: float) -> None:
    handshake, init = start(alice, bob, now, one_time=False)
    _waiting, response = answer(bob, init, now)
    _, finish = handshake.receive_response(response)
    assert len(response) == 2 + 32 + 1088 + 64 + 32
    assert len(finish) == 34
    assert len(init) == len(HandshakeInit.decode(init).encode())


# --------------------------------------------------------------------------
# identity: wrong keys, tampered signatures, swapped prekeys


def test_wrong_identity_key_for_the_initiator_is_refused(
    make_party: Callable[..., Party], now: float
) -> None:
    """The resolver says Alice's DID has Eve's key: Alice's signature fails."""
    alice, bob, eve = make_party("a"), make_party("b"), make_party("e")
    resolver = MockResolver()
    resolver.add(alice.did, eve.identity.signing_public)
    _handshake, init = start(alice, bob, now)
    before = responder_snapshot(bob)
    with pytest.raises(AuthenticationFailed, match="does not verify") as info:
        answer(bob, init, now, key_lookup=lambda did: resolve_signing_key(resolver, did))
    assert info.value.reason == "invalid_signature"
    assert responder_snapshot(bob) == before


def test_impostor_bundle_under_the_responders_did_is_refused(
    make_party: Callable[..., Party], now: float
) -> None:
    """Eve publishes prekeys claiming to be Bob, signed with her own key."""
    alice, bob, eve = make_party("a"), make_party("b"), make_party("e")
    forged = SignedPrekeySet.create(
        owner_did=bob.did,
        signing=eve.identity.signing,
        identity_dh=eve.identity.agreement_public,
        prekey_id=1,
        signed_prekey=eve.prekeys.bundle().signed_prekeys.signed_prekey,
        pq_prekey=eve.prekeys.bundle().signed_prekeys.pq_prekey,
        created_ms=int(now * 1000),
        expires_ms=int(now * 1000) + 10_000,
    )
    with pytest.raises(AuthenticationFailed, match="signed prekeys"):
        start(alice, bob, now, signed=forged, one_time=False)


def test_responder_impostor_is_caught_by_its_signature(
    make_party: Callable[..., Party], now: float
) -> None:
    """Eve intercepts INIT and answers with her own key: Alice refuses."""
    alice, bob, eve = make_party("a"), make_party("b"), make_party("e")
    handshake, init = start(alice, bob, now, one_time=False)
    _, genuine = answer(bob, init, now)
    response = HandshakeResponse.decode(genuine)
    forged = dataclasses.replace(
        response, signature=primitives.ed25519_sign(eve.identity.signing, b"whatever")
    )
    with pytest.raises(AuthenticationFailed) as info:
        handshake.receive_response(forged.encode())
    assert info.value.reason == "invalid_signature"
    handshake.receive_response(genuine)  # still completes


@pytest.mark.parametrize("record", ["signed", "one_time"])
def test_tampered_prekey_signature_is_refused(
    make_party: Callable[..., Party], now: float, record: str
) -> None:
    alice, bob = make_party("a"), make_party("b")
    bundle = bob.prekeys.bundle()
    signed = bundle.signed_prekeys
    one_time = bundle.one_time_prekeys[0]
    if record == "signed":
        bad = bytearray(signed.signature)
        bad[10] ^= 0x20
        signed = dataclasses.replace(signed, signature=bytes(bad))
    else:
        bad = bytearray(one_time.signature)
        bad[0] ^= 0x01
        one_time = dataclasses.replace(one_time, signature=bytes(bad))
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        start(alice, bob, now, signed=signed, one_time_record=one_time)


def test_swapped_mlkem_prekey_in_the_record_breaks_its_signature(
    make_party: Callable[..., Party], now: float
) -> None:
    alice, bob, eve = make_party("a"), make_party("b"), make_party("e")
    swapped = dataclasses.replace(
        bob.prekeys.bundle().signed_prekeys,
        pq_prekey=eve.prekeys.bundle().signed_prekeys.pq_prekey,
    )
    with pytest.raises(AuthenticationFailed, match="signed prekeys"):
        start(alice, bob, now, signed=swapped, one_time=False)


def test_encapsulating_to_another_mlkem_key_fails_key_confirmation(
    make_party: Callable[..., Party], now: float
) -> None:
    """An initiator tricked into encapsulating to a key that is not the
    responder's (say a swapped key in memory): the responder's decapsulation
    yields another secret and the initiator refuses the response."""
    alice, bob, eve = make_party("a"), make_party("b"), make_party("e")
    eve_key = eve.prekeys.bundle().signed_prekeys.pq_prekey

    def to_eve(public: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
        return primitives.openssl_encapsulate(eve_key, rng)

    handshake, init = start(alice, bob, now, one_time=False, encapsulator=to_eve)
    _, response = answer(bob, init, now)
    with pytest.raises(AuthenticationFailed) as info:
        handshake.receive_response(response)
    assert info.value.reason == "key_confirmation_failed"


def test_damaged_kem_ciphertext_in_the_response_fails_confirmation(
    alice: Party, bob: Party, now: float
) -> None:
    handshake, init = start(alice, bob, now, one_time=False)
    _, genuine = answer(bob, init, now)
    response = HandshakeResponse.decode(genuine)
    ct = bytearray(response.kem_ciphertext)
    ct[5] ^= 1
    damaged = dataclasses.replace(response, kem_ciphertext=bytes(ct))
    # The signature covers the ciphertext, so this fails at the signature.
    with pytest.raises(AuthenticationFailed):
        handshake.receive_response(damaged.encode())
    handshake.receive_response(genuine)


def test_unknown_initiator_did_is_a_resolution_error(
    make_party: Callable[..., Party], now: float
) -> None:
    alice, bob = make_party("a"), make_party("b")
    resolver = MockResolver(resolve_did_key=False)
    _, init = start(alice, bob, now)
    before = responder_snapshot(bob)
    with pytest.raises(DidNotFound):
        answer(bob, init, now, key_lookup=lambda did: resolve_signing_key(resolver, did))
    assert responder_snapshot(bob) == before


# --------------------------------------------------------------------------
# replay, freshness, addressing


def test_replayed_initial_message_is_refused(make_party: Callable[..., Party], now: float) -> None:
    alice, bob = make_party("a"), make_party("b")
    _, init = start(alice, bob, now)
    answer(bob, init, now)
    before = responder_snapshot(bob)
    with pytest.raises(ReplayDetected, match="already received"):
        answer(bob, init, now + 1)
    assert responder_snapshot(bob) == before
    # After a restart (memory lost) the consumed one-time prekey still refuses it.
    with pytest.raises(PrekeyNotFound, match="already used"):
        answer(bob, init, now + 1, guard=HandshakeReplayGuard())


def test_replay_without_one_time_prekey_is_refused_by_memory(
    alice: Party, bob: Party, now: float
) -> None:
    _, init = start(alice, bob, now, one_time=False, rng=SeededRandom("replay"))
    guard = HandshakeReplayGuard()
    answer(bob, init, now, guard=guard)
    with pytest.raises(ReplayDetected):
        answer(bob, init, now + 200, guard=guard)
    # Beyond the freshness window it is stale instead.
    with pytest.raises(HandshakeError, match="behind this node's clock"):
        answer(bob, init, now + 301, guard=guard)


@pytest.mark.parametrize(("offset", "direction"), [(-301.0, "ahead of"), (301.0, "behind")])
def test_stale_or_future_timestamps_are_refused(
    alice: Party, bob: Party, now: float, offset: float, direction: str
) -> None:
    _, init = start(alice, bob, now, one_time=False)
    with pytest.raises(HandshakeError, match=direction):
        answer(bob, init, now + offset)


def test_guard_memory_is_bounded(now: float) -> None:
    guard = HandshakeReplayGuard(max_entries=3)
    for i in range(5):
        guard.commit(bytes([i]) * 32, int(now * 1000), now)
    assert guard.remembered == 3
    guard.check(bytes([0]) * 32, int(now * 1000), now)  # evicted: forgotten
    with pytest.raises(ReplayDetected):
        guard.check(bytes([4]) * 32, int(now * 1000), now)
    with pytest.raises(ConfigError):
        HandshakeReplayGuard(max_skew=0)
    with pytest.raises(ConfigError):
        HandshakeReplayGuard(max_entries=0)


def test_init_for_someone_else_is_refused(make_party: Callable[..., Party], now: float) -> None:
    alice, bob, carol = make_party("a"), make_party("b"), make_party("c")
    _, init = start(alice, bob, now)
    with pytest.raises(HandshakeError, match="addressed to"):
        answer(carol, init, now)


def test_no_session_with_oneself(alice: Party, now: float) -> None:
    with pytest.raises(HandshakeError, match="own DID"):
        start(alice, alice, now)


# --------------------------------------------------------------------------
# prekey lifetime


def test_expired_signed_prekeys_are_refused_by_the_initiator(
    alice: Party, bob: Party, now: float
) -> None:
    expires = bob.prekeys.bundle().signed_prekeys.expires_ms / 1000
    with pytest.raises(PrekeyExpired, match="fetch a fresh bundle"):
        start(alice, bob, expires + 1, one_time=False)


def test_rotated_out_prekeys_are_refused_by_the_responder(
    make_party: Callable[..., Party], now: float
) -> None:
    alice, bob = make_party("a"), make_party("b")
    expires = bob.prekeys.bundle().signed_prekeys.expires_ms / 1000
    _, init = start(alice, bob, expires - 100, one_time=False)  # just valid for Alice
    bob.prekeys.maintain(rng=SeededRandom("rotate"), now=expires + 1)
    with pytest.raises(PrekeyNotFound, match="rotated out"):
        answer(bob, init, expires + 1)


def test_old_bundle_still_works_during_the_overlap(
    make_party: Callable[..., Party], now: float
) -> None:
    alice, bob = make_party("a"), make_party("b")
    old_bundle = bob.prekeys.bundle()
    later = now + bob.prekeys.policy.signed_prekey_lifetime + 60
    assert bob.prekeys.maintain(rng=SeededRandom("rotate"), now=later)
    assert bob.prekeys.bundle().signed_prekeys.prekey_id != old_bundle.signed_prekeys.prekey_id
    handshake, init = start(alice, bob, later, signed=old_bundle.signed_prekeys, one_time=False)
    _, response = answer(bob, init, later)
    handshake.receive_response(response)


# --------------------------------------------------------------------------
# malformed, truncated, extended, flipped


@pytest.mark.parametrize("change", ["truncate", "extend"])
def test_truncated_or_extended_messages_are_malformed(
    make_party: Callable[..., Party], now: float, change: str
) -> None:
    alice, bob = make_party("a"), make_party("b")

    def damage(message: bytes) -> bytes:
        return message[:-1] if change == "truncate" else message + b"\x00"

    handshake, init = start(alice, bob, now)
    before = responder_snapshot(bob)
    with pytest.raises(MalformedMessage):
        answer(bob, damage(init), now)
    assert responder_snapshot(bob) == before
    waiting, response = answer(bob, init, now)
    with pytest.raises(MalformedMessage):
        handshake.receive_response(damage(response))
    _, finish = handshake.receive_response(response)
    with pytest.raises(MalformedMessage):
        waiting.receive_finish(damage(finish))
    waiting.receive_finish(finish)


def test_every_bit_flip_in_every_message_is_refused_and_harmless(
    make_party: Callable[..., Party], now: float
) -> None:
    alice, bob = make_party("a"), make_party("b")
    handshake, init = start(alice, bob, now)
    before = responder_snapshot(bob)
    for index in range(len(init)):
        damaged = bytearray(init)
        damaged[index] ^= 0x01
        with pytest.raises(L2SessionError):
            answer(bob, bytes(damaged), now)
    assert responder_snapshot(bob) == before
    waiting, response = answer(bob, init, now)
    for index in range(len(response)):
        damaged = bytearray(response)
        damaged[index] ^= 0x80
        with pytest.raises(L2SessionError):
            handshake.receive_response(bytes(damaged))
    initiator_result, finish = handshake.receive_response(response)
    for index in range(len(finish)):
        damaged = bytearray(finish)
        damaged[index] ^= 0x04
        with pytest.raises(L2SessionError):
            waiting.receive_finish(bytes(damaged))
    responder_result = waiting.receive_finish(finish)
    assert responder_result.root_key == initiator_result.root_key


def test_a_completed_handshake_refuses_more_input(alice: Party, bob: Party, now: float) -> None:
    handshake, init = start(alice, bob, now, one_time=False)
    waiting, response = answer(bob, init, now)
    _, finish = handshake.receive_response(response)
    waiting.receive_finish(finish)
    with pytest.raises(HandshakeError, match="already complete"):
        handshake.receive_response(response)
    with pytest.raises(HandshakeError, match="already complete"):
        waiting.receive_finish(finish)


def test_message_types_are_not_interchangeable(alice: Party, bob: Party, now: float) -> None:
    handshake, init = start(alice, bob, now, one_time=False)
    with pytest.raises(MalformedMessage, match="message type"):
        handshake.receive_response(init)
    with pytest.raises(MalformedMessage, match="version"):
        HandshakeFinish.decode(b"\x02\x03" + bytes(32))


def test_one_time_flag_must_be_canonical() -> None:
    init = HandshakeInit(
        initiator_did="did:example:a",
        responder_did="did:example:b",
        initiator_identity_dh=bytes(32),
        ephemeral_dh=bytes(32),
        ephemeral_kem=bytes(1184),
        signed_prekey_id=1,
        one_time_prekey_id=None,
        kem_ciphertext=bytes(1088),
        timestamp_ms=0,
        signature=bytes(64),
    )
    encoded = bytearray(init.encode())
    offset = 2 + 2 + 13 + 2 + 13 + 32 + 32 + 1184 + 4
    encoded[offset + 1 : offset + 5] = (7).to_bytes(4, "big")
    with pytest.raises(MalformedMessage, match="without its flag"):
        HandshakeInit.decode(bytes(encoded))
    encoded[offset] = 2
    with pytest.raises(MalformedMessage, match="0 or 1"):
        HandshakeInit.decode(bytes(encoded))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_only_ever_raise_malformed(data: bytes) -> None:
    for decoder in (HandshakeInit.decode, HandshakeResponse.decode, HandshakeFinish.decode):
        with contextlib.suppress(MalformedMessage):
            decoder(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=2600))
def test_random_init_bytes_never_escape_typed_errors(data: bytes) -> None:
    """Prefixed with a valid version/type so they reach the field decoders."""
    bob = _FUZZ_BOB
    before = responder_snapshot(bob)
    with pytest.raises(L2SessionError):
        answer(bob, b"\x01\x01" + data, 1_800_000_000.0)
    assert responder_snapshot(bob) == before


_FUZZ_BOB = Party.create(SeededRandom("fuzz bob"), now=1_800_000_000.0)


def test_copying_an_ephemeral_key_cannot_block_its_owner(
    make_party: Callable[..., Party], now: float
) -> None:
    """Regression (review finding 4): Mallory's INIT reusing Alice's EK_A is
    remembered under Mallory's DID, so Alice's genuine INIT still passes."""
    alice, bob, mallory = make_party("a"), make_party("b"), make_party("m")
    _, mallory_init = start(mallory, bob, now, one_time=False, rng=SeededRandom("same ek"))
    handshake, alice_init = start(alice, bob, now, one_time=False, rng=SeededRandom("same ek"))
    assert HandshakeInit.decode(mallory_init).ephemeral_dh == (
        HandshakeInit.decode(alice_init).ephemeral_dh
    )
    answer(bob, mallory_init, now)
    _, response = answer(bob, alice_init, now)
    handshake.receive_response(response)


def test_attacker_text_is_escaped_in_error_messages(alice: Party, bob: Party, now: float) -> None:
    """Regression (review finding 6): DIDs from unauthenticated input are
    shown with repr, so they cannot forge log lines or terminal escapes."""
    _, init = start(alice, bob, now, one_time=False)
    decoded = HandshakeInit.decode(init)
    hostile = dataclasses.replace(decoded, responder_did="did:x\n2026 INFO ok\x1b[2J")
    with pytest.raises(HandshakeError) as info:
        answer(bob, hostile.encode(), now)
    message = str(info.value)
    assert "\n" not in message
    assert "\x1b" not in message
    assert "\\n" in message


def test_a_restored_guard_past_its_bound_keeps_the_latest_inits() -> None:
    """A store may hold more unexpired INITs than ``max_entries`` (it is
    pruned by time only).  The guard keeps the ones a replay is most
    likely to reuse -- the latest -- and drops the soonest to expire, as
    ``commit`` does.  Found in the wave review: restore kept the soonest."""
    guard = HandshakeReplayGuard(max_skew=300.0, max_entries=2)
    now = 1_000.0
    stored = [(b"k-late", now + 290.0), (b"k-early", now + 10.0), (b"k-mid", now + 150.0)]
    guard.restore([*stored, (b"k-expired", now - 1.0)], now)
    assert guard.remembered == 2
    for key in (b"k-late", b"k-mid"):
        with pytest.raises(ReplayDetected):
            guard.check(key, int(now * 1000), now)
    guard.check(b"k-early", int(now * 1000), now)  # the one left out
    guard.check(b"k-expired", int(now * 1000), now)
