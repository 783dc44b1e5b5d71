"""Several real nodes over the seeded mock network, on virtual time.

Each :class:`SimNode` is a complete sans-I/O node: a real identity and
prekeys, a :class:`~l2session.core.management.context.Context` with every capability,
and a :class:`~l2session.core.management.manager.SessionManager`.  :class:`Simulation`
plays the runtime's part for all of them at once: it carries packets
between managers and the :class:`MockNetwork`, and advances one
:class:`ManualClock` from event to event (the next arrival or the next
timer), so minutes of protocol time pass in milliseconds and every run with
the same seed is identical.

A node is reachable at its name unless told otherwise: :meth:`Simulation.bind`
gives it more addresses (another interface), :meth:`Simulation.rebind` moves
where it sends from (a new network, a NAT rebinding) and
:meth:`Simulation.unbind` takes an address away -- what migration and
multipath tests need.

Every loop here is bounded by a step count, so a protocol bug shows up as a
clear error, not a hung test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from l2session.core.config import SessionConfig
from l2session.core.events import SessionEvent
from l2session.core.lifecycle.persistence import Journal
from l2session.core.link.session import Session
from l2session.core.management.context import BundleLookup, Context, LocalKeys, StaticDirectory
from l2session.core.management.manager import SessionManager
from l2session.core.states import State
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.primitives import Encapsulator
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError
from l2session.identity.prekeys import PrekeyStore
from l2session.identity.resolver import DidResolver, default_resolver
from l2session.testing.clock import ManualClock
from l2session.testing.network import LinkProfile, MockNetwork
from l2session.testing.parties import Party

#: The default start of virtual time (2027-01-15T08:00:00Z).
START: float = 1_800_000_000.0


@dataclass(slots=True)
class SimNode:
    name: str
    party: Party
    ctx: Context
    manager: SessionManager
    events: list[SessionEvent] = field(default_factory=list)
    config: SessionConfig | None = None
    restarts: int = 0
    #: Where this node sends from (its name unless rebound).
    address: str = ""

    @property
    def did(self) -> str:
        return self.party.did

    def session(self, peer: SimNode | str) -> Session | None:
        did = peer.did if isinstance(peer, SimNode) else peer
        return self.manager.session(did)


class Simulation:
    """Nodes, a mock network and a manual clock, stepped together."""

    def __init__(
        self,
        seed: str = "simulation",
        *,
        profile: LinkProfile | None = None,
        start: float = START,
        resolver: DidResolver | None = None,
        report_connectivity: bool = False,
    ) -> None:
        self.seed = seed
        self.clock = ManualClock(start)
        self.network = MockNetwork(seed, profile)
        self.resolver = resolver or default_resolver()
        self.nodes: dict[str, SimNode] = {}
        self._addresses: dict[str, str] = {}
        self.directory = StaticDirectory(self._addresses)
        self.report_connectivity = report_connectivity
        self._reported: dict[tuple[str, str, str], bool] = {}
        #: Which node receives at each address.
        self._bound: dict[str, str] = {}
        #: Datagrams that arrived at an address no node is bound to.
        self.undeliverable = 0

    @property
    def now(self) -> float:
        return self.clock.now()

    def add_node(
        self,
        name: str,
        *,
        config: SessionConfig | None = None,
        party: Party | None = None,
        encapsulator: Encapsulator | None = None,
        connect: bool = True,
        store: Journal | None = None,
        bundles: BundleLookup | None = None,
    ) -> SimNode:
        """A node; with ``store`` its persistent sessions are durable (its
        prekeys are committed to the store at once) and it can be
        :meth:`restart`-ed.  ``bundles`` gives the node prekey bundles of
        its peers without asking them (``Context.bundles``)."""
        if name in self.nodes or name in self._bound:
            raise ConfigError(f"node {name!r} exists")
        rng = SeededRandom(f"{self.seed}/{name}")
        party = party or Party.create(rng.fork("party"), now=self.now)
        skew = (config or SessionConfig()).handshake_max_skew
        if party.guard.max_skew != skew:
            # The node's INIT freshness window comes from its config, as in
            # the runtime's Node.
            party = Party(party.identity, party.prekeys, HandshakeReplayGuard(max_skew=skew))
        if store is not None:
            store.put_prekeys(party.prekeys.to_bytes())
            store.commit()
            store.sync()
        keys = LocalKeys(party.identity, party.prekeys, party.guard, encapsulator)
        ctx = Context(
            rng=rng.fork("session"),
            time=self.clock,
            did_resolve=self.resolver,
            crypto_pqxdh=keys,
            net_connect=self.directory if connect else None,
            bundles=bundles,
            store=store,
        )
        manager = SessionManager(ctx, config=config)
        node = SimNode(name, party, ctx, manager, config=config, address=name)
        self.nodes[name] = node
        self._addresses[party.did] = name
        self._bound[name] = name
        return node

    # ------------------------------------------------------------------
    # addresses

    def bind(self, name: str, address: str) -> None:
        """Node ``name`` also receives at ``address`` (another interface)."""
        if name not in self.nodes:
            raise ConfigError(f"no node {name!r}")
        owner = self._bound.get(address)
        if owner is not None and owner != name:
            raise ConfigError(f"address {address!r} belongs to node {owner!r}")
        self._bound[address] = name

    def unbind(self, address: str) -> None:
        """Nobody receives at ``address`` any more (what is sent there is
        lost).  A node that still sends from it keeps doing so until it is
        :meth:`rebind`-ed."""
        self._bound.pop(address, None)

    def rebind(
        self, name: str, address: str, *, keep_old: bool = False, announce: bool = True
    ) -> None:
        """Node ``name`` sends from ``address`` from now on, and receives
        there.  Its old address is unbound unless ``keep_old``.  The
        directory learns the new address.  With ``announce`` the node is
        told (``SessionManager.local_address_changed``, as a runtime would
        on an interface change); without, it does not know (a NAT
        rebinding), and only its peers see packets come from elsewhere."""
        node = self.nodes[name]
        old = node.address
        self.bind(name, address)
        if not keep_old and old != address:
            self.unbind(old)
        node.address = address
        self._addresses[node.did] = address
        if announce:
            node.manager.local_address_changed(address)

    def restart(self, name: str, store: Journal) -> SimNode:
        """Kill node ``name`` and start it again from ``store``.

        The old node's objects are dropped without any goodbye: its outbox,
        its timers and every uncommitted write are gone (pass the store
        after its ``crash()``, or a fresh handle on the same file).  The new
        node has the same identity and address, its private prekeys as
        stored, its replay guard as stored, fresh randomness, and resumes its
        sessions with :meth:`SessionManager.restore`."""
        old = self.nodes[name]  # dropped: its outbox and timers die with it
        snapshot = store.load()
        identity = old.party.identity
        prekeys = (
            PrekeyStore.from_bytes(snapshot.prekeys, identity)
            if snapshot.prekeys is not None
            else old.party.prekeys
        )
        party = Party(identity, prekeys, type(old.party.guard)(max_skew=old.party.guard.max_skew))
        party.guard.restore(snapshot.handshake_guard, self.now)
        restarts = old.restarts + 1
        rng = SeededRandom(f"{self.seed}/{name}/restart-{restarts}")
        keys = LocalKeys(identity, prekeys, party.guard, old.ctx.keys.encapsulator)
        ctx = Context(
            rng=rng,
            time=self.clock,
            did_resolve=self.resolver,
            crypto_pqxdh=keys,
            net_connect=old.ctx.net_connect,
            store=store,
        )
        manager = SessionManager(ctx, config=old.config)
        node = SimNode(
            name, party, ctx, manager, config=old.config, restarts=restarts, address=old.address
        )
        self.nodes[name] = node
        manager.restore()
        return node

    # ------------------------------------------------------------------

    def pump(self) -> int:
        """Move every packet waiting in an outbox onto the network and
        every due arrival into its node; returns how many were handled."""
        now = self.now
        moved = self._flush_outboxes(now)
        for datagram in self.network.deliver_due(now):
            name = self._bound.get(datagram.destination)
            node = self.nodes.get(name) if name is not None else None
            if node is None:
                self.undeliverable += 1
                continue
            node.manager.receive_datagram(datagram.data, datagram.source, datagram.path)
            moved += 1
        if self.report_connectivity:
            # Before the flush below: what a report makes a node send (a
            # resend on the fallback path, a probe of a restored path) goes
            # out now, as a runtime would send it, not at the next event.
            self._report()
        for node in self.nodes.values():
            node.manager.tick()
            node.events.extend(node.manager.events())
        moved += self._flush_outboxes(now)
        return moved

    def _flush_outboxes(self, now: float) -> int:
        moved = 0
        for node in self.nodes.values():
            for out in node.manager.datagrams_to_send():
                self.network.send(node.address, out.address, out.path, out.data, now)
                moved += 1
        return moved

    def _report(self) -> None:
        """Tell each node when a route to a session peer breaks or heals,
        as a real transport would (connection errors, timeouts)."""
        for node in self.nodes.values():
            for session in list(node.manager.sessions.values()):
                if session.address is None:
                    continue
                extra = session.routes.extra if session.routes is not None else []
                addresses = dict.fromkeys([session.address, *(r[0] for r in extra)])
                for address in addresses:
                    for path in node.manager.paths:
                        up = address in self._bound and self.network.reachable(
                            node.address, address, path
                        )
                        key = (node.name, address, path)
                        if self._reported.get(key, True) != up:
                            self._reported[key] = up
                            node.manager.connectivity(address, path, up)

    def next_event(self) -> float | None:
        times = [t for t in (self.network.next_arrival(),) if t is not None]
        for node in self.nodes.values():
            timer = node.manager.get_timer()
            if timer is not None:
                times.append(timer)
        return min(times) if times else None

    def run_for(self, seconds: float, *, max_steps: int = 1_000_000) -> None:
        """Advance ``seconds`` of virtual time, handling every event."""
        self.run_until(lambda: False, timeout=seconds, max_steps=max_steps, strict=False)

    def run_until(
        self,
        condition: Callable[[], bool],
        *,
        timeout: float,
        max_steps: int = 1_000_000,
        strict: bool = True,
    ) -> float:
        """Run until ``condition()`` holds; returns the virtual time it took.
        Raises TimeoutError after ``timeout`` virtual seconds (if
        ``strict``) and RuntimeError after ``max_steps`` steps."""
        start = self.now
        end = start + timeout
        for _ in range(max_steps):
            self.pump()
            if condition():
                return self.now - start
            upcoming = self.next_event()
            if upcoming is None or upcoming > end:
                self.clock.set(max(self.now, end))
                self.pump()
                if condition():
                    return self.now - start
                if strict:
                    raise TimeoutError(f"condition not met within {timeout} s of virtual time")
                return self.now - start
            if upcoming > self.now:
                self.clock.set(upcoming)
        raise RuntimeError(f"simulation did not settle within {max_steps} steps")


def connected_pair(
    seed: str = "pair",
    *,
    profile: LinkProfile | None = None,
    config: SessionConfig | None = None,
) -> tuple[Simulation, SimNode, SimNode]:
    """Alice and Bob with an established session (Alice initiated)."""
    sim = Simulation(seed, profile=profile)
    alice = sim.add_node("alice", config=config)
    bob = sim.add_node("bob", config=config)
    alice.manager.establish(bob.did)
    sim.run_until(lambda: both_established(alice, bob), timeout=60)
    return sim, alice, bob


def both_established(a: SimNode, b: SimNode) -> bool:
    """Whether ``a`` and ``b`` each hold an established session with the
    other: the condition most tests run a simulation until."""
    mine, theirs = a.session(b), b.session(a)
    return (
        mine is not None
        and theirs is not None
        and mine.state is State.ESTABLISHED
        and theirs.state is State.ESTABLISHED
    )
