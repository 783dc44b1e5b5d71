"""Session benchmark: 100,000 established idle sessions in one process.

What one run measures (``python benchmarks/sessions.py [--json] [--sessions N]``):

The set-up.  One node, *the hub*, establishes a session with each of ``N``
peer nodes (default 100,000), all in this process on one
:class:`~l2session.testing.simulation.Simulation` (seeded in-memory network,
zero latency, virtual time).  Everything is real: every peer has its own DID,
identity key and prekeys, and every session is a full PQXDH handshake
(BUNDLE_REQUEST -> BUNDLE -> INIT -> RESPONSE -> FINISH, with a one-time
prekey) driven through the managers and the network, ``--batch`` (100)
handshakes at a time.  A session manager holds one session per peer DID, so
``N`` sessions on one manager take ``N`` peers; the hub is the node this
benchmark is about (a server holding 100,000 sessions), the peers stand in
for the remote ends.  Since the remote ends live in this process too, the
process holds ``2 N`` session objects.

``sessions``
    ``N``: established sessions on the hub (each with its other end on a peer).
``rss_bytes_per_session`` (target <= 10,000)
    Resident memory (``/proc/self/statm``) after establishing every session and
    ``gc.collect()``, minus the same before the first session was opened (all
    nodes, identities and prekeys already built), divided by the number of
    session objects in all managers (``2 N``: both ends are in this process and
    cost about the same).  It is what the process really holds: live objects,
    OpenSSL key objects, and the allocator's retained free memory.  Extras:
    the same after the heartbeat rounds, after ``malloc_trim`` (what the
    allocator was only holding on to), and a per-component breakdown of the
    live Python objects of a session right after establishing
    (``memory_breakdown``, ``sys.getsizeof`` of the objects a session alone
    refers to, averaged over up to 1,000 sessions per side).  The retained
    part depends on how many handshakes are in flight at once: thousands at
    a time (``--batch 5000``) leave the allocator holding several KB per
    session of freed handshake messages and keys among the long-lived
    objects; a server taking handshakes as they come is closer to the
    default.
``idle_tick_us_1k`` / ``idle_tick_us_100k`` (target: about equal)
    ``manager.tick()`` on the hub when no timer is due: median microseconds per
    call (chunks of 100 calls, loop overhead included) when the hub holds
    1,000 sessions (measured during the set-up, the baseline of this run) and
    when it holds all ``N``.  The hub is the one manager of the node under
    test, so "a tick of a process holding N sessions" is a tick of the manager
    holding them all; ticking the ``N`` peer managers would measure the
    simulated remote ends, not this node.  ``idle_tick_ratio`` = 100k / 1k.
    Both are measured in the same state (right after establishing, handshake
    timers pending but not due); ``idle_tick_us_100k_settled`` is the same
    after those timers ran (one heap entry per session).
``heartbeat_round_s_100k`` (target <= 5 s: a sixth of a core at a 30 s interval)
    CPU seconds (``time.process_time``) of one steady-state heartbeat round:
    virtual time moves to the hub's heartbeat deadline, the hub sends one
    heartbeat on every session, every peer answers, the hub takes each answer,
    and time runs on past the heartbeat timeout (so a lost answer would show
    as a miss, and each session's timer re-arms).  Everything the process does
    in that window is counted: both ends' session code and ratchets, the
    manager's timers, the mock network and the event loop below.  That is one
    heartbeat exchange per session, as in a deployment (whichever side's timer
    fires first sends; the other side's timer is pushed back by the traffic),
    with *both* ends' work in this process: the hub alone would pay about
    ``heartbeat_round_hub_s``, the CPU inside the hub manager's calls, taken
    from one more round run with those calls timed (the timing costs a little
    itself, so that round is not among those the key figure is the median
    of).  The peers use a 45 s heartbeat interval so that every round is the
    hub's (with equal intervals and zero latency both ends would fire at the
    same instant and the round would carry two exchanges per session).  The
    first round after establishing also carries each side's delivery SYNC
    and a delayed ACK; it is reported separately (``heartbeat_first_round_s``).
    Baseline from the same run: ``heartbeat_floor_s`` = ``N`` x the median
    cost of one heartbeat exchange on a bare :class:`DoubleRatchet` pair
    (encrypt + decrypt each way, heartbeat-sized plaintexts, no DH step:
    control records never take one, CRYPTO.md §5.2), and
    ``heartbeat_floor_ratio`` = floor / round.

Why a loop of its own: :meth:`Simulation.pump` visits every node on every step,
which is right for a handful of nodes but with 100,001 nodes would make the
harness, not the sessions, the cost being measured.  :class:`_Runtime` plays
the asyncio runtime's part for all nodes at once over the simulation's network
and clock: it hands each datagram to its node, arms one timer per node from
``manager.get_timer()``, ticks a manager only when its timer is due, and
drains each touched node's outbox and events.

The peer nodes are built first and frozen out of the garbage collector's
work (``gc.freeze``), so that its passes see the sessions, as they would in
the hub's own process, not 100,000 simulated remote nodes.

Counts are checked, not assumed: every handshake must end ``established`` on
both sides, an idle tick must send nothing, and each heartbeat round must
move exactly one packet each way per session and end with no missed
heartbeat.  The exit code is 0 whether or not a target is met.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import enum
import gc
import heapq
import itertools
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import cryptography

from l2session.core.config import SessionConfig
from l2session.core.link.session import Session
from l2session.core.management.context import Context
from l2session.core.management.manager import SessionManager
from l2session.core.states import State
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.rng import SeededRandom
from l2session.identity.prekeys import PrekeyPolicy
from l2session.testing.network import LinkProfile
from l2session.testing.parties import Party, run_handshake
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.records import Heartbeat, HeartbeatAck, encode_records

DEFAULT_SESSIONS: Final = 100_000
BASELINE_SESSIONS: Final = 1_000
DEFAULT_BATCH: Final = 100
#: Every peer takes one handshake: one one-time prekey is all it needs (the
#: handshake still uses one, as in production).
PREKEY_POLICY: Final = PrekeyPolicy(one_time_pool_size=1, one_time_refill_threshold=0)
HUB_CONFIG: Final = SessionConfig()
#: The remote ends' timers fire after the hub's, so each round is the hub's.
PEER_CONFIG: Final = SessionConfig(heartbeat_interval=45.0)
#: Virtual seconds after establishing at which the handshake timers have run.
SETTLE: Final = 10.0
#: How far past a heartbeat deadline a round runs (beyond heartbeat_timeout).
ROUND_TAIL: Final = HUB_CONFIG.heartbeat_timeout + 1.0
TICK_CALLS: Final = 20_000
TICK_CHUNK: Final = 100
FLOOR_EXCHANGES: Final = 2_000
BREAKDOWN_SAMPLE: Final = 1_000

TARGETS: Final = {
    "rss_bytes_per_session": "<= 10000",
    "idle_tick_ratio": "<= 1.5 (about equal)",
    "heartbeat_round_s_100k": "<= 5 s at 100,000 sessions (50 µs per session)",
}


class BenchmarkError(RuntimeError):
    """The benchmark cannot measure what it claims to (never a missed target)."""


def _progress(message: str) -> None:
    print(f"[sessions] {message}", file=sys.stderr, flush=True)


@contextmanager
def _gc_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _rss_bytes() -> int:
    """Resident set size now (not the peak ``ru_maxrss``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except OSError as error:
        raise BenchmarkError(f"cannot read /proc/self/statm ({error}); Linux only") from error
    return pages * os.sysconf("SC_PAGE_SIZE")


def _settled_rss() -> int:
    gc.collect()
    return _rss_bytes()


def _malloc_trim() -> bool:
    """Ask glibc to return free heap memory to the OS (False if not glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True


# ==========================================================================
# The runtime's part, for many nodes at once


@dataclass(slots=True)
class _Traffic:
    """Datagrams put on the network, by direction."""

    from_hub: int = 0
    to_hub: int = 0

    def copy(self) -> _Traffic:
        return _Traffic(self.from_hub, self.to_hub)


class _Runtime:
    """Event-driven loop over the simulation's network and clock (see the
    module docstring): work proportional to the activity, not to the nodes."""

    def __init__(self, sim: Simulation, hub: SimNode) -> None:
        self.sim = sim
        self.hub = hub
        self.traffic = _Traffic()
        self.steps = 0
        self._timers: list[tuple[float, int, SimNode]] = []
        self._armed: dict[str, float] = {}
        self._counter = itertools.count()

    def activate(self, nodes: Iterable[SimNode]) -> None:
        """Put what these nodes queued on the network, consume their events
        (the application's part; nothing here needs them) and arm their timers."""
        network, now, hub = self.sim.network, self.sim.now, self.hub
        for node in nodes:
            manager = node.manager
            for out in manager.datagrams_to_send():
                network.send(node.name, out.address, out.path, out.data, now)
                if node is hub:
                    self.traffic.from_hub += 1
                else:
                    self.traffic.to_hub += 1
            manager.events()
            timer = manager.get_timer()
            if timer is not None:
                armed = self._armed.get(node.name)
                if armed is None or timer < armed:
                    self._armed[node.name] = timer
                    heapq.heappush(self._timers, (timer, next(self._counter), node))

    def _next_timer(self) -> float | None:
        timers, armed = self._timers, self._armed
        while timers and armed.get(timers[0][2].name) != timers[0][0]:
            heapq.heappop(timers)  # superseded by an earlier one
        return timers[0][0] if timers else None

    def run(self, until: float, *, max_steps: int = 100_000) -> None:
        """Handle every arrival and every due timer up to ``until``."""
        sim, clock, nodes = self.sim, self.sim.clock, self.sim.nodes
        for _ in range(max_steps):
            candidates = [
                t for t in (sim.network.next_arrival(), self._next_timer()) if t is not None
            ]
            upcoming = min(candidates) if candidates else None
            if upcoming is None or upcoming > until:
                if until > clock.now():
                    clock.set(until)
                return
            if upcoming > clock.now():
                clock.set(upcoming)
            now = clock.now()
            self.steps += 1
            touched: dict[str, SimNode] = {}
            for datagram in sim.network.deliver_due(now):
                node = nodes[datagram.destination]
                node.manager.receive_datagram(datagram.data, datagram.source, datagram.path)
                touched[node.name] = node
            timers, armed = self._timers, self._armed
            while timers and timers[0][0] <= now:
                due, _, node = heapq.heappop(timers)
                if armed.get(node.name) != due:
                    continue
                del armed[node.name]
                node.manager.tick()
                touched[node.name] = node
            self.activate(touched.values())
        raise BenchmarkError(f"the simulation did not settle within {max_steps} steps")


# ==========================================================================
# Set-up


@dataclass(slots=True)
class _World:
    sim: Simulation
    hub: SimNode
    peers: list[SimNode]
    runtime: _Runtime


def _build(n: int, seed: str) -> tuple[_World, float]:
    """The hub and ``n`` peers with identities and prekeys (no session yet)."""
    started = time.perf_counter()
    sim = Simulation(seed, profile=LinkProfile(latency=0.0))
    hub_party = Party.create(SeededRandom(f"{seed}/hub/party"), now=sim.now, policy=PREKEY_POLICY)
    hub = sim.add_node("hub", config=HUB_CONFIG, party=hub_party)
    peers: list[SimNode] = []
    for i in range(n):
        name = f"peer{i}"
        party = Party.create(
            SeededRandom(f"{seed}/{name}/party"), now=sim.now, policy=PREKEY_POLICY
        )
        peers.append(sim.add_node(name, config=PEER_CONFIG, party=party))
        if (i + 1) % 20_000 == 0:
            _progress(f"created {i + 1:,} of {n:,} peer nodes")
    return _World(sim, hub, peers, _Runtime(sim, hub)), time.perf_counter() - started


def _establish(world: _World, peers: Sequence[SimNode]) -> list[Session]:
    """Full handshakes from the hub to ``peers``; checks both ends."""
    hub, runtime = world.hub, world.runtime
    sessions = [hub.manager.establish(peer.did) for peer in peers]
    runtime.activate([hub])
    runtime.run(world.sim.now)
    for session, peer in zip(sessions, peers, strict=True):
        other = peer.manager.session(hub.did)
        if session.state is not State.ESTABLISHED or other is None:
            raise BenchmarkError(f"hub -> {peer.name}: {session.state.value}, peer side {other}")
        if other.state is not State.ESTABLISHED:
            raise BenchmarkError(f"{peer.name}'s side of its session is {other.state.value}")
    return sessions


def _idle_tick_us(manager: SessionManager) -> float:
    """Median µs per ``tick()`` with no timer due (see the module docstring)."""
    now = manager.now()
    timer = manager.get_timer()
    if timer is not None and timer <= now:
        raise BenchmarkError("a timer is due: the tick would not be idle")
    manager.datagrams_to_send()
    manager.events()
    tick = manager.tick
    clock = time.perf_counter_ns
    samples: list[float] = []
    with _gc_paused():
        for _ in range(TICK_CALLS // TICK_CHUNK):
            start = clock()
            for _ in range(TICK_CHUNK):
                tick()
            samples.append((clock() - start) / TICK_CHUNK)
    if manager.datagrams_to_send() or manager.events():
        raise BenchmarkError("an idle tick sent or reported something")
    return statistics.median(samples) / 1000.0


# ==========================================================================
# Heartbeat rounds


@dataclass(frozen=True, slots=True)
class _Round:
    cpu_s: float
    wall_s: float
    #: CPU inside the hub manager's calls (instrumented rounds only).
    hub_cpu_s: float | None
    from_hub: int
    to_hub: int
    steps: int
    gc_collections: int


_HUB_CALLS: Final = ("receive_datagram", "tick", "datagrams_to_send", "events", "get_timer")


@contextmanager
def _hub_cpu(manager: SessionManager, spent: list[float]) -> Iterator[None]:
    """Add the CPU time spent inside the hub manager's runtime calls to ``spent``."""
    clock = time.process_time

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += clock() - start

        return call

    for name in _HUB_CALLS:
        setattr(manager, name, timed(getattr(manager, name)))
    try:
        yield
    finally:
        for name in _HUB_CALLS:
            delattr(manager, name)  # back to the class's methods


def _gc_count() -> int:
    return sum(stat["collections"] for stat in gc.get_stats())


def _heartbeat_round(world: _World, sessions: list[Session], *, instrument: bool) -> _Round:
    """Run from now through the hub's next heartbeat deadline and past the
    heartbeat timeout; checks that no heartbeat was missed.  ``instrument``
    also times the hub manager's calls (which costs a little CPU itself)."""
    sim, runtime, hub = world.sim, world.runtime, world.hub
    deadline = hub.manager.get_timer()
    if deadline is None or deadline <= sim.now:
        raise BenchmarkError("the hub has no future timer: nothing to measure")
    before, steps, collections = runtime.traffic.copy(), runtime.steps, _gc_count()
    spent = [0.0]
    with _hub_cpu(hub.manager, spent) if instrument else _nothing():
        wall, cpu = time.perf_counter(), time.process_time()
        runtime.run(deadline + ROUND_TAIL)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    result = _Round(
        cpu_s=cpu,
        wall_s=wall,
        hub_cpu_s=spent[0] if instrument else None,
        from_hub=runtime.traffic.from_hub - before.from_hub,
        to_hub=runtime.traffic.to_hub - before.to_hub,
        steps=runtime.steps - steps,
        gc_collections=_gc_count() - collections,
    )
    for session in sessions:
        if session.state is not State.ESTABLISHED or session.heartbeat_misses:
            raise BenchmarkError(
                f"session {session.peer_did}: {session.state.value}, "
                f"{session.heartbeat_misses} heartbeat(s) missed"
            )
        if session.lease_until < deadline + HUB_CONFIG.ttl:
            raise BenchmarkError(f"session {session.peer_did}: the lease was not extended")
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _heartbeat_floor_us() -> float:
    """Median µs of one heartbeat exchange on a bare ratchet pair: the hub's
    side encrypts a heartbeat, the peer decrypts it and encrypts the answer,
    the hub decrypts that (no DH step: heartbeats and their answers are
    control records, which never take one, as in a round)."""
    rng = SeededRandom("sessions benchmark floor")
    initiator, responder = (
        Party.create(rng.fork(name), now=0.0, policy=PREKEY_POLICY) for name in ("a", "b")
    )
    ours, theirs = run_handshake(initiator, responder, rng=rng, now=0.0)
    hub, peer = ours.ratchet, theirs.ratchet
    ping = encode_records([Heartbeat(1)])
    pong = encode_records([HeartbeatAck(1)])

    def exchange(a: DoubleRatchet, b: DoubleRatchet) -> None:
        if (
            b.decrypt(a.encrypt(ping, defer_step=True)) != ping
            or a.decrypt(b.encrypt(pong, defer_step=True)) != pong
        ):
            raise BenchmarkError("ratchet floor: decrypted plaintext differs")

    peer.decrypt(hub.encrypt(ping))  # the initiator's first DH step
    for _ in range(100):
        exchange(hub, peer)
    clock = time.perf_counter_ns
    samples: list[int] = []
    with _gc_paused():
        for _ in range(FLOOR_EXCHANGES):
            start = clock()
            exchange(hub, peer)
            samples.append(clock() - start)
    return statistics.median(samples) / 1000.0


# ==========================================================================
# Where the memory goes


_OPAQUE: Final = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    enum.Enum,
    SessionManager,
    SessionConfig,
    Context,
    SeededRandom,
)
#: An object referred to this often is shared (a constant such as the path
#: name "quic"), not part of any one session.
_SHARED_REFS: Final = 64


def _deep_size(obj: object, seen: set[int]) -> int:
    """Bytes of ``obj`` and everything it alone refers to (``sys.getsizeof``:
    the objects themselves, not the allocator's overhead nor memory OpenSSL
    holds behind key objects).  Shared objects (manager, config, context,
    RNG, enums, cached small ints, widely shared constants) and anything in
    ``seen`` count zero."""
    if obj is None or id(obj) in seen or isinstance(obj, _OPAQUE):
        return 0
    if isinstance(obj, int) and -5 <= obj <= 256:
        return 0
    if sys.getrefcount(obj) > _SHARED_REFS:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, types.MethodType):
        return size  # a bound method: its __self__ is the (shared) owner
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset | deque):
        size += sum(_deep_size(item, seen) for item in obj)
    elif not isinstance(obj, str | bytes | int | float):
        for name in _slot_names(type(obj)):
            size += _deep_size(getattr(obj, name, None), seen)
        if hasattr(obj, "__dict__"):
            size += _deep_size(vars(obj), seen)
    return size


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return names


