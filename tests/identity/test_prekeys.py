"""Prekey policy, rotation with overlap, the one-time pool, bundles, persistence."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    AuthenticationFailed,
    ConfigError,
    MalformedMessage,
    PrekeyExpired,
    PrekeyNotFound,
)
from l2session.identity.bundle import MAX_BUNDLE_ONE_TIME_PREKEYS, PrekeyBundle
from l2session.identity.identity import Identity
from l2session.identity.prekeys import DAY, PrekeyPolicy, PrekeyStore
from l2session.identity.resolver import default_resolver
from l2session.testing.parties import Party
from l2session.testing.resolver import MockResolver


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"signed_prekey_lifetime": 10.0}, "signed_prekey_lifetime"),
        ({"signed_prekey_lifetime": 400 * DAY}, "signed_prekey_lifetime"),
        ({"signed_prekey_overlap": -1.0}, "signed_prekey_overlap"),
        ({"signed_prekey_overlap": 8 * DAY}, "signed_prekey_overlap"),
        ({"one_time_pool_size": MAX_BUNDLE_ONE_TIME_PREKEYS + 1}, "one_time_pool_size"),
        ({"one_time_pool_size": -1}, "one_time_pool_size"),
        ({"one_time_refill_threshold": 101}, "one_time_refill_threshold"),
        ({"one_time_refill_threshold": -1}, "one_time_refill_threshold"),
    ],
)
def test_policy_refuses_invalid_values_naming_the_field(
    fields: dict[str, float], named: str
) -> None:
    with pytest.raises(ConfigError, match=f"PrekeyPolicy.{named}"):
        PrekeyPolicy(**fields)  # type: ignore[arg-type]


def test_defaults() -> None:
    policy = PrekeyPolicy()
    assert policy.signed_prekey_lifetime == 7 * DAY
    assert policy.signed_prekey_overlap == 2 * DAY
    assert (policy.one_time_pool_size, policy.one_time_refill_threshold) == (100, 25)


def test_new_store_publishes_a_verifiable_bundle(alice: Party, now: float) -> None:
    bundle = alice.prekeys.bundle()
    assert len(bundle.one_time_prekeys) == 100
    assert bundle.did == alice.identity.did
    bundle.verify(default_resolver(), now=now)
    policy = alice.prekeys.policy
    record = bundle.signed_prekeys
    assert record.expires_ms - record.created_ms == int(
        (policy.signed_prekey_lifetime + policy.signed_prekey_overlap) * 1000
    )


def test_rotation_keeps_the_old_set_through_the_overlap(now: float) -> None:
    rng = SeededRandom("rotation")
    store = PrekeyStore.create(Identity.generate(rng), rng=rng, now=now)
    first = store.bundle().signed_prekeys.prekey_id
    assert not store.maintain(rng=rng, now=now + 6 * DAY)
    assert store.maintain(rng=rng, now=now + 7 * DAY)
    second = store.bundle().signed_prekeys.prekey_id
    assert second != first
    assert store.signed_set_ids == (first, second)
    store.signed_prekeys(first, now + 8 * DAY)  # still usable in the overlap
    with pytest.raises(PrekeyExpired):
        store.signed_prekeys(first, now + 9 * DAY)
    assert store.maintain(rng=rng, now=now + 9 * DAY)  # pruned
    assert list(store.signed_set_ids) == [second]
    with pytest.raises(PrekeyNotFound, match="rotated out"):
        store.signed_prekeys(first, now + 9 * DAY)


def test_one_time_pool_is_consumed_once_and_refilled(now: float) -> None:
    rng = SeededRandom("pool")
    policy = PrekeyPolicy(one_time_pool_size=10, one_time_refill_threshold=4)
    store = PrekeyStore.create(Identity.generate(rng), rng=rng, now=now, policy=policy)
    ids = [record.prekey_id for record in store.bundle().one_time_prekeys]
    for prekey_id in ids[:6]:
        store.one_time_prekey(prekey_id)
        store.consume_one_time_prekey(prekey_id)
        with pytest.raises(PrekeyNotFound, match="already used"):
            store.one_time_prekey(prekey_id)
        with pytest.raises(PrekeyNotFound):
            store.consume_one_time_prekey(prekey_id)
    assert not store.maintain(rng=rng, now=now)  # 4 left: not below 4
    store.consume_one_time_prekey(ids[6])
    assert store.maintain(rng=rng, now=now)
    assert store.one_time_count == 10
    new_ids = {record.prekey_id for record in store.bundle().one_time_prekeys}
    assert new_ids.isdisjoint(ids[:7])  # ids are never reused


def test_empty_pool_is_allowed(now: float) -> None:
    rng = SeededRandom("empty")
    policy = PrekeyPolicy(one_time_pool_size=0, one_time_refill_threshold=0)
    store = PrekeyStore.create(Identity.generate(rng), rng=rng, now=now, policy=policy)
    assert store.bundle().one_time_prekeys == ()
    assert store.bundle().pick_one_time(rng) is None


def test_store_persists_and_restores(make_party: Callable[..., Party], now: float) -> None:
    party = make_party("persist")
    store = party.prekeys
    store.consume_one_time_prekey(store.bundle().one_time_prekeys[0].prekey_id)
    restored = PrekeyStore.from_bytes(store.to_bytes(), party.identity)
    assert restored.bundle() == store.bundle()
    assert restored.to_bytes() == store.to_bytes()
    set_id = store.bundle().signed_prekeys.prekey_id
    assert (
        restored.signed_prekeys(set_id, now).pq_prekey.public
        == store.bundle().signed_prekeys.pq_prekey
    )


def test_store_refuses_another_identity_and_garbage(alice: Party, bob: Party) -> None:
    with pytest.raises(MalformedMessage, match="another identity"):
        PrekeyStore.from_bytes(alice.prekeys.to_bytes(), bob.identity)
    data = alice.prekeys.to_bytes()
    with pytest.raises(MalformedMessage):
        PrekeyStore.from_bytes(data[:-1], alice.identity)
    with pytest.raises(MalformedMessage):
        PrekeyStore.from_bytes(b"\x02" + data[1:], alice.identity)


def test_store_refuses_a_private_key_that_does_not_match_its_record(alice: Party) -> None:
    data = bytearray(alice.prekeys.to_bytes())
    data[-1] ^= 1  # last one-time private key
    with pytest.raises(MalformedMessage, match="does not match"):
        PrekeyStore.from_bytes(bytes(data), alice.identity)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_store_is_a_typed_error(data: bytes) -> None:
    identity = Identity.generate(SeededRandom("garbage"))
    with contextlib.suppress(MalformedMessage):
        PrekeyStore.from_bytes(data, identity)


def test_no_bundle_before_maintain() -> None:
    store = PrekeyStore(Identity.generate(SeededRandom("bare")))
    with pytest.raises(PrekeyNotFound, match="maintain"):
        store.bundle()


# --------------------------------------------------------------------------
# bundles


def test_bundle_roundtrip(alice: Party) -> None:
    bundle = alice.prekeys.bundle()
    assert PrekeyBundle.decode(bundle.encode()) == bundle


def test_bundle_with_a_foreign_key_is_refused(alice: Party, bob: Party, now: float) -> None:
    forged = dataclasses.replace(alice.prekeys.bundle(), signing_key=bob.identity.signing_public)
    with pytest.raises(AuthenticationFailed, match="not the DID's key"):
        forged.verify(default_resolver(), now=now)


def test_bundle_verify_uses_the_resolvers_key(alice: Party, bob: Party, now: float) -> None:
    resolver = MockResolver()
    resolver.add(alice.did, bob.identity.signing_public)  # the DID says: Bob's key
    with pytest.raises(AuthenticationFailed):
        alice.prekeys.bundle().verify(resolver, now=now)


def test_bundle_verify_checks_every_one_time_signature(alice: Party, now: float) -> None:
    bundle = alice.prekeys.bundle()
    last = bundle.one_time_prekeys[-1]
    damaged = dataclasses.replace(last, signature=bytes(64))
    tampered = dataclasses.replace(
        bundle, one_time_prekeys=(*bundle.one_time_prekeys[:-1], damaged)
    )
    with pytest.raises(AuthenticationFailed, match="one-time prekey"):
        tampered.verify(default_resolver(), now=now)


def test_bundle_refuses_records_of_other_dids_and_duplicates(alice: Party, bob: Party) -> None:
    mine, theirs = alice.prekeys.bundle(), bob.prekeys.bundle()
    with pytest.raises(MalformedMessage, match="another DID"):
        dataclasses.replace(mine, signed_prekeys=theirs.signed_prekeys)
    with pytest.raises(MalformedMessage, match="another DID"):
        dataclasses.replace(mine, one_time_prekeys=theirs.one_time_prekeys[:1])
    with pytest.raises(MalformedMessage, match="duplicate"):
        dataclasses.replace(mine, one_time_prekeys=mine.one_time_prekeys[:1] * 2)


def test_bundle_limits(alice: Party) -> None:
    with pytest.raises(MalformedMessage, match="exceeds"):
        PrekeyBundle.decode(bytes(256 * 1024 + 1))
    encoded = bytearray(alice.prekeys.bundle().encode())
    count_offset = len(encoded) - 100 * len(alice.prekeys.bundle().one_time_prekeys[0].encode()) - 2
    encoded[count_offset : count_offset + 2] = (1001).to_bytes(2, "big")
    with pytest.raises(MalformedMessage, match="announces 1001"):
        PrekeyBundle.decode(bytes(encoded))


def test_pick_and_remove_one_time(alice: Party) -> None:
    bundle = alice.prekeys.bundle()
    picked = bundle.pick_one_time(SeededRandom("pick"))
    assert picked is not None
    assert picked == bundle.pick_one_time(SeededRandom("pick"))
    smaller = bundle.without_one_time(picked.prekey_id)
    assert len(smaller.one_time_prekeys) == 99
    assert picked not in smaller.one_time_prekeys


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_bundle_is_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        PrekeyBundle.decode(data)


def test_bundle_verify_refuses_a_document_for_another_did(
    alice: Party, bob: Party, now: float
) -> None:
    """Regression (review finding 5): verify goes through checked resolution,
    so a resolver answering with another DID's document is not believed."""
    from l2session.errors import DidResolutionError
    from l2session.identity.did import Did
    from l2session.identity.document import DidDocument, did_key_document

    class Lying:
        def resolve(self, did: Did) -> DidDocument:
            return did_key_document(bob.identity.did)

    with pytest.raises(DidResolutionError):
        alice.prekeys.bundle().verify(Lying(), now=now)
