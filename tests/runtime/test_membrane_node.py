"""The Membrane in a running node, over loopback sockets: a peer's
capability requests are screened before the application sees them, the
sender learns why, and every decision lands in the node's hash-chained
audit log next to the session's state transitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2session.core.events import MessageDenied
from l2session.core.link.envelope import Request
from l2session.errors import AccessDenied, InvalidState, PolicyError
from l2session.runtime.events import NodeEvent
from l2session.runtime.node import Node
from l2session.store.sqlite import SqliteStore

from .support import run, until

POLICY = """\
version = 1

[constraints]
min_trust = 0.4

[[grant]]
id = "feed"
peers = ["*"]
resource = "feed://news"
actions = ["read"]

[[grant]]
id = "pay"
peers = ["*"]
resource = "service://payment"
actions = ["call"]
min_trust = 0.7
quota = { units = 10, window = "1h" }
"""

FEED = Request("read", "feed://news/today")
PAY = Request("call", "service://payment", 4)


def test_requests_are_screened_answered_and_audited(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    store = tmp_path / "bob" / "node.db"

    async def scenario() -> None:
        events: list[NodeEvent] = []
        async with Node(store=store, policy=policy) as bob, Node() as alice:
            alice.add_listener(events.append)
            ab = await alice.establish(bob.did, bob.address, timeout=10)
            ba = await bob.accept(timeout=10)
            # Unknown to Bob's trust graph: neutral 0.5, enough for the
            # feed, not for payments (0.7).
            plain = await ab.send(b"hello")
            read = await ab.send(b"today's news?", request=FEED)
            pay = await ab.send(b"pay 4", request=PAY)
            got = await ba.receive_deliveries(timeout=10)
            while len(got) < 2:
                got += await ba.receive_deliveries(timeout=10)
            assert [(d.seq, d.payload, d.request) for d in got] == [
                (plain, b"hello", None),
                (read, b"today's news?", FEED),
            ]
            await ab.acknowledged(pay, timeout=10)
            await until(lambda: ab.denial(pay) is not None, "the denial notice")
            assert ab.denial(pay) == "trust 0.5 is below the minimum 0.7 of grant 'pay'"
            assert any(isinstance(e, MessageDenied) and e.seq == pay for e in events)
            # Bob trusts Alice now: payments pass, until the quota is used.
            bob.trust(alice.did, 0.2)
            bob.trust(alice.did, 0.9)  # within the same millisecond: still ordered
            assert bob.membrane is not None
            assert bob.membrane.trust.score(alice.did, bob.clock.now()) == pytest.approx(0.95)
            paid = [await ab.send(b"pay %d" % i, request=PAY) for i in range(3)]
            got = []
            while len(got) < 2:
                got += await ba.receive_deliveries(timeout=10)
            assert [d.seq for d in got] == paid[:2]
            await ab.acknowledged(paid[2], timeout=10)
            await until(lambda: ab.denial(paid[2]) is not None, "the quota denial")
            assert "quota" in str(ab.denial(paid[2]))
            # The application can ask the same Membrane directly.
            assert bob.membrane is not None
            with pytest.raises(AccessDenied) as denied:
                bob.membrane.check_access(alice.did, PAY, bob.clock.now())
            assert denied.value.step == "constraint"
        with SqliteStore.open(store) as db:
            report = db.verify_audit()
            assert report.ok
            access = [e.record() for e in db.audit_log() if e.kind == "access"]
            assert [(r.allowed, r.action, r.grant) for r in access] == [  # type: ignore[union-attr]
                (True, "read", "feed"),
                (False, "call", "pay"),
                (True, "call", "pay"),
                (True, "call", "pay"),
                (False, "call", "pay"),
                (False, "call", "pay"),  # the direct check_access
            ]
            assert {e.kind for e in db.audit_log()} == {"access", "transition"}
            assert len(db.trust_statements()) == 1  # the newest edge replaced the first

    run(scenario())


def test_a_node_without_a_policy_delivers_requests_and_has_no_membrane() -> None:
    async def scenario() -> None:
        async with Node() as bob, Node() as alice:
            ab = await alice.establish(bob.did, bob.address, timeout=10)
            ba = await bob.accept(timeout=10)
            await ab.send(b"pay", request=PAY)
            (delivery,) = await ba.receive_deliveries(timeout=10)
            assert delivery.request == PAY
            assert bob.membrane is None
            with pytest.raises(InvalidState, match="policy"):
                bob.trust(alice.did, 0.5)

    run(scenario())


def test_a_bad_policy_file_fails_at_construction(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "version = 1\n[[grant]]\npeers = ['*']\nresource = 'feed://x'\nactoins = ['read']\n"
    )
    with pytest.raises(PolicyError, match=r"bad.toml:5"):
        Node(policy=bad)
    with pytest.raises(PolicyError, match="no such policy file"):
        Node(policy=tmp_path / "missing.toml")