#: Session slots shown on their own; the rest are "session object and fields".
_SESSION_PARTS: Final = {
    "answers": "handshake answer cache",
    "machine": "state machine and audit history",
    "outbound": "delivery: outbound",
    "inbound": "delivery: inbound",
    "channel": "channel (without its ratchet)",
    "handshake": "handshake in progress",
    "rotation": "rotation in progress",
}
#: DoubleRatchet slots shown on their own; the rest are "ratchet: object,
#: keys and counters".
_RATCHET_PARTS: Final = {
    "_window": "ratchet: replay window",
    "_retired": "ratchet: retired ratchet keys",
    "_skipped": "ratchet: skipped message keys",
}
_OTHER_SESSION: Final = "session object and fields"
_OTHER_RATCHET: Final = "ratchet: object, keys and counters"


def _component_sizes(session: Session) -> dict[str, int]:
    """Deep size of the parts of ``session`` (its channel's ratchets split
    out), each object counted once."""
    seen: set[int] = set()
    sizes: dict[str, int] = {_OTHER_SESSION: sys.getsizeof(session)}
    seen.add(id(session))

    def add(label: str, size: int) -> None:
        sizes[label] = sizes.get(label, 0) + size

    channel = session.channel
    ratchets = getattr(channel, "_ratchets", {}) if channel is not None else {}
    for ratchet in ratchets.values():
        seen.add(id(ratchet))
        add(_OTHER_RATCHET, sys.getsizeof(ratchet))
        for name in _slot_names(type(ratchet)):
            add(_RATCHET_PARTS.get(name, _OTHER_RATCHET), _deep_size(getattr(ratchet, name), seen))
    for name in _slot_names(type(session)):
        add(_SESSION_PARTS.get(name, _OTHER_SESSION), _deep_size(getattr(session, name), seen))
    return sizes


