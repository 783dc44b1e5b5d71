"""The identity and the private prekeys kept in the node database."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    KeyFileError,
    PassphraseRequired,
    StoreCorrupt,
    StoreError,
    StoreNotFound,
    WrongPassphrase,
)
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.store import SqliteStore

from .helpers import PEER_A, PEER_B, ticket

FAST_N = 2**10
PASSPHRASE = "correct horse battery staple"
NOW = 1_800_000_000.0


def identity(name: str = "alice") -> Identity:
    return Identity.generate(SeededRandom(name))


def secret_of(who: Identity) -> bytes:
    return who.signing.seed() + who.agreement.private_bytes()


def same(a: Identity, b: Identity) -> bool:
    return a.did == b.did and secret_of(a) == secret_of(b)


def test_no_identity_stored_is_a_clear_error(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path / "node.db") as store, pytest.raises(StoreNotFound) as caught:
        store.load_identity()
    assert str(tmp_path / "node.db") in str(caught.value)
    assert "save_identity" in str(caught.value)


def test_an_unencrypted_identity_round_trips_and_relies_on_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    alice = identity()
    with SqliteStore.open(path) as store:
        store.save_identity(alice)
    with SqliteStore.open(path) as store:
        assert same(store.load_identity(), alice)
        with pytest.raises(KeyFileError, match="not encrypted"):
            store.load_identity(PASSPHRASE)
    # Stored as the key-file format: the secret is there, base64, in clear.
    assert base64.b64encode(secret_of(alice)) in path.read_bytes()


def test_a_passphrase_encrypts_the_identity_at_rest(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    alice = identity()
    with SqliteStore.open(path) as store:
        store.save_identity(alice, PASSPHRASE, scrypt_n=FAST_N)
    with SqliteStore.open(path) as store:
        assert same(store.load_identity(PASSPHRASE), alice)
        with pytest.raises(WrongPassphrase, match=str(path)):
            store.load_identity("wrong")
        with pytest.raises(PassphraseRequired):
            store.load_identity()
    data = path.read_bytes()
    assert secret_of(alice) not in data
    assert base64.b64encode(secret_of(alice)) not in data
    assert alice.did_text.encode() in data  # the DID is public


def test_an_identity_is_replaced_only_on_purpose(tmp_path: Path) -> None:
    alice, bob = identity("alice"), identity("bob")
    with SqliteStore.open(tmp_path / "node.db") as store:
        store.save_identity(alice)
        with pytest.raises(StoreError, match="overwrite=True"):
            store.save_identity(bob)
        assert same(store.load_identity(), alice)
        store.save_identity(bob, overwrite=True)
        assert same(store.load_identity(), bob)


def test_saving_the_identity_leaves_buffered_journal_writes_alone(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    store = SqliteStore.open(path)
    store.put_outbound(PEER_A, 0, b"buffered")
    store.save_identity(identity())
    assert store.pending
    store.crash()
    with SqliteStore.open(path) as again:
        assert again.load().outbound == {}
        assert same(again.load_identity(), identity())


def test_prekeys_round_trip_through_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    alice = identity()
    policy = PrekeyPolicy(one_time_pool_size=3, one_time_refill_threshold=1)
    prekeys = PrekeyStore.create(alice, rng=SeededRandom("prekeys"), now=NOW, policy=policy)
    with SqliteStore.open(path) as store:
        assert store.load_prekeys(alice) is None
        store.put_prekeys(prekeys.to_bytes())
        assert store.load_prekeys(alice) is None  # not committed yet
    with SqliteStore.open(path) as store:
        loaded = store.load_prekeys(alice, policy)
        assert loaded is not None
        assert loaded.to_bytes() == prekeys.to_bytes()
        assert loaded.policy == policy
        with pytest.raises(StoreCorrupt, match="another identity"):
            store.load_prekeys(identity("bob"))


def test_spent_secrets_are_zeroed_in_the_file(tmp_path: Path) -> None:
    """A consumed resumption ticket and a spent prekey state do not linger
    in the database file (secure_delete): forward secrecy at rest."""
    path = tmp_path / "node.db"
    used, kept = b"\xa5" * 32, b"\x5a" * 32
    # A one-time prekey was spent: the new state is shorter than the old.
    old_keys, new_keys = b"\xc3" * 3000, b"\x3c" * 2900
    with SqliteStore.open(path) as store:
        store.put_ticket(ticket(PEER_A, secret=used))
        store.put_ticket(ticket(PEER_B, secret=kept))
        store.put_prekeys(old_keys)
        store.commit()
        store.delete_ticket(PEER_A)
        store.put_prekeys(new_keys)
    data = path.read_bytes()  # closed: the WAL was folded in and removed
    assert kept in data
    assert new_keys in data
    assert used not in data
    assert old_keys[:64] not in data
