"""The Double Ratchet: ordering, loss, replays, tampering, limits, re-seed,
persistence.  Every refusal must leave the state byte-for-byte unchanged."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2session.crypto import primitives
from l2session.crypto.ratchet import HEADER_SIZE, MAX_SKIP, OVERHEAD, DoubleRatchet
from l2session.crypto.ratchet_state import MAX_STORED_SKIPPED
from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    AuthenticationFailed,
    ConfigError,
    CryptoError,
    L2SessionError,
    MalformedMessage,
    MessageTooLarge,
    RekeyPending,
    ReplayDetected,
    TooManySkippedKeys,
)
from l2session.testing.parties import Party, run_handshake


def pair(seed: str = "pair", **limits: int) -> tuple[DoubleRatchet, DoubleRatchet]:
    """(initiator, responder) ratchets as a handshake would leave them,
    without the handshake (fast enough for property tests)."""
    rng = SeededRandom(seed)
    root, chain, ad = rng.random_bytes(32), rng.random_bytes(32), rng.random_bytes(32)
    ek_a, ek_b = primitives.x25519_generate(rng), primitives.x25519_generate(rng)

    def side(
        own: primitives.DhKeyPair,
        peer: primitives.DhKeyPair,
        send: bytes | None,
        recv: bytes | None,
        label: str,
    ) -> DoubleRatchet:
        return DoubleRatchet(
            root_key=root,
            own_key=own,
            peer_key=peer.public,
            send_chain=send,
            recv_chain=recv,
            associated_data=ad,
            rng=rng.fork(label),
            **limits,
        )

    return side(ek_a, ek_b, None, chain, "initiator"), side(ek_b, ek_a, chain, None, "responder")


def assert_refused_without_change(
    ratchet: DoubleRatchet, message: bytes, error: type[L2SessionError]
) -> None:
    before = ratchet.to_bytes()
    with pytest.raises(error):
        ratchet.decrypt(message)
    assert ratchet.to_bytes() == before


def test_handshake_ratchets_talk_both_ways(alice: Party, bob: Party, now: float) -> None:
    a, b = run_handshake(alice, bob, rng=SeededRandom("hs"), now=now, use_one_time_prekey=False)
    assert a.ratchet.decrypt(b.ratchet.encrypt(b"responder first")) == b"responder first"
    assert b.ratchet.decrypt(a.ratchet.encrypt(b"initiator")) == b"initiator"
    assert a.ratchet.decrypt(b.ratchet.encrypt(b"again")) == b"again"


def test_initiator_may_speak_first() -> None:
    a, b = pair()
    assert b.decrypt(a.encrypt(b"first")) == b"first"
    assert a.decrypt(b.encrypt(b"reply")) == b"reply"


def test_each_direction_change_is_a_dh_step() -> None:
    a, b = pair()
    keys = set()
    for i in range(4):
        b.decrypt(a.encrypt(b"a%d" % i))
        keys.add(a.sending_ratchet_key)
        a.decrypt(b.encrypt(b"b%d" % i))
        keys.add(b.sending_ratchet_key)
    assert len(keys) == 8


def test_out_of_order_within_and_across_chains() -> None:
    a, b = pair()
    first_chain = [a.encrypt(b"1-%d" % i) for i in range(5)]
    b.decrypt(first_chain[0])
    a.decrypt(b.encrypt(b"turn"))
    second_chain = [a.encrypt(b"2-%d" % i) for i in range(3)]
    # The new chain arrives before the rest of the old one.
    assert b.decrypt(second_chain[2]) == b"2-2"
    assert b.skipped_key_count == 4 + 2
    for i in (4, 1, 3, 2):
        assert b.decrypt(first_chain[i]) == b"1-%d" % i
    for i in (0, 1):
        assert b.decrypt(second_chain[i]) == b"2-%d" % i
    assert b.skipped_key_count == 0


def test_lost_messages_do_not_stop_the_conversation() -> None:
    a, b = pair()
    for i in range(20):
        message = a.encrypt(b"%d" % i)
        if i % 3:
            assert b.decrypt(message) == b"%d" % i
    assert b.skipped_key_count == 7
    assert a.decrypt(b.encrypt(b"fine")) == b"fine"


def test_every_replay_is_refused_without_change() -> None:
    a, b = pair()
    messages = [a.encrypt(b"m%d" % i) for i in range(4)]
    for m in (messages[3], messages[0], messages[2], messages[1]):
        b.decrypt(m)
    for m in messages:
        assert_refused_without_change(b, m, ReplayDetected)
    a.decrypt(b.encrypt(b"x"))
    later = a.encrypt(b"new chain")
    b.decrypt(later)
    assert_refused_without_change(b, later, ReplayDetected)
    # A message from a retired chain is recognised without DH work.
    assert_refused_without_change(b, messages[1], ReplayDetected)


def test_replay_after_restoring_an_old_state_is_caught_by_the_window() -> None:
    """Restore a snapshot taken before a message was received, then make the
    chain position disagree with the window: the window still refuses it."""
    a, b = pair()
    message = a.encrypt(b"once")
    b.decrypt(message)
    state = b.to_bytes()
    restored = DoubleRatchet.from_bytes(state, rng=SeededRandom("r"))
    assert_refused_without_change(restored, message, ReplayDetected)


@pytest.mark.parametrize("position", [0, 31, 32, 36, 40, 48, HEADER_SIZE, HEADER_SIZE + 5, -1])
def test_a_flipped_bit_anywhere_is_refused_without_change(position: int) -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"warm up"))
    message = bytearray(a.encrypt(b"payload"))
    message[position] ^= 0x01
    assert_refused_without_change(b, bytes(message), L2SessionError)
    assert b.decrypt(a.encrypt(b"still fine")) == b"still fine"


def test_exhaustive_bit_flips_never_escape_typed_errors() -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"warm up"))
    message = a.encrypt(b"0123456789")
    before = b.to_bytes()
    for index in range(len(message)):
        for bit in (0x01, 0x80):
            damaged = bytearray(message)
            damaged[index] ^= bit
            with pytest.raises(L2SessionError):
                b.decrypt(bytes(damaged))
    assert b.to_bytes() == before
    assert b.decrypt(message) == b"0123456789"


def test_truncated_and_extended_messages_are_refused() -> None:
    a, b = pair()
    message = a.encrypt(b"payload")
    for bad in (message[:-1], message[: HEADER_SIZE + 15], message[:10], b"", message + b"\x00"):
        assert_refused_without_change(b, bad, L2SessionError)
    with pytest.raises(MalformedMessage, match="shorter than its header"):
        b.decrypt(message[:HEADER_SIZE])
    assert b.decrypt(message) == b"payload"


def test_forged_new_chain_commits_nothing() -> None:
    """A forged header with a fresh DH key and a huge skip costs work, but
    changes nothing: the genuine conversation continues."""
    a, b = pair()
    b.decrypt(a.encrypt(b"start"))
    forged_key = primitives.x25519_generate(SeededRandom("forger")).public
    forged = forged_key + (1).to_bytes(4, "big") + (500).to_bytes(4, "big")
    forged += (99).to_bytes(8, "big") + (0).to_bytes(4, "big") + bytes(40)
    assert_refused_without_change(b, forged, AuthenticationFailed)
    assert b.decrypt(a.encrypt(b"genuine")) == b"genuine"


def test_forward_jump_limit_is_25000() -> None:
    a, b = pair()
    messages = [a.encrypt(b"") for _ in range(MAX_SKIP + 2)]
    assert_refused_without_change(b, messages[MAX_SKIP + 1], TooManySkippedKeys)
    # Exactly at the limit is fine; only the newest 2,000 keys are kept.
    assert b.decrypt(messages[MAX_SKIP]) == b""
    assert b.skipped_key_count == MAX_STORED_SKIPPED
    assert b.decrypt(messages[MAX_SKIP - 1]) == b""
    assert_refused_without_change(b, messages[0], ReplayDetected)


def test_skip_limit_also_counts_the_previous_chain() -> None:
    a, b = pair(max_skip=10)
    b.decrypt(a.encrypt(b"0"))
    old_chain = [a.encrypt(b"") for _ in range(8)]
    a.decrypt(b.encrypt(b"turn"))
    new_chain = [a.encrypt(b"") for _ in range(4)]
    # 8 missing from the old chain + 3 before this one in the new: 11 > 10.
    assert_refused_without_change(b, new_chain[3], TooManySkippedKeys)
    assert b.decrypt(new_chain[2]) == b""
    assert b.decrypt(old_chain[0]) == b""


def test_stored_skipped_keys_are_bounded_oldest_first() -> None:
    a, b = pair(max_stored=5)
    messages = [a.encrypt(b"%d" % i) for i in range(10)]
    b.decrypt(messages[9])
    assert b.skipped_key_count == 5
    assert_refused_without_change(b, messages[3], ReplayDetected)
    assert b.decrypt(messages[4]) == b"4"


def test_plaintext_size_limit() -> None:
    a, _ = pair(max_message=100)
    a.encrypt(bytes(100))
    with pytest.raises(MessageTooLarge, match="exceeds the limit of 100"):
        a.encrypt(bytes(101))


def test_oversized_ciphertext_is_refused_before_work() -> None:
    _a, b = pair(max_message=100)
    with pytest.raises(MalformedMessage, match="exceeds the limit"):
        b.decrypt(bytes(OVERHEAD + 101))


@pytest.mark.parametrize(
    "limits",
    [{"max_skip": MAX_SKIP + 1}, {"max_stored": MAX_STORED_SKIPPED + 1}, {"max_message": 0}],
)
def test_limits_cannot_be_raised_past_the_maxima(limits: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        pair("limits", **limits)


def test_ciphertexts_are_distinct_for_equal_plaintexts() -> None:
    a, _ = pair()
    assert a.encrypt(b"same") != a.encrypt(b"same")


# --------------------------------------------------------------------------
# post-quantum re-seed


def reseed_exchange(starter: DoubleRatchet, expecter: DoubleRatchet, rng: SeededRandom) -> bytes:
    """The rotation protocol: the starter sends a KEM key, the expecter
    encapsulates, expects, and replies with the ciphertext; the starter
    decapsulates and starts.  Returns the secret."""
    kem = primitives.mlkem_generate(rng)
    expecter.decrypt(starter.encrypt(b"rotate:" + kem.public))
    secret, ciphertext = primitives.mlkem_encapsulate(kem.public, rng)
    expecter.expect_pq_reseed(secret)
    reply = expecter.encrypt(b"ciphertext:" + ciphertext)
    assert starter.decrypt(reply) == b"ciphertext:" + ciphertext
    starter.start_pq_reseed(primitives.mlkem_decapsulate(kem, ciphertext))
    return secret


def test_reseed_advances_epoch_on_both_sides_and_loses_nothing() -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"before"))
    in_flight = a.encrypt(b"in flight across the re-seed")
    reseed_exchange(a, b, SeededRandom("kem"))
    assert (a.epoch, b.epoch) == (0, 0)
    assert b.decrypt(a.encrypt(b"a steps")) == b"a steps"  # a's step applies it
    assert (a.epoch, b.epoch) == (1, 1)
    assert a.decrypt(b.encrypt(b"b answers")) == b"b answers"
    assert b.decrypt(in_flight) == b"in flight across the re-seed"
    assert not a.reseed_pending
    assert not b.reseed_pending


def test_reseed_in_every_conversation_shape_never_blocks() -> None:
    """Regression (review finding 1): the expecting side's reply carrying
    the ciphertext must stay readable, whoever spoke last before."""
    for shape in ("a-last", "b-last", "a-many", "fresh"):
        a, b = pair(shape)
        if shape == "a-last":
            b.decrypt(a.encrypt(b"x"))
        elif shape == "b-last":
            b.decrypt(a.encrypt(b"x"))
            a.decrypt(b.encrypt(b"y"))
        elif shape == "a-many":
            for _ in range(3):
                b.decrypt(a.encrypt(b"x"))
        for starter, expecter in ((a, b), (b, a)):
            reseed_exchange(starter, expecter, SeededRandom(shape))
            for _ in range(2):
                expecter.decrypt(starter.encrypt(b"ping"))
                starter.decrypt(expecter.encrypt(b"pong"))
            assert starter.epoch == expecter.epoch
        assert a.epoch == b.epoch == 2


def test_reseed_changes_the_keys() -> None:
    """Same conversation with and without a re-seed: the keys diverge."""
    with_reseed, without = pair("same"), pair("same")
    for (a, b), reseed in ((with_reseed, True), (without, False)):
        b.decrypt(a.encrypt(b"x"))
        if reseed:
            a.expect_pq_reseed(bytes(32))
            b.start_pq_reseed(bytes(32))
    first = with_reseed[1].encrypt(b"y")
    second = without[1].encrypt(b"y")
    assert first[:32] == second[:32]  # same new DH key (same seeded rng) ...
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]  # ... different chain
    assert with_reseed[0].decrypt(first) == b"y"


def test_message_of_an_unregistered_epoch_waits_for_registration() -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"hi"))
    secret = bytes(range(32))
    b.start_pq_reseed(secret)
    early = b.encrypt(b"epoch 1 already")
    assert_refused_without_change(a, early, RekeyPending)
    a.expect_pq_reseed(secret)
    assert a.decrypt(early) == b"epoch 1 already"
    assert a.epoch == 1


def test_expecting_side_never_starts_a_reseed() -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"hi"))
    b.expect_pq_reseed(bytes(32))
    message = b.encrypt(b"my step stays in epoch 0")
    assert int.from_bytes(message[48:52], "big") == 0
    assert a.decrypt(message) == b"my step stays in epoch 0"
    assert b.reseed_pending


def test_mismatched_reseed_secrets_fail_authentication() -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"hi"))
    a.expect_pq_reseed(bytes(32))
    b.start_pq_reseed(b"\x01" * 32)
    assert_refused_without_change(a, b.encrypt(b"nope"), AuthenticationFailed)


def test_a_pending_reseed_can_be_cancelled() -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"hi"))
    b.start_pq_reseed(bytes(32))
    b.cancel_pq_reseed()
    assert not b.reseed_pending
    assert a.decrypt(b.encrypt(b"still epoch 0")) == b"still epoch 0"
    assert (a.epoch, b.epoch) == (0, 0)


def test_only_one_reseed_may_be_pending() -> None:
    a, _ = pair()
    a.start_pq_reseed(bytes(32))
    with pytest.raises(CryptoError, match="already pending"):
        a.expect_pq_reseed(bytes(32))
    with pytest.raises(ConfigError):
        pair()[0].start_pq_reseed(bytes(31))


def test_an_epoch_that_skips_ahead_is_refused() -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"hi"))
    message = bytearray(b.encrypt(b"x"))
    message[48:52] = (5).to_bytes(4, "big")
    assert_refused_without_change(a, bytes(message), ReplayDetected)


class FlakyRandom:
    """Fails the first draw after ``arm()``; then behaves."""

    def __init__(self) -> None:
        self.inner = SeededRandom("flaky")
        self.fail_next = False

    def random_bytes(self, n: int) -> bytes:
        if self.fail_next:
            self.fail_next = False
            raise OSError("entropy source temporarily unavailable")
        return self.inner.random_bytes(n)


def test_a_failed_send_step_changes_nothing() -> None:
    """Regression (review finding 3): the lazy DH step with a pending re-seed
    must not consume the re-seed if key generation fails."""
    a, b = pair()
    flaky = FlakyRandom()
    b = DoubleRatchet.restore(b.snapshot(), rng=flaky)
    b.decrypt(a.encrypt(b"hi"))
    a.expect_pq_reseed(bytes(32))
    b.start_pq_reseed(bytes(32))
    before = b.to_bytes()
    flaky.fail_next = True
    with pytest.raises(OSError, match="temporarily unavailable"):
        b.encrypt(b"lost?")
    assert b.to_bytes() == before
    assert a.decrypt(b.encrypt(b"after the failure")) == b"after the failure"
    assert a.epoch == b.epoch == 1


# --------------------------------------------------------------------------
# forged headers cost no key derivation


@pytest.fixture
def chain_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from l2session.crypto import kdf
    from l2session.crypto import ratchet as module

    calls: list[int] = []
    original = kdf.chain_step

    def counted(chain_key: bytes) -> tuple[bytes, bytes, bytes]:
        calls.append(1)
        return original(chain_key)

    monkeypatch.setattr(module, "chain_step", counted)
    return calls


def test_forged_jump_on_the_current_chain_derives_nothing(chain_steps: list[int]) -> None:
    """Regression (review finding 2): n = Nr + 25,000 with a forged header
    tag is refused before the 25,000 derivations."""
    a, b = pair()
    genuine = a.encrypt(b"x")
    b.decrypt(genuine)
    forged = bytearray(genuine)
    forged[36:40] = MAX_SKIP.to_bytes(4, "big")
    chain_steps.clear()
    assert_refused_without_change(b, bytes(forged), AuthenticationFailed)
    assert chain_steps == []


def test_forged_new_chain_with_a_big_gap_derives_nothing(chain_steps: list[int]) -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"x"))
    forged_key = primitives.x25519_generate(SeededRandom("forger")).public
    header = forged_key + (1).to_bytes(4, "big") + (24_000).to_bytes(4, "big")
    header += (5).to_bytes(8, "big") + (0).to_bytes(4, "big")
    chain_steps.clear()
    with pytest.raises(AuthenticationFailed) as info:
        b.decrypt(header + bytes(16) + bytes(40))
    assert info.value.reason == "header"
    assert chain_steps == []


# --------------------------------------------------------------------------
# persistence


def test_state_roundtrip_mid_conversation() -> None:
    a, b = pair()
    b.decrypt(a.encrypt(b"1"))
    a.decrypt(b.encrypt(b"2"))
    held = [a.encrypt(b"held %d" % i) for i in range(3)]
    b.decrypt(held[2])
    a.start_pq_reseed(bytes(32))
    restored = DoubleRatchet.from_bytes(b.to_bytes(), rng=SeededRandom("restored"))
    assert restored.to_bytes() == b.to_bytes()
    assert restored.snapshot() == b.snapshot()
    assert restored.decrypt(held[0]) == b"held 0"
    restored.expect_pq_reseed(bytes(32))
    a.decrypt(restored.encrypt(b"from restored"))
    assert a.epoch == restored.epoch == 0  # the expecting side never starts it
    again = DoubleRatchet.from_bytes(a.to_bytes(), rng=SeededRandom("again"))
    assert again.reseed_pending
    assert restored.decrypt(again.encrypt(b"ok")) == b"ok"
    assert again.epoch == restored.epoch == 1
    assert "DoubleRatchet(" in repr(again)
    assert again.to_bytes()[1:33].hex() not in repr(again)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_state_is_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        DoubleRatchet.from_bytes(data, rng=SeededRandom(0))


def test_truncated_state_is_refused() -> None:
    a, _ = pair()
    state = a.to_bytes()
    for cut in (1, 50, len(state) - 1):
        with pytest.raises(MalformedMessage):
            DoubleRatchet.from_bytes(state[:cut], rng=SeededRandom(0))
    with pytest.raises(MalformedMessage, match="trailing"):
        DoubleRatchet.from_bytes(state + b"\x00", rng=SeededRandom(0))
    with pytest.raises(MalformedMessage, match="version"):
        DoubleRatchet.from_bytes(b"\x09" + state[1:], rng=SeededRandom(0))


# --------------------------------------------------------------------------
# property: any schedule of sends, drops, duplicates and reorderings


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_schedules_deliver_exactly_once_and_correctly(data: st.DataObject) -> None:
    a, b = pair(data.draw(st.text(max_size=4), label="seed"))
    sides = {"a": a, "b": b}
    in_flight: dict[str, list[tuple[int, bytes]]] = {"a": [], "b": []}  # towards side
    delivered: set[int] = set()
    counter = 0
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        action = data.draw(st.sampled_from(["send_a", "send_b", "deliver", "dup", "drop"]))
        if action.startswith("send"):
            sender = action[-1]
            receiver = "b" if sender == "a" else "a"
            payload = counter.to_bytes(4, "big") + data.draw(st.binary(max_size=20))
            in_flight[receiver].append((counter, sides[sender].encrypt(payload)))
            counter += 1
            continue
        receiver = data.draw(st.sampled_from(["a", "b"]))
        queue = in_flight[receiver]
        if not queue:
            continue
        index = data.draw(st.integers(0, len(queue) - 1))
        ident, message = queue[index]
        if action != "dup":  # a "dup" leaves it queued: a later delivery repeats it
            queue.pop(index)
        if action == "drop":
            continue
        try:
            plaintext = sides[receiver].decrypt(message)
        except ReplayDetected:
            assert ident in delivered
            continue
        assert ident not in delivered
        assert int.from_bytes(plaintext[:4], "big") == ident
        delivered.add(ident)
    # Whatever happened, both sides can still talk.
    assert b.decrypt(a.encrypt(b"end")) == b"end"
    assert a.decrypt(b.encrypt(b"end")) == b"end"


def test_every_byte_is_authenticated_on_the_skipped_key_path() -> None:
    """A message decrypted with a stored skipped key: flipping any byte,
    header tag included, is refused (the AEAD covers header and tag)."""
    a, b = pair()
    held = a.encrypt(b"held back")
    b.decrypt(a.encrypt(b"overtakes"))
    assert b.skipped_key_count == 1
    for index in range(len(held)):
        damaged = bytearray(held)
        damaged[index] ^= 0x01
        assert_refused_without_change(b, bytes(damaged), L2SessionError)
    assert b.decrypt(held) == b"held back"