def _average(samples: Sequence[dict[str, int]]) -> dict[str, float]:
    keys = {key for sample in samples for key in sample}
    return {key: sum(s.get(key, 0) for s in samples) / len(samples) for key in keys}


def _growth(value: object, seen: set[int]) -> int:
    """Deep size of a table less that of an empty one of its type."""
    empty = type(value)()
    return _deep_size(value, seen) - sys.getsizeof(empty)


def _manager_share(manager: SessionManager, count: int) -> dict[str, float]:
    """Per-session share of the manager's own tables (indexes, timer heap,
    resumption tickets) beyond their empty size, and of the handshake replay
    guard's memory; the sessions themselves (and their DIDs and session ids,
    which the tables share) are counted separately."""
    seen: set[int] = set()
    for session in manager.sessions.values():
        seen.update((id(session), id(session.peer_did)))
        if session.channel is not None:
            seen.add(id(session.channel.session_id))
    out: dict[str, float] = {}
    for name, value in vars(manager).items():
        if type(value) in (dict, list, OrderedDict):
            out[f"manager.{name.lstrip('_')}"] = _growth(value, seen) / max(count, 1)
    guard = manager.ctx.keys.guard
    out["handshake replay guard"] = (
        _deep_size(guard, seen) - _deep_size(HandshakeReplayGuard(), set())
    ) / max(count, 1)
    return out


