"""A log of every datagram a :class:`Simulation` puts on its network.

Tests that check *what went where* (a challenge to the new address before
any data, traffic spread over paths) read it instead of instrumenting the
network themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from l2session.testing.simulation import Simulation


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    source: str
    destination: str
    path: str
    data: bytes


def record_wire(sim: Simulation) -> list[Sent]:
    """Start recording ``sim``'s datagrams; the returned list grows as they
    are sent (dropped ones included: this is what left the sender)."""
    log: list[Sent] = []
    original = sim.network.send

    def recording(
        source: str, destination: str, path: str, data: bytes | bytearray | memoryview, now: float
    ) -> None:
        log.append(Sent(now, source, destination, path, bytes(data)))
        original(source, destination, path, data, now)

    sim.network.send = recording  # type: ignore[method-assign]
    return log
