"""Reachability on real kernels: a peer behind a firewall that drops UDP is
reached over μTCP by the path race (core/paths/race.py) within one second.

Two node processes in their own network namespaces (10.217.N.0/24), UDP
dropped by nftables in the sender's namespace before anything starts; the
sender's ``establish()`` has a one-second budget.  Root, ``ip`` and ``nft``
are needed; otherwise the test skips and says why (CI fails instead).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .chaos_lab import (
    Agent,
    Lab,
    assert_exactly_once_in_order,
    audit,
    init_home,
    lab_unavailable,
    moves,
    report,
)

_WHY = lab_unavailable()
if _WHY is not None and os.environ.get("L2S_REQUIRE_CHAOS") == "1":
    raise RuntimeError(f"L2S_REQUIRE_CHAOS is set but the chaos lab cannot run: {_WHY}")
pytestmark = pytest.mark.skipif(_WHY is not None, reason=_WHY or "")

PORT = 7000
MESSAGES = 2_000
#: The issue's target: establish() over μTCP with UDP dropped within 1 s.
ESTABLISH_BUDGET = 1.0


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(base="10.217") as made:
        yield made


def test_udp_dropped_establish_succeeds_over_tcp_within_a_second(
    lab: Lab, homes: tuple[Path, Path], agents: list[Agent]
) -> None:
    sender_home, receiver_home = homes
    init_home(sender_home)
    init_home(receiver_home)
    log = receiver_home / "received.log"
    lab.fault("meta l4proto udp counter drop")
    b = lab.address["b"]
    receiver = Agent(
        receiver_home,
        [
            *("--role", "receiver", "--listen", f"{b}:{PORT}"),
            *("--count", str(MESSAGES), "--log", str(log)),
        ],
        prefix=lab.prefix("b"),
        name="receiver",
    )
    agents.append(receiver)
    did = receiver.expect("ready")["did"]
    sender = Agent(
        sender_home,
        [
            *("--role", "sender", "--listen", f"{lab.address['a']}:{PORT}", "--peer", did),
            *("--peer-address", f"{b}:{PORT}", "--count", str(MESSAGES)),
            # QUIC's connect timeout far beyond the budget: no fallback helps.
            *("--connect-timeout", "5", "--establish-timeout", str(ESTABLISH_BUDGET)),
        ],
        prefix=lab.prefix("a"),
        name="sender",
    )
    agents.append(sender)
    session = sender.expect("session")
    assert session["path"] == "tcp"
    assert session["seconds"] < ESTABLISH_BUDGET
    sender.expect("sent", timeout=120)
    assert receiver.expect("received", timeout=60)["count"] == MESSAGES
    dropped = lab.dropped()
    assert dropped > 0  # QUIC was tried, and the kernel dropped it
    assert sender.stop() == 0
    assert receiver.stop() == 0
    assert_exactly_once_in_order(log, MESSAGES)
    transitions, _ = audit(sender_home)
    assert ("handshake_initiated", "established") in moves(transitions)
    report(
        "UDP dropped before establishment",
        establish_seconds=session["seconds"],
        udp_packets_dropped=dropped,
        messages=MESSAGES,
        result="established over μTCP by the path race; exactly once, in order",
    )