def _breakdown(world: _World, hub_sessions: list[Session]) -> dict[str, Any]:
    sample = hub_sessions[:BREAKDOWN_SAMPLE]
    hub_side = _average([_component_sizes(s) for s in sample])
    peer_sessions = [p.manager.session(world.hub.did) for p in world.peers[: len(sample)]]
    peer_side = _average([_component_sizes(s) for s in peer_sessions if s is not None])
    hub_tables = _manager_share(world.hub.manager, len(hub_sessions))
    peer_tables = _average(
        [
            {k: round(v) for k, v in _manager_share(p.manager, 1).items()}
            for p in world.peers[: len(sample)]
        ]
    )

    def table(parts: dict[str, float]) -> dict[str, int]:
        ordered = sorted(parts.items(), key=lambda kv: -kv[1])
        return {name: round(size) for name, size in ordered if round(size) != 0}

    retired = [
        len(getattr(ratchet, "_retired", ()))
        for session in (*sample, *peer_sessions)
        if session is not None and session.channel is not None
        for ratchet in getattr(session.channel, "_ratchets", {}).values()
    ]
    return {
        "sampled_sessions_per_side": len(sample),
        "ratchet_retired_keys_mean": round(statistics.fmean(retired or [0]), 2),
        "hub_session": table(hub_side),
        "hub_session_total": round(sum(hub_side.values())),
        "hub_manager_tables_per_session": table(hub_tables),
        "peer_session": table(peer_side),
        "peer_session_total": round(sum(peer_side.values())),
        "peer_manager_tables_per_session": table(peer_tables),
        "live_python_bytes_per_session_object": round(
            (
                sum(hub_side.values())
                + sum(hub_tables.values())
                + sum(peer_side.values())
                + sum(peer_tables.values())
            )
            / 2
        ),
    }


