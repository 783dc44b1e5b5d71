"""A numbered stream between two simulated nodes, with a kill in the middle.

The sender application numbers its messages and asks the session how many
it has sent (``Session.sent``), which after a restart counts exactly the
committed sends; the receiver application appends what ``receive_many``
hands it to a list that survives the kill (an application's own durable
log).  Exactly-once, in-order delivery then means that list is 0, 1, 2, ...
with nothing missing and nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from l2session.core.lifecycle.persistence import Journal
from l2session.core.states import State
from l2session.testing.simulation import SimNode, Simulation

#: Sent but unacknowledged messages the sender application allows.
WINDOW = 400


def payload(number: int, size: int) -> bytes:
    head = number.to_bytes(4, "big")
    return head + bytes([number % 251]) * max(0, size - 4)


@dataclass
class Stream:
    """Sender ``src`` streams ``total`` numbered messages to ``dst``."""

    sim: Simulation
    src: str
    dst: str
    total: int
    size: int = 64
    received: list[int] = field(default_factory=list)
    bad_payloads: int = 0
    #: Messages the sender application queued in the current step.
    sent_this_step: int = 0
    #: Called every step after the applications acted (it may kill a node).
    on_step: Callable[[Stream], None] | None = None

    def node(self, name: str) -> SimNode:
        return self.sim.nodes[name]

    def step(self) -> bool:
        """One application turn on both sides; True when all arrived."""
        sender = self.node(self.src).session(self.node(self.dst))
        self.sent_this_step = 0
        if sender is not None and not sender.closed:
            while sender.sent < self.total and sender.queued < WINDOW:
                sender.send(payload(sender.sent, self.size))
                self.sent_this_step += 1
        receiver = self.node(self.dst).session(self.node(self.src))
        if receiver is not None:
            for message in receiver.receive_many():
                number = int.from_bytes(message[:4], "big")
                if message != payload(number, self.size):
                    self.bad_payloads += 1
                self.received.append(number)
        if self.on_step is not None:
            self.on_step(self)
        return len(self.received) >= self.total and not self.pending()

    def pending(self) -> int:
        sender = self.node(self.src).session(self.node(self.dst))
        return sender.queued if sender is not None else 0

    def run(self, *, timeout: float = 3_600) -> None:
        self.sim.run_until(self.step, timeout=timeout)

    def check_exactly_once(self) -> None:
        assert self.bad_payloads == 0
        duplicates = len(self.received) - len(set(self.received))
        missing = sorted(set(range(self.total)) - set(self.received))
        assert duplicates == 0, f"{duplicates} messages delivered twice"
        assert not missing, f"{len(missing)} messages lost, first {missing[:5]}"
        assert self.received == list(range(self.total)), "delivered out of order"


def established(node: SimNode, peer: SimNode) -> bool:
    session = node.session(peer)
    return session is not None and session.state is State.ESTABLISHED


@dataclass
class Kill:
    """Restart ``victim`` once, when ``when(stream)`` first holds, from the
    journal ``reopen()`` returns (after the old handle lost what it had not
    committed)."""

    victim: str
    when: Callable[[Stream], bool]
    reopen: Callable[[], Journal]
    done: bool = False
    at_received: int = -1

    def __call__(self, stream: Stream) -> None:
        if not self.done and self.when(stream):
            self.done = True
            self.at_received = len(stream.received)
            stream.sim.restart(self.victim, self.reopen())
