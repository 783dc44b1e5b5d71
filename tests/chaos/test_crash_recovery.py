"""Crash recovery: a node process killed with SIGKILL mid-stream restarts
from its SQLite store, resumes the session by resumption (one round trip
with the stored ticket, not a new PQXDH handshake), and the stream arrives
exactly once, in order.

Two processes on 127.0.0.1 (no root needed).  The sender is killed from
outside at whatever point it has reached; the receiver kills itself with
SIGKILL at a random moment after it has taken a third of the stream (see
tests/chaos/agent.py for why it is not killed from outside).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from .chaos_lab import (
    Agent,
    assert_exactly_once_in_order,
    audit,
    full_handshakes,
    init_home,
    moves,
    received,
    report,
    wait_received,
)

MESSAGES = 10_000


def free_port() -> int:
    """A port the receiver can bind again after its restart."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def receiver_args(home: Path, port: int) -> list[str]:
    return [
        "--role",
        "receiver",
        "--listen",
        f"127.0.0.1:{port}",
        "--count",
        str(MESSAGES),
        "--log",
        str(home / "received.log"),
    ]


def sender_args(did: str, port: int) -> list[str]:
    return [
        "--role",
        "sender",
        "--listen",
        "127.0.0.1:0",
        "--peer",
        did,
        "--peer-address",
        f"127.0.0.1:{port}",
        "--count",
        str(MESSAGES),
    ]


def assert_resumed_once(restarted: Path, other: Path) -> int:
    """Both audit logs: one PQXDH each; the restarted node restored its
    session from the store once and re-established it by resumption.
    Returns the restarted node's count of full handshakes (1)."""
    restarted_log, _ = audit(restarted)
    other_log, _ = audit(other)
    assert full_handshakes(restarted_log) == 1
    assert full_handshakes(other_log) == 1
    marks = [i for i, t in enumerate(restarted_log) if t.reason == "restored from store"]
    assert len(marks) == 1
    assert restarted_log[marks[0] + 1].reason == "resumed"
    assert moves(restarted_log)[marks[0] + 1] == ("handshake_initiated", "established")
    return full_handshakes(restarted_log)


def test_the_sender_killed_mid_stream_resumes_and_repeats_nothing(
    homes: tuple[Path, Path], agents: list[Agent]
) -> None:
    sender_home, receiver_home = homes
    init_home(sender_home)
    init_home(receiver_home)
    port = free_port()
    log = receiver_home / "received.log"
    started = time.monotonic()
    receiver = Agent(receiver_home, receiver_args(receiver_home, port), name="receiver")
    agents.append(receiver)
    did = receiver.expect("ready")["did"]
    sender = Agent(sender_home, sender_args(did, port), name="sender")
    agents.append(sender)
    assert sender.expect("session")["restored"] is False
    wait_received(log, MESSAGES // 3, receiver)
    sender.kill9()
    at_kill = len(received(log))

    sender = Agent(sender_home, sender_args(did, port), name="sender-restarted")
    agents.append(sender)
    session = sender.expect("session")
    assert session["restored"] is True
    done = sender.expect("sent")
    # The restarted sender continued from what its store says survived:
    # everything it had queued before the kill was already durable.
    assert 0 < done["start"] < MESSAGES
    assert receiver.expect("received")["count"] == MESSAGES
    sender.stop()
    receiver.stop()

    assert_exactly_once_in_order(log, MESSAGES)
    handshakes = assert_resumed_once(sender_home, receiver_home)
    report(
        "crash: sender kill -9",
        messages=MESSAGES,
        delivered_before_kill=at_kill,
        resumed_from=done["start"],
        seconds=round(time.monotonic() - started, 1),
        full_handshakes=handshakes,
        result="exactly once, in order; resumed",
    )


def test_the_receiver_killed_mid_stream_resumes_and_loses_nothing(
    homes: tuple[Path, Path], agents: list[Agent]
) -> None:
    sender_home, receiver_home = homes
    init_home(sender_home)
    init_home(receiver_home)
    port = free_port()
    log = receiver_home / "received.log"
    started = time.monotonic()
    args = receiver_args(receiver_home, port)
    receiver = Agent(receiver_home, [*args, "--die-after", str(MESSAGES // 3)], name="receiver")
    agents.append(receiver)
    did = receiver.expect("ready")["did"]
    sender = Agent(sender_home, sender_args(did, port), name="sender")
    agents.append(sender)
    assert sender.expect("session")["restored"] is False
    assert receiver.wait_exit() == -9  # it killed itself with SIGKILL
    at_kill = len(received(log))
    assert MESSAGES // 3 <= at_kill < MESSAGES

    receiver = Agent(receiver_home, args, name="receiver-restarted")
    agents.append(receiver)
    assert receiver.expect("session")["restored"] is True
    assert receiver.expect("received")["count"] == MESSAGES
    sender.expect("sent")
    sender.stop()
    receiver.stop()

    assert_exactly_once_in_order(log, MESSAGES)
    handshakes = assert_resumed_once(receiver_home, sender_home)
    report(
        "crash: receiver kill -9",
        messages=MESSAGES,
        delivered_before_kill=at_kill,
        seconds=round(time.monotonic() - started, 1),
        full_handshakes=handshakes,
        result="exactly once, in order; resumed",
    )