def _tracemalloc_top(n: int, seed: str, limit: int = 15) -> dict[str, Any]:
    """A separate small run under ``tracemalloc``: what the establishment of
    ``n`` sessions left allocated, by source line, per session object."""
    world, _ = _build(n, f"{seed}/tracemalloc")
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    _establish(world, world.peers)
    world.runtime.run(world.sim.now + SETTLE)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    objects = 2 * n
    diff = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in diff)
    top = [
        {
            "where": f"{stat.traceback[0].filename.rsplit('/src/', 1)[-1]}:"
            f"{stat.traceback[0].lineno}",
            "bytes_per_session": round(stat.size_diff / objects, 1),
            "blocks_per_session": round(stat.count_diff / objects, 2),
        }
        for stat in diff[:limit]
    ]
    return {"sessions": n, "traced_bytes_per_session": round(total / objects), "top": top}


# ==========================================================================
# The run


@dataclass(slots=True)
class _Options:
    sessions: int
    batch: int
    rounds: int
    seed: str
    tracemalloc: int


def _measure(options: _Options) -> dict[str, Any]:
    started = time.perf_counter()
    n = options.sessions
    floor_us = _heartbeat_floor_us()
    world, build_s = _build(n, options.seed)
    _progress(f"{n:,} peer nodes in {build_s:.1f} s")
    # The peer nodes are the simulated remote ends: keep them out of the
    # collector's work, so that it sees what this node would have.
    gc.collect()
    gc.freeze()
    try:
        return _measure_sessions(options, world, build_s, floor_us, started)
    finally:
        gc.unfreeze()


