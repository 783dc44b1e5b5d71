"""Packets and bytes each way per peer address, and when each was last
seen: what ``l2session status`` shows per session (as ``wg show`` does) and
the metrics exporter counts.  The runtime counts at its edge (every packet
a transport delivered, every packet handed to a transport), so the figures
include handshakes, heartbeats and retransmissions: the traffic on the wire.
"""

from __future__ import annotations

from typing import Final

#: Addresses tracked; past it the least recently active is forgotten.
MAX_ADDRESSES: Final = 100_000


class Counters:
    """One address's traffic (slotted: one per peer on a large node)."""

    __slots__ = ("bytes_in", "bytes_out", "last_in", "last_out", "packets_in", "packets_out")

    def __init__(self) -> None:
        self.packets_in = 0
        self.packets_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.last_in: float | None = None
        self.last_out: float | None = None


class Traffic:
    """Counters by address, with node-wide totals."""

    __slots__ = ("_by_address", "total")

    def __init__(self) -> None:
        self._by_address: dict[str, Counters] = {}
        self.total = Counters()

    def _of(self, address: str) -> Counters:
        table = self._by_address
        counters = table.pop(address, None)
        if counters is None:
            counters = Counters()
            if len(table) >= MAX_ADDRESSES:
                del table[next(iter(table))]
        table[address] = counters  # most recently active last
        return counters

    def received(self, address: str, size: int, now: float) -> None:
        for counters in (self._of(address), self.total):
            counters.packets_in += 1
            counters.bytes_in += size
            counters.last_in = now

    def sent(self, address: str, size: int, now: float) -> None:
        for counters in (self._of(address), self.total):
            counters.packets_out += 1
            counters.bytes_out += size
            counters.last_out = now

    def of(self, address: str | None) -> Counters | None:
        return None if address is None else self._by_address.get(address)
