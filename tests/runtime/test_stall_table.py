"""The stall watch's waiting table (runtime/stall.py) on a fake node: a
check does work in proportion to what is due, not to the number of
sessions; idle sessions cost nothing; a full table evicts without ever
raising an alarm.  No sockets, no event loop: a manual clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from l2session.core.states import State
from l2session.runtime.stall import StallWatch

TIMEOUT = 5.0


@dataclass
class FakeSession:
    address: str
    path: str = "quic"
    state: State = State.ESTABLISHED
    outbound: list[bytes] = field(default_factory=list)
    hb_outstanding: bool = False


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t


class FakeManager:
    def __init__(self, sessions: list[FakeSession]) -> None:
        self.by_address = {s.address: s for s in sessions}
        self.lookups = 0

    def sessions_at(self, address: str) -> list[FakeSession]:
        self.lookups += 1
        found = self.by_address.get(address)
        return [] if found is None else [found]

    def route_down(self, address: str, path: str) -> bool:
        return False


class FakeNode:
    def __init__(self, sessions: list[FakeSession]) -> None:
        self.clock = FakeClock()
        self.manager = FakeManager(sessions)
        self.running = True


def watch_over(count: int, max_addresses: int = 65_536) -> tuple[StallWatch, FakeNode]:
    node = FakeNode([FakeSession(f"10.0.{i // 250}.{i % 250}:1") for i in range(count)])
    return StallWatch(cast(Any, node), TIMEOUT, max_addresses), node


def test_idle_sessions_cost_the_checks_nothing() -> None:
    watch, node = watch_over(10_000)
    for _ in range(100):  # 100 checks over 125 s of idleness
        node.clock.t += TIMEOUT / 4
        assert watch.stalled(node.clock.now()) == []
    assert watch.checked == 0
    assert node.manager.lookups == 0


def test_a_heartbeat_answered_in_time_leaves_nothing_to_check() -> None:
    watch, node = watch_over(10_000)
    addresses = list(node.manager.by_address)
    for address in addresses:
        watch.sent(address)  # a heartbeat to every peer ...
    node.clock.t += 0.01
    for address in addresses:
        watch.heard(address, "quic")  # ... answered
    node.clock.t += 2 * TIMEOUT
    assert watch.stalled(node.clock.now()) == []
    assert watch.checked == 0
    assert watch.waiting == 0


def test_only_due_entries_are_checked() -> None:
    watch, node = watch_over(1_000)
    addresses = list(node.manager.by_address)
    for address in addresses[:10]:
        watch.sent(address)
    node.clock.t += TIMEOUT / 2
    for address in addresses[10:]:
        watch.sent(address)  # 990 more, not due at the next check
    node.clock.t += TIMEOUT / 2 + 0.01
    assert watch.stalled(node.clock.now()) == []  # nothing expected: dropped
    assert watch.checked == 10
    assert watch.waiting == 990


def test_a_silent_peer_with_messages_in_flight_is_declared_one_check_later() -> None:
    watch, node = watch_over(3)
    silent = node.manager.by_address["10.0.0.1:1"]
    silent.outbound.append(b"unacknowledged")
    for address in node.manager.by_address:
        watch.sent(address)
    node.clock.t += TIMEOUT + 0.01
    assert watch.stalled(node.clock.now()) == []  # suspected first
    node.clock.t += TIMEOUT / 4
    assert watch.stalled(node.clock.now()) == ["10.0.0.1:1"]
    assert watch.waiting == 0


def test_an_answer_between_the_checks_clears_the_suspicion() -> None:
    watch, node = watch_over(1)
    [session] = node.manager.by_address.values()
    session.outbound.append(b"sent just before the check")
    watch.sent(session.address)
    node.clock.t += TIMEOUT + 0.01
    assert watch.stalled(node.clock.now()) == []
    watch.heard(session.address, "quic")  # the acknowledgement
    node.clock.t += TIMEOUT / 4
    assert watch.stalled(node.clock.now()) == []
    assert watch.stalls == 0


def test_a_peer_speaking_over_another_path_counts_as_expected() -> None:
    watch, node = watch_over(1)
    [session] = node.manager.by_address.values()
    watch.heard(session.address, "tcp")  # it fell back first
    node.clock.t += TIMEOUT + 0.01
    watch.stalled(node.clock.now())
    node.clock.t += TIMEOUT / 4
    assert watch.stalled(node.clock.now()) == [session.address]


def test_a_full_table_evicts_without_alarms() -> None:
    """Past max_addresses the oldest entry is dropped unchecked: a stall
    may be found later, but no healthy session is ever declared."""
    watch, node = watch_over(5_000, max_addresses=100)
    for address in node.manager.by_address:
        watch.sent(address)
    assert watch.waiting == 100
    assert watch.evicted == 4_900
    node.clock.t += 3 * TIMEOUT
    assert watch.stalled(node.clock.now()) == []
    node.clock.t += TIMEOUT
    assert watch.stalled(node.clock.now()) == []
    assert watch.stalls == 0
