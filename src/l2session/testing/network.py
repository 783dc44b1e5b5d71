"""A seeded, deterministic in-memory datagram network on virtual time.

SPEC-018 §6.3 asks for a "MockTransport with latency/packet loss controls".
The session core is sans-I/O (fed bytes and ``now``), so the natural harness
is several cores joined by a network that is itself just data: datagrams in
flight sit in a heap keyed by arrival time, and the test decides when time
passes.  No asyncio, no sockets, no real clock: crossing a 60-second
suspension takes microseconds and gives the same result on a loaded CI box.

* **Reproducible.**  Every random decision comes from
  :class:`~l2session.crypto.rng.SeededRandom`: same seed, same calls, same
  deliveries, so a failing run can be replayed.  Each send consumes the same
  number of draws whatever happens to it, so changing the fate of one
  datagram (a partition, another profile) does not reshuffle all later ones.
* **Real faults.**  Latency, jitter, loss, duplication, reordering, a
  partition between two nodes, an isolated node, a blocked path (UDP
  filtered: QUIC fails, μTCP works) -- the situations of SPEC-018 §2.
* **Bounded.**  A runaway test stops growing at ``max_in_flight`` datagrams.

Addresses are strings.  Datagrams travel on a named *path*; :data:`PATHS`
lists the standard two (QUIC primary, μTCP fallback), but any name works.

Typical harness loop::

    while (t := net.next_arrival()) is not None and t <= deadline:
        for d in net.deliver_due(t):
            nodes[d.destination].receive(d.data, d.path, now=t)
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError

#: The standard paths: QUIC first, μTCP when QUIC fails.
PATHS: tuple[str, ...] = ("quic", "tcp")

#: Random draws per send: loss, duplicate, then (jitter, reorder) per copy.
_DRAWS_PER_SEND = 6

_Pair = tuple[str, str]


def _pair(a: str, b: str) -> _Pair:
    """An unordered pair of nodes as a canonical key."""
    return (a, b) if a <= b else (b, a)


def _name(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {type(value).__name__}")
    if not value:
        raise ConfigError(f"{field} must not be empty")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """How a link behaves: one-way delay, and the chance of each fault.

    ``latency`` is the one-way delay in seconds; ``jitter`` adds a uniform
    extra delay in ``[0, jitter)``.  ``loss``, ``duplicate`` and ``reorder``
    are probabilities per datagram; a reordered datagram is held back by an
    extra ``reorder_delay`` so that datagrams sent after it overtake it.
    """

    latency: float = 0.005
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.02

    def __post_init__(self) -> None:
        for field in ("latency", "jitter", "reorder_delay"):
            value = getattr(self, field)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"LinkProfile.{field} must be a finite number >= 0, got {value!r}"
                )
        for field in ("loss", "duplicate", "reorder"):
            value = getattr(self, field)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(
                    f"LinkProfile.{field} must be a probability in [0, 1], got {value!r}"
                )


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram as delivered: arrival time, endpoints, path and payload."""

    at: float
    source: str
    destination: str
    path: str
    data: bytes


@dataclass(frozen=True, slots=True)
class NetworkStats:
    """Counters since the network was created.

    Every datagram is accounted for: ``sent + duplicated == delivered +
    dropped_loss + dropped_partition + dropped_overflow + in_flight``.
    ``dropped_partition`` counts every datagram cut by a partition, an
    isolated node or a blocked path (also those retracted from flight).
    """

    sent: int
    delivered: int
    dropped_loss: int
    dropped_partition: int
    dropped_overflow: int
    duplicated: int
    reordered: int
    in_flight: int


class _Uniform:
    """Floats uniform in [0, 1) from a :class:`SeededRandom` byte stream.

    ``SeededRandom`` only yields bytes; each float takes 53 bits of an 8-byte
    word.  Bytes are read in chunks because every ``random_bytes`` call costs a
    BLAKE3 finalisation; the stream is sequential, so chunking changes no value.
    """

    __slots__ = ("_buffer", "_offset", "_rng")

    _CHUNK = 8 * 512
    _SCALE = 1.0 / (1 << 53)

    def __init__(self, rng: SeededRandom) -> None:
        self._rng = rng
        self._buffer = b""
        self._offset = 0

    def random(self) -> float:
        if self._offset + 8 > len(self._buffer):
            self._buffer = self._rng.random_bytes(self._CHUNK)
            self._offset = 0
        word = int.from_bytes(self._buffer[self._offset : self._offset + 8], "big")
        self._offset += 8
        return (word >> 11) * self._SCALE