def _measure_sessions(
    options: _Options, world: _World, build_s: float, floor_us: float, started: float
) -> dict[str, Any]:
    n = options.sessions
    baseline_n = min(BASELINE_SESSIONS, n)
    rss_before = _settled_rss()

    # Establish in batches: up to the idle-tick baseline, measure it, the rest.
    hub_sessions: list[Session] = []
    setup_wall = setup_cpu = 0.0
    tick_1k = 0.0
    position = 0
    while position < n:
        goal = baseline_n if position < baseline_n else n
        batch = world.peers[position : position + min(options.batch, goal - position)]
        wall, cpu = time.perf_counter(), time.process_time()
        hub_sessions += _establish(world, batch)
        setup_cpu += time.process_time() - cpu
        setup_wall += time.perf_counter() - wall
        position += len(batch)
        if position == baseline_n:
            tick_1k = _idle_tick_us(world.hub.manager)
        if position == n or position % 10_000 == 0:
            _progress(f"established {position:,} of {n:,} ({position / setup_wall:,.0f}/s)")
    if len(world.hub.manager.sessions) != n:
        raise BenchmarkError("the hub does not hold one session per peer")

    rss_established = _settled_rss()
    objects = sum(len(node.manager.sessions) for node in world.sim.nodes.values())
    tick_100k = _idle_tick_us(world.hub.manager)
    breakdown = _breakdown(world, hub_sessions)
    start = world.sim.now

    # Let the handshake timers run: each session then waits for its heartbeat.
    sent = world.runtime.traffic.copy()
    world.runtime.run(start + SETTLE)
    if world.runtime.traffic != sent:
        raise BenchmarkError("idle sessions sent packets before their heartbeat was due")
    tick_settled = _idle_tick_us(world.hub.manager)

    _progress("heartbeat rounds")
    first = _heartbeat_round(world, hub_sessions, instrument=False)
    steady = [
        _heartbeat_round(world, hub_sessions, instrument=False) for _ in range(options.rounds)
    ]
    instrumented = _heartbeat_round(world, hub_sessions, instrument=True)
    for i, r in enumerate((*steady, instrumented)):
        if r.from_hub != n or r.to_hub != n:
            raise BenchmarkError(
                f"steady round {i + 1}: {r.from_hub} packets from the hub and {r.to_hub} "
                f"answers for {n} sessions (expected one each way per session)"
            )
    _progress(f"first round {first.cpu_s:.2f} s CPU, steady {[round(r.cpu_s, 2) for r in steady]}")
    rss_after_rounds = _settled_rss()
    trimmed = _malloc_trim()
    rss_trimmed = _rss_bytes()
    after_rounds = _breakdown(world, hub_sessions)

    round_s = statistics.median(r.cpu_s for r in steady)
    assert instrumented.hub_cpu_s is not None
    floor_s = n * floor_us / 1e6
    per_session = (rss_established - rss_before) / objects
    figures: dict[str, Any] = {
        "sessions": n,
        "rss_bytes_per_session": round(per_session),
        "idle_tick_us_1k": round(tick_1k, 3),
        "idle_tick_us_100k": round(tick_100k, 3),
        "heartbeat_round_s_100k": round(round_s, 3),
        # extras
        "session_objects": objects,
        "idle_tick_sessions": {"1k": baseline_n, "100k": n},
        "idle_tick_ratio": round(tick_100k / tick_1k, 3),
        "idle_tick_us_100k_settled": round(tick_settled, 3),
        "heartbeat_round_us_per_session": round(round_s / n * 1e6, 2),
        "heartbeat_round_hub_s": round(instrumented.hub_cpu_s, 3),
        "heartbeat_round_instrumented_s": round(instrumented.cpu_s, 3),
        "heartbeat_round_wall_s": round(statistics.median(r.wall_s for r in steady), 3),
        "heartbeat_rounds_cpu_s": [round(r.cpu_s, 3) for r in steady],
        "heartbeat_first_round_s": round(first.cpu_s, 3),
        "heartbeat_floor_exchange_us": round(floor_us, 2),
        "heartbeat_floor_s": round(floor_s, 3),
        "heartbeat_floor_ratio": round(floor_s / round_s, 3),
        "heartbeat_packets": {
            "steady_round": {"from_hub": steady[0].from_hub, "to_hub": steady[0].to_hub},
            "first_round": {"from_hub": first.from_hub, "to_hub": first.to_hub},
        },
        "heartbeat_gc_collections": [r.gc_collections for r in (first, *steady, instrumented)],
        "rss_before_bytes": rss_before,
        "rss_established_bytes": rss_established,
        "rss_delta_bytes": rss_established - rss_before,
        "rss_bytes_per_session_after_rounds": round((rss_after_rounds - rss_before) / objects),
        "rss_bytes_per_session_after_trim": (
            round((rss_trimmed - rss_before) / objects) if trimmed else None
        ),
        "memory_breakdown": breakdown,
        "memory_after_rounds": {
            key: after_rounds[key]
            for key in (
                "hub_session_total",
                "peer_session_total",
                "live_python_bytes_per_session_object",
                "ratchet_retired_keys_mean",
            )
        },
        "peer_nodes_s": round(build_s, 1),
        "setup_s": round(setup_wall, 1),
        "setup_handshakes_per_s": round(n / setup_wall, 1),
        "setup_cpu_ms_per_handshake": round(setup_cpu / n * 1000, 3),
        "batch": options.batch,
        "seed": options.seed,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "cpus": os.cpu_count(),
    }
    met = {
        "rss_bytes_per_session": per_session <= 10_000,
        "idle_tick_ratio": tick_100k / tick_1k <= 1.5,
        "heartbeat_round_s_100k": round_s / n * DEFAULT_SESSIONS <= 5.0,
    }
    figures["targets"] = {
        key: {"target": target, "met": met[key]} for key, target in TARGETS.items()
    }
    if options.tracemalloc:
        _progress(f"tracemalloc run with {options.tracemalloc:,} sessions")
        figures["tracemalloc"] = _tracemalloc_top(options.tracemalloc, options.seed)
    figures["elapsed_s"] = round(time.perf_counter() - started, 1)
    return figures


