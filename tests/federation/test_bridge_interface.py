"""The bridge interface, foreign names, the federated state mapping and
the schema upgrade: no relay needed."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from l2session import Node
from l2session.bridges.base import load_bridge
from l2session.core.management.federated import FederatedSession, FederationConfig
from l2session.core.states import State
from l2session.errors import BridgeUnavailable, InvalidForeignIdentity
from l2session.identity.foreign import BridgeProtocol, ForeignIdentity
from l2session.identity.identity import Identity
from l2session.store import federation as fed_tables
from l2session.store import schema
from l2session.store.sqlite import SqliteStore
from l2session.testing import SeededRandom

NPUB = "npub1k4qsp3j0h76z9ekuv0ve62gccjwhns87lpsvs26mtj4rj0lt3c3sj0fqgh"
HEX = "b54100c64fbfb422e6dc63d99d2918c49d79c0fef860c82b5b5caa393feb8e23"


def _state(session: FederatedSession) -> State:
    """The state, read through a call (mypy would narrow a property)."""
    return session.state


@pytest.fixture
def custom_dist() -> Iterator[None]:
    where = str(Path(__file__).with_name("custom_dist"))
    sys.path.insert(0, where)
    try:
        yield
    finally:
        sys.path.remove(where)
        sys.modules.pop("tiny_bridge", None)


def test_a_nostr_peer_has_one_canonical_name_in_every_spelling() -> None:
    names = {ForeignIdentity.parse(t).text for t in (NPUB, f"nostr:{NPUB}", HEX, HEX.upper())}
    assert names == {f"nostr:{NPUB}"}
    assert ForeignIdentity.parse(NPUB).hex == HEX


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (NPUB[:-1] + "q", "checksum"),
        ("nsec1" + NPUB[5:], "secret key"),
        ("npub1", "not bech32"),
        ("ab" * 31, "not a Nostr public key"),
    ],
)
def test_a_bad_foreign_name_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(InvalidForeignIdentity, match=why):
        ForeignIdentity.parse(text)


@pytest.mark.parametrize("name", ["activitypub", "xmtp"])
def test_activitypub_and_xmtp_are_named_but_not_available(name: str) -> None:
    identity = Identity.generate(SeededRandom(1))
    with pytest.raises(BridgeUnavailable, match="not available"):
        load_bridge(name, identity)
    with pytest.raises(BridgeUnavailable, match="no custom bridge named 'nope'"):
        load_bridge(BridgeProtocol.Custom("nope"), identity)


def test_a_custom_bridge_is_found_through_its_entry_point(custom_dist: None) -> None:
    async def main() -> None:
        async with Node(bridges={"custom:loopback": {}}) as node:
            session = node.federate("custom:loopback:alice")
            await session.established(5)
            await session.send(b"ping")
            assert await session.receive(5) == b"echo: ping"
            assert [r.url for r in session.relays()] == ["loopback"]

    asyncio.run(main())


def test_the_federated_states_follow_the_relays_and_the_spec_timeouts() -> None:
    peer = ForeignIdentity.parse(NPUB)
    records: list[object] = []
    session = FederatedSession(
        "did:key:z6Mk", peer, config=FederationConfig(), rng=SeededRandom(2), sink=records.append
    )
    session.open(0.0)
    assert _state(session) is State.HANDSHAKE_INITIATED
    session.links_changed(1, 1.0)
    assert _state(session) is State.ESTABLISHED
    session.links_changed(0, 2.0)
    assert _state(session) is State.DEGRADED
    session.tick(61.0)
    assert _state(session) is State.DEGRADED
    session.tick(62.0)
    assert _state(session) is State.SUSPENDED
    session.tick(122.0)
    assert session.reconnect_due == 122.0
    session.links_changed(1, 123.0)
    assert _state(session) is State.ESTABLISHED
    session.close(124.0)
    assert session.closed
    assert len(records) == 9  # every transition reached the audit sink


def test_no_relay_within_the_connect_timeout_fails_then_retries_with_backoff() -> None:
    session = FederatedSession(
        "did:key:z6Mk",
        ForeignIdentity.parse(NPUB),
        config=FederationConfig(connect_timeout=5.0),
        rng=SeededRandom(3),
    )
    session.open(0.0)
    session.tick(5.0)
    assert _state(session) is State.FAILED
    timer = session.get_timer()
    assert timer is not None
    assert 5.0 < timer <= 6.0  # the ReconnectionPolicy's first delay, jittered
    session.tick(timer)
    assert _state(session) is State.HANDSHAKE_INITIATED
    assert session.reconnect_due == timer


def test_a_version_5_database_is_upgraded_with_the_federation_tables(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path)
    for statement in schema.CREATE[: len(schema.CREATE) - len(fed_tables.TABLES_V6)]:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 5")
    conn.execute("INSERT INTO peers (did) VALUES ('did:key:z6MkOld')")
    conn.commit()
    conn.close()
    path.chmod(0o600)
    store = SqliteStore.open(path)
    try:
        store.federation.put_link(fed_tables.Link("d", "f", b"s"))
        assert [link.statement for link in store.federation.links()] == [b"s"]
    finally:
        store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert check.execute("SELECT did FROM peers").fetchall() == [("did:key:z6MkOld",)]
    check.close()


def test_seen_ids_stay_bounded_and_the_floor_refuses_what_was_forgotten(
    custom_dist: None, tmp_path: Path
) -> None:
    from l2session.bridges.base import ForeignMessage

    async def main() -> None:
        config = FederationConfig(seen_limit=16)
        node = Node(store=tmp_path / "n.db", bridges={"custom:loopback": {}}, federation=config)
        async with node:
            fed = node.federation
            assert fed is not None
            session = node.federate("custom:loopback:bob")
            await session.established(5)
            for i in range(40):
                await session.send(f"m {i}".encode())
            got: list[bytes] = []
            while len(got) < 40:
                got += await session.receive_many(100, 5)
            assert got == [f"echo: m {i}".encode() for i in range(40)]
            proto = session.protocol
            assert len(fed.seen[proto]) <= 16
            floor = fed.cursors[proto].floor
            assert floor > 1000.0
            assert fed.tables.cursor(str(proto)).floor == floor  # persisted
            assert len(fed.tables.seen(str(proto))) == len(fed.seen[proto])
            hooks = fed._hooks(proto)
            peer = ForeignIdentity.parse("custom:loopback:bob")
            hooks.on_message(ForeignMessage("old", peer, "replayed", floor - 1, floor - 1))
            newest = max(fed.seen[proto], key=lambda e: fed.seen[proto][e])
            hooks.on_message(ForeignMessage(newest, peer, "again", 2000.0, 2000.0))
            assert fed.refused["below_floor"] == 1
            assert fed.refused["duplicate"] == 1
            assert session.available == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("max_message", 70_000, "at most 65535"),
        ("seen_limit", 3, "seen_limit must be an int >= 16"),
        ("degraded_timeout", 0, "degraded_timeout must be a positive number"),
        ("max_sessions", 0, "max_sessions must be an int >= 1"),
    ],
)
def test_every_federation_limit_is_validated(field: str, value: object, why: str) -> None:
    from l2session.errors import ConfigError

    with pytest.raises(ConfigError, match=why):
        FederationConfig(**{field: value})  # type: ignore[arg-type]


def test_more_foreign_peers_than_max_sessions_are_dropped_and_counted(
    custom_dist: None,
) -> None:
    from l2session.bridges.base import ForeignMessage

    async def main() -> None:
        config = FederationConfig(max_sessions=2)
        async with Node(bridges={"custom:loopback": {}}, federation=config) as node:
            fed = node.federation
            assert fed is not None
            proto = BridgeProtocol.Custom("loopback")
            hooks = fed._hooks(proto)
            for i in range(3):
                peer = ForeignIdentity.parse(f"custom:loopback:p{i}")
                hooks.on_message(ForeignMessage(f"e{i}", peer, "hi", 10.0 + i, 10.0 + i))
            assert len(fed.sessions()) == 2
            assert fed.refused["too_many_sessions"] == 1
            assert "e2" not in fed.seen[proto]  # a later start gets it again

    asyncio.run(main())