class MockNetwork:
    """Deterministic in-memory datagram network; see the module docstring.

    ``seed`` fixes every random decision.  ``profile`` is the default
    :class:`LinkProfile`; :meth:`set_profile` overrides it per path, per pair
    of nodes, or per pair and path.  At most ``max_in_flight`` datagrams are
    held; past that, new ones are dropped and counted in
    ``stats.dropped_overflow``.
    """

    def __init__(
        self,
        seed: str | int = 0,
        profile: LinkProfile | None = None,
        *,
        max_in_flight: int = 1_000_000,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, str | int):
            raise TypeError(f"seed must be a str or an int, got {type(seed).__name__}")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ConfigError(f"max_in_flight must be >= 1, got {max_in_flight}")
        # repr() keeps the int seed 0 and the str seed "0" apart.
        self._uniform = _Uniform(SeededRandom(f"l2session mock network {seed!r}"))
        self._max_in_flight = max_in_flight
        self._default = profile if profile is not None else LinkProfile()
        self._by_path: dict[str, LinkProfile] = {}
        self._by_pair: dict[_Pair, LinkProfile] = {}
        self._by_pair_path: dict[tuple[_Pair, str], LinkProfile] = {}
        self._partitions: set[_Pair] = set()
        self._isolated: set[str] = set()
        self._blocked_paths: set[str] = set()
        self._queue: list[tuple[float, int, Datagram]] = []
        self._counter = 0
        self._sent = 0
        self._delivered = 0
        self._dropped_loss = 0
        self._dropped_partition = 0
        self._dropped_overflow = 0
        self._duplicated = 0
        self._reordered = 0

    def set_profile(
        self,
        profile: LinkProfile,
        *,
        path: str | None = None,
        between: tuple[str, str] | None = None,
    ) -> None:
        """Set the default profile, or override it for a path, an unordered
        pair of nodes, or a pair on one path.  The most specific one wins:
        pair and path, then pair, then path, then the default."""
        if between is None:
            if path is None:
                self._default = profile
            else:
                self._by_path[_name(path, "path")] = profile
            return
        pair = _pair(_name(between[0], "between[0]"), _name(between[1], "between[1]"))
        if path is None:
            self._by_pair[pair] = profile
        else:
            self._by_pair_path[pair, _name(path, "path")] = profile

    def clear_profile(
        self, *, path: str | None = None, between: tuple[str, str] | None = None
    ) -> None:
        """Remove an override set by :meth:`set_profile` (no error if absent)."""
        if between is None:
            if path is None:
                raise ConfigError("clear_profile needs path or between (the default stays)")
            self._by_path.pop(path, None)
            return
        pair = _pair(between[0], between[1])
        if path is None:
            self._by_pair.pop(pair, None)
        else:
            self._by_pair_path.pop((pair, path), None)

    def profile_for(self, source: str, destination: str, path: str) -> LinkProfile:
        """The profile a datagram from ``source`` to ``destination`` on
        ``path`` gets."""
        pair = _pair(source, destination)
        found = self._by_pair_path.get((pair, path))
        if found is None:
            found = self._by_pair.get(pair)
        if found is None:
            found = self._by_path.get(path, self._default)
        return found

    # ------------------------------------------------------------------
    # Connectivity faults
    #
    # A fault applies to datagrams sent after it.  Datagrams already in flight
    # still arrive, as on a real network (they were already on the wire),
    # unless the caller passes drop_in_flight=True.

    def partition(self, a: str, b: str, *, drop_in_flight: bool = False) -> None:
        """Drop every datagram between ``a`` and ``b``, both ways, all paths."""
        if _name(a, "a") == _name(b, "b"):
            raise ConfigError(f"cannot partition {a!r} from itself")
        pair = _pair(a, b)
        self._partitions.add(pair)
        if drop_in_flight:
            self._retract(lambda d: _pair(d.source, d.destination) == pair)

    def heal(self, a: str, b: str) -> None:
        """Undo :meth:`partition` (no error if there was none)."""
        self._partitions.discard(_pair(a, b))

    def isolate(self, a: str, *, drop_in_flight: bool = False) -> None:
        """Node ``a`` reaches nobody and nobody reaches it, on every path."""
        self._isolated.add(_name(a, "a"))
        if drop_in_flight:
            self._retract(lambda d: a in (d.source, d.destination))

    def rejoin(self, a: str) -> None:
        """Undo :meth:`isolate` (no error if ``a`` was not isolated)."""
        self._isolated.discard(a)

    def block_path(self, path: str, *, drop_in_flight: bool = False) -> None:
        """Drop everything on ``path`` (e.g. UDP filtered: "quic" fails,
        "tcp" still works)."""
        self._blocked_paths.add(_name(path, "path"))
        if drop_in_flight:
            self._retract(lambda d: d.path == path)

    def unblock_path(self, path: str) -> None:
        """Undo :meth:`block_path` (no error if it was not blocked)."""
        self._blocked_paths.discard(path)

    def _cut(self, source: str, destination: str, path: str) -> bool:
        return (
            path in self._blocked_paths
            or source in self._isolated
            or destination in self._isolated
            or _pair(source, destination) in self._partitions
        )

    def reachable(self, source: str, destination: str, path: str) -> bool:
        """True if a datagram sent now could arrive: no partition, isolation
        or blocked path, and the link's loss is below 1.  This is the
        "transport reports connectivity" signal a runtime would get."""
        if self._cut(source, destination, path):
            return False
        return self.profile_for(source, destination, path).loss < 1.0

    def drop_in_flight(self, doomed: Callable[[Datagram], bool]) -> int:
        """Lose the datagrams in flight for which ``doomed`` is true (one
        chosen packet, not a whole link); returns how many."""
        before = len(self._queue)
        self._retract(doomed)
        return before - len(self._queue)

    def _retract(self, doomed: Callable[[Datagram], bool]) -> None:
        kept = [entry for entry in self._queue if not doomed(entry[2])]
        self._dropped_partition += len(self._queue) - len(kept)
        heapq.heapify(kept)
        self._queue = kept

    def send(
        self,
        source: str,
        destination: str,
        path: str,
        data: bytes | bytearray | memoryview,
        now: float,
    ) -> None:
        """Put a datagram on the wire at time ``now``.

        In order: a partition, isolation or blocked path drops it; then loss
        may drop it; then it may be duplicated (the copy gets its own jitter
        and reordering); each copy arrives after latency plus jitter, plus
        ``reorder_delay`` if reordered.  Equal arrival times keep send order.
        """
        _name(source, "source")
        _name(destination, "destination")
        _name(path, "path")
        if type(data) is bytes:
            payload = data
        elif isinstance(data, bytes | bytearray | memoryview):
            payload = bytes(data)  # a copy: the caller may reuse its buffer
        else:
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        if not _is_number(now) or not math.isfinite(now):
            raise ConfigError(f"now must be a finite number, got {now!r}")
        draws = [self._uniform.random() for _ in range(_DRAWS_PER_SEND)]
        self._sent += 1
        if self._cut(source, destination, path):
            self._dropped_partition += 1
            return
        profile = self.profile_for(source, destination, path)
        if draws[0] < profile.loss:
            self._dropped_loss += 1
            return
        copies = 1
        if draws[1] < profile.duplicate:
            copies = 2
            self._duplicated += 1
        for copy in range(copies):
            at = now + profile.latency
            if profile.jitter:
                at += draws[2 + 2 * copy] * profile.jitter
            if draws[3 + 2 * copy] < profile.reorder:
                at += profile.reorder_delay
                self._reordered += 1
            self._enqueue(Datagram(at, source, destination, path, payload))

    def _enqueue(self, datagram: Datagram) -> None:
        if len(self._queue) >= self._max_in_flight:
            self._dropped_overflow += 1
            return
        heapq.heappush(self._queue, (datagram.at, self._counter, datagram))
        self._counter += 1

    def next_arrival(self) -> float | None:
        """The arrival time of the next datagram, or None if none is in flight."""
        return self._queue[0][0] if self._queue else None

    def deliver_due(self, now: float) -> list[Datagram]:
        """Remove and return every datagram with ``at <= now``, in arrival
        order (send order for equal times).  ``deliver_due(math.inf)``
        drains the network."""
        if not _is_number(now) or math.isnan(now):
            raise ConfigError(f"now must be a number, got {now!r}")
        due: list[Datagram] = []
        while self._queue and self._queue[0][0] <= now:
            due.append(heapq.heappop(self._queue)[2])
        self._delivered += len(due)
        return due

    @property
    def pending(self) -> int:
        """How many datagrams are in flight."""
        return len(self._queue)

    @property
    def stats(self) -> NetworkStats:
        """A snapshot of the counters."""
        return NetworkStats(
            sent=self._sent,
            delivered=self._delivered,
            dropped_loss=self._dropped_loss,
            dropped_partition=self._dropped_partition,
            dropped_overflow=self._dropped_overflow,
            duplicated=self._duplicated,
            reordered=self._reordered,
            in_flight=len(self._queue),
        )


class MockTransport:
    """One node's view of a :class:`MockNetwork` (SPEC-018 §6.3 "MockTransport").

    Sending goes through the network with this node as the source.  Receiving
    does not: the harness takes :meth:`MockNetwork.deliver_due` and routes each
    :class:`Datagram` by its ``destination``, so one loop drives every node in
    global arrival order.
    """

    __slots__ = ("_address", "_network")

    def __init__(self, network: MockNetwork, address: str) -> None:
        self._network = network
        self._address = _name(address, "address")

    @property
    def address(self) -> str:
        return self._address

    @property
    def network(self) -> MockNetwork:
        return self._network

    def send(
        self,
        destination: str,
        data: bytes | bytearray | memoryview,
        now: float,
        *,
        path: str = PATHS[0],
    ) -> None:
        """Send ``data`` to ``destination`` on ``path`` (QUIC by default)."""
        self._network.send(self._address, destination, path, data, now)

    def reachable(self, destination: str, path: str = PATHS[0]) -> bool:
        """Whether ``destination`` can currently be reached on ``path``."""
        return self._network.reachable(self._address, destination, path)
