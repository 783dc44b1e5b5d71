"""Model-based: random journal histories, SqliteStore against MemoryStore.

Hypothesis draws a sequence of journal writes with commits and crashes
(kill + restart) at random points and applies it to both stores; after every
commit and every restart, SqliteStore's snapshot and audit trail must equal
MemoryStore's, the reference semantics.  Values include the extremes of the
unsigned 64-bit range and overlapping acknowledgements, takes and drops.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2session.core.lifecycle.persistence import SessionRecord
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore

from .helpers import PEER_A, PEER_B, PEER_C, U64_MAX

# Few peers, streams and small sequence numbers, so that writes collide
# often; the extremes of the u64 range now and then.
peers = st.sampled_from([PEER_A, PEER_A, PEER_B, PEER_C])
u64 = st.one_of(
    st.integers(0, 9), st.sampled_from([2**63 - 1, 2**63, U64_MAX]), st.integers(0, U64_MAX)
)
streams = st.sampled_from([1, 2, U64_MAX])
seqs = st.one_of(
    st.integers(0, 5), st.integers(0, 5), st.sampled_from([2**63, U64_MAX - 1, U64_MAX])
)
payloads = st.binary(max_size=24)
ranges = st.lists(st.tuples(seqs, seqs), max_size=3).map(tuple)

sessions = st.builds(
    SessionRecord,
    peers,
    st.one_of(st.none(), st.text(max_size=12)),
    st.sampled_from(["quic", "tcp"]),
    u64,
    u64,
    u64,
    u64,
)
tickets = st.builds(
    StoredSession,
    local_did=st.just(PEER_C),
    peer_did=peers,
    peer_signing_key=st.binary(min_size=32, max_size=32),
    resumption_secret=st.binary(min_size=32, max_size=32),
    lineage=st.binary(min_size=32, max_size=32),
    # Milliseconds: the ticket encoding keeps exactly that.
    pq_keyed_at=st.integers(0, 2**40).map(lambda ms: ms / 1000),
    issued_at=st.integers(0, 2**40).map(lambda ms: ms / 1000),
    out_stream=u64,
    in_stream=u64,
)
records = st.builds(
    TransitionRecord,
    st.text(max_size=16),
    st.sampled_from(State),
    st.one_of(st.none(), st.sampled_from(State)),
    st.sampled_from(Trigger),
    st.text(max_size=16),
    st.floats(allow_nan=False),
)

Op = tuple[str, tuple[Any, ...]]


def op(name: str, *args: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.tuples(st.just(name), st.tuples(*args))


operations = st.lists(
    st.one_of(
        op("put_session", sessions),
        op("delete_session", peers),
        op("put_outbound", peers, seqs, payloads),
        op("put_outbound", peers, seqs, payloads),
        op("ack_outbound", peers, seqs, ranges),
        op("put_inbound", peers, streams, seqs, payloads),
        op("put_inbound", peers, streams, seqs, payloads),
        op("take_inbound", peers, streams, seqs),
        op("drop_inbound", peers, streams, seqs),
        op("put_ticket", tickets),
        op("delete_ticket", peers),
        op("put_prekeys", payloads),
        op("append_audit", records),
        op("commit"),
        op("commit"),
        op("commit"),
        op("crash"),
    ),
    # Long histories: Hypothesis otherwise favours a handful of operations.
    min_size=20,
    max_size=80,
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_sqlite_matches_the_memory_model(ops: list[Op], tmp_path: Path) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "node.db"
    model = MemoryStore()
    store = SqliteStore.open(path)
    checks = 0
    try:
        for name, args in ops:
            if name == "crash":
                model.crash()
                store.crash()
                store = SqliteStore.open(path)
            else:
                for target in (model, store):
                    method: Callable[..., None] = getattr(target, name)
                    method(*args)
                if name != "commit":
                    continue
            assert store.load() == model.load()
            assert store.audit_trail() == model.audit_trail()
            checks += 1
    finally:
        store.crash()
    assert checks == sum(1 for name, _ in ops if name in {"commit", "crash"})