# ==========================================================================
# Output


def _table(figures: dict[str, Any]) -> str:
    n = figures["sessions"]
    targets = figures["targets"]

    def met(key: str) -> str:
        return f"target {targets[key]['target']}: {'met' if targets[key]['met'] else 'NOT met'}"

    lines = [
        f"l2session sessions benchmark: {n:,} sessions on one hub, "
        f"{figures['session_objects']:,} session objects ({figures['elapsed_s']} s; "
        f"Python {figures['python']}, cryptography {figures['cryptography']}, "
        f"{figures['cpus']} CPUs)",
        "",
        f"  set-up: {figures['setup_handshakes_per_s']:,.0f} handshakes/s, "
        f"{figures['setup_cpu_ms_per_handshake']} ms CPU each ({figures['setup_s']} s; "
        f"peer nodes {figures['peer_nodes_s']} s)",
        f"  rss_bytes_per_session      {figures['rss_bytes_per_session']:>10,}   "
        f"{met('rss_bytes_per_session')}",
        f"    after heartbeat rounds   {figures['rss_bytes_per_session_after_rounds']:>10,}",
        f"    after malloc_trim        {figures['rss_bytes_per_session_after_trim'] or 0:>10,}",
        f"    live Python objects      "
        f"{figures['memory_breakdown']['live_python_bytes_per_session_object']:>10,}",
        f"  idle_tick_us_1k            {figures['idle_tick_us_1k']:>10}",
        f"  idle_tick_us_100k          {figures['idle_tick_us_100k']:>10}   "
        f"ratio {figures['idle_tick_ratio']}, {met('idle_tick_ratio')}",
        f"  heartbeat_round_s_100k     {figures['heartbeat_round_s_100k']:>10}   "
        f"{met('heartbeat_round_s_100k')}",
        f"    hub's share              {figures['heartbeat_round_hub_s']:>10}",
        f"    first round              {figures['heartbeat_first_round_s']:>10}",
        f"    ratchet floor            {figures['heartbeat_floor_s']:>10}   "
        f"(floor/round {figures['heartbeat_floor_ratio']})",
        "",
        "  memory of one hub session (live Python objects, bytes):",
    ]
    for name, size in figures["memory_breakdown"]["hub_session"].items():
        lines.append(f"    {name:<40}{size:>8,}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--sessions", type=int, default=DEFAULT_SESSIONS, help="sessions on the hub (100,000)"
    )
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help="handshakes per set-up batch"
    )
    parser.add_argument("--rounds", type=int, default=2, help="steady heartbeat rounds (2)")
    parser.add_argument("--seed", default="sessions benchmark", help="simulation seed")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="N",
        help="also trace the allocations of a separate N-session run",
    )
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.batch < 1 or args.rounds < 1 or args.tracemalloc < 0:
        parser.error("--sessions, --batch and --rounds must be positive")
    figures = _measure(
        _Options(args.sessions, args.batch, args.rounds, args.seed, args.tracemalloc)
    )
    if args.json:
        print(json.dumps(figures))
    else:
        print(_table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
