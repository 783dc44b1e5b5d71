"""``make demo``: three real nodes on loopback, every state change live.

Alice, Bob and Carol are full nodes (QUIC and μTCP sockets on 127.0.0.1,
SQLite stores in a temporary directory, timers shortened so the whole
story takes about half a minute).  The acts:

1. PQXDH establishment over QUIC, and messages both ways.
2. A key rotation (a fresh PQXDH inside the session; the epoch goes up).
3. A partition Alice | Bob (dropped at both nodes' edges): degraded ->
   suspended -> recovered, and the messages queued meanwhile delivered.
4. UDP blocked between Alice and Carol: QUIC times out, the session falls
   back to μTCP without the application noticing; QUIC returns later.
5. Carol's node restarts: it resumes from its store (resumption, no KEM).
6. Mallory relays Carol's handshake to Bob but cannot sign as Bob:
   authentication_failed, and Carol quarantines that address.
7. Bob's Membrane: his policy refuses Alice's payment request (trust),
   allows it once Bob trusts her, then refuses one over the quota; every
   decision is in Bob's hash-chained audit log.
8. Federation (cli/nostrdemo.py): Dave's node and a plain Nostr client
   exchange NIP-17 messages through a local relay (with the nostr extra).

Faults 3 and 4 are injected in-process (:mod:`l2session.runtime.faults`,
the QUIC transport's ``drop_filter``); kernel-level chaos is issue 7's.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from l2session.cli import nostrdemo
from l2session.core.config import ReconnectionPolicy, SessionConfig
from l2session.core.events import StateChanged
from l2session.core.link.envelope import Request
from l2session.core.states import State
from l2session.crypto.handshake_messages import TYPE_RESPONSE, HandshakeResponse
from l2session.errors import AuthenticationFailed, L2SessionError, PeerQuarantined
from l2session.identity.identity import Identity
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.events import NodeEvent, PathChanged
from l2session.runtime.handle import SessionHandle
from l2session.runtime.loop import run
from l2session.runtime.node import Node
from l2session.store.sqlite import SqliteStore
from l2session.transports.base import Transport, TransportStats
from l2session.transports.quic import QuicTransport
from l2session.transports.tcp import TcpTransport
from l2session.wire.packets import HandshakePacket, decode_packet, encode_packet

#: Timers shortened for the demo (production defaults: heartbeats every
#: 30 s, rotation after 23 h, suspension after 60 s).
DEMO_CONFIG = SessionConfig(
    ttl=60.0,
    rotation_window=52.0,
    heartbeat_interval=0.5,
    heartbeat_timeout=0.25,
    heartbeat_tolerance=3,
    connectivity_timeout=1.0,
    degraded_timeout=2.0,
    recovery_interval=1.0,
    quarantine=60.0,
    rotation_timeout=5.0,
    reconnect=ReconnectionPolicy(initial_delay=0.5, max_delay=2.0),
)

Write = Callable[[str], None]


class Demo:
    def __init__(self, home: Path, write: Write) -> None:
        self.home = home
        self.write = write
        self.start = time.monotonic()
        self.names: dict[str, str] = {}

    def say(self, text: str) -> None:
        self.write(f"[{time.monotonic() - self.start:6.2f}s] {text}")

    def act(self, title: str) -> None:
        self.write("")
        self.write(f"== {title}")

    def watch(self, node: Node, name: str) -> None:
        def show(event: NodeEvent) -> None:
            if isinstance(event, StateChanged):
                r = event.record
                peer = self.names.get(event.peer_did, event.peer_did[:20])
                target = r.target.value if r.target else "removed"
                self.say(f"{name}->{peer}: {r.source.value} -> {target}  ({r.reason})")
            elif isinstance(event, PathChanged):
                peer = self.names.get(event.address, event.address)
                state = "up" if event.up else f"down ({event.reason})"
                self.say(f"{name}: {event.path} path to {peer} {state}")

        node.add_listener(show)

    def node(self, name: str, identity: Identity | None = None, policy: Path | None = None) -> Node:
        path = self.home / f"{name}.db"
        if identity is not None:
            with SqliteStore.open(path) as store:
                store.save_identity(identity)
        node = Node(
            store=path,
            config=DEMO_CONFIG,
            connect_timeout=1.0,
            quic_idle_timeout=1.5,
            quic_probe_interval=1.0,
            policy=policy,
        )
        self.watch(node, name)
        return node

    async def wait(self, what: str, ready: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise L2SessionError(f"demo: timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def settle(
        self, what: str, *handles: SessionHandle, epoch_above: int = -1, timeout: float = 20.0
    ) -> None:
        """Wait until every one of ``handles`` is established with no
        rotation in flight (and a key epoch above ``epoch_above``): the
        point at which an act may inject its fault.  A rotation runs in the
        background every few seconds with the demo's timers; a fault
        injected mid-rotation makes it time out instead of showing the act."""

        def settled(handle: SessionHandle) -> bool:
            return (
                handle.state is State.ESTABLISHED
                and handle.session.rotation is None
                and (handle.key_epoch or 0) > epoch_above
            )

        await self.wait(what, lambda: all(settled(h) for h in handles), timeout)

    async def run(self) -> None:
        rng = SystemRandom()
        ids = {name: Identity.generate(rng) for name in ("alice", "bob", "carol")}
        policy = self.home / "bob-policy.toml"
        policy.write_text(BOB_POLICY)
        alice = self.node("alice", ids["alice"])
        bob = self.node("bob", ids["bob"], policy)
        carol = self.node("carol", ids["carol"])
        async with alice, bob, carol:
            for name, node in (("alice", alice), ("bob", bob), ("carol", carol)):
                self.names[node.did] = name
                self.names[node.address] = name
                self.say(f"{name} is {node.did} at {node.address}")
            await self.act_establish(alice, bob, carol)
            await self.act_rotation(alice, bob)
            await self.act_partition(alice, bob)
            await self.act_fallback(alice, carol)
            carol = await self.act_restart(alice, carol)
            try:
                await self.act_impostor(carol, bob)
            finally:
                await carol.stop()
            # Alice notices carol leave before the next act's lines start.
            quic = alice.transports.get("quic")
            if quic is not None:
                await self.wait(
                    "alice to see carol leave",
                    lambda: not quic.is_connected(carol.address),
                    timeout=15,
                )
                await asyncio.sleep(0.05)
            # Carol is gone for good: without this, alice would keep trying
            # to reach her (and bob would time out mallory's handshake)
            # while act 7 tells its story.
            for node in (alice, bob):
                leftover = node.session(carol.did)
                if leftover is not None:
                    await leftover.close("carol left the demo")
            await self.act_membrane(alice, bob)
        await nostrdemo.act(self.home, self.act, self.say)

    async def act_establish(self, alice: Node, bob: Node, carol: Node) -> None:
        self.act("1. PQXDH (X25519 + ML-KEM-768) over QUIC, then messages")
        ab = await alice.establish(bob.did, bob.address)
        incoming = await bob.accept(timeout=10)
        self.say(f"alice<->bob established over {ab.path}, key epoch {ab.key_epoch}")
        ab.send_nowait(b"hello Bob, this is Alice")
        self.say(f"bob reads: {(await incoming.receive(timeout=10)).decode()!r}")
        incoming.send_nowait(b"hi Alice")
        self.say(f"alice reads: {(await ab.receive(timeout=10)).decode()!r}")
        await carol.establish(alice.did, alice.address)  # Carol keeps the ticket
        await alice.accept(timeout=10)

    async def act_rotation(self, alice: Node, bob: Node) -> None:
        self.act("2. Key rotation: a fresh PQXDH inside the session (ttl 60 s, window 52 s)")
        ab, ba = alice.session(bob.did), bob.session(alice.did)
        assert ab is not None
        assert ba is not None
        assert ab.key_epoch is not None
        epoch = ab.key_epoch

        # Alice's epoch rises before either side reports ``rotating ->
        # established``; partitioning them then (act 3) would cut the
        # rotation in half.  Wait for the real end, on both sides.
        await self.settle("a rotation on both sides", ab, ba, epoch_above=epoch, timeout=30)
        self.say(f"key epoch {epoch} -> {ab.key_epoch}; no message lost on the way")

    async def act_partition(self, alice: Node, bob: Node) -> None:
        self.act("3. Partition alice | bob: degraded -> suspended -> recovered")
        ab = alice.session(bob.did)
        ba = bob.session(alice.did)
        assert ab is not None
        assert ba is not None
        await self.settle("alice<->bob to be quiet", ab, ba)
        alice.faults.block(bob.address)
        bob.faults.block(alice.address)
        await ab.wait_state(State.SUSPENDED, timeout=30)
        for i in range(3):
            ab.send_nowait(f"written during the partition #{i + 1}".encode())
        self.say(f"alice queued {ab.queued} message(s) while suspended; healing the partition")
        alice.faults.clear()
        bob.faults.clear()
        await ab.wait_state(State.ESTABLISHED, timeout=30)
        for _ in range(3):
            self.say(f"bob reads: {(await ba.receive(timeout=15)).decode()!r}")

    async def act_fallback(self, alice: Node, carol: Node) -> None:
        self.act("4. UDP blocked alice | carol: QUIC fails, μTCP carries the session")
        ac = alice.session(carol.did)
        ca = carol.session(alice.did)
        assert ac is not None
        assert ca is not None
        await self.settle("alice<->carol to be quiet", ac, ca)
        aq, cq = alice.transports["quic"], carol.transports["quic"]
        assert isinstance(aq, QuicTransport)
        assert isinstance(cq, QuicTransport)
        aq.drop_filter = lambda address: address == carol.address
        cq.drop_filter = lambda address: address == alice.address
        await self.wait("the fallback to tcp", lambda: ac.path == "tcp")
        ac.send_nowait(b"sent while UDP is blocked")
        self.say(f"carol reads over {ca.path}: {(await ca.receive(timeout=10)).decode()!r}")
        aq.drop_filter = None
        cq.drop_filter = None
        self.say("UDP unblocked; QUIC is probed again")
        await self.wait("QUIC again", lambda: ac.path == "quic")
        self.say("alice->carol back on quic")

    async def act_restart(self, alice: Node, carol: Node) -> Node:
        self.act("5. Carol's node restarts: resumption from its SQLite store")
        ac = alice.session(carol.did)
        assert ac is not None
        await carol.stop()
        self.say("carol stopped")
        ac.send_nowait(b"sent while Carol was down")
        carol = self.node("carol")
        await carol.start()
        self.names[carol.address] = "carol"
        ca = carol.session(alice.did)
        assert ca is not None
        await ca.wait_state(State.ESTABLISHED, timeout=20)
        how = "resumption" if any("resum" in r.reason for r in ca.history) else "handshake"
        self.say(f"carol restored the session by {how}")
        self.say(f"carol reads: {(await ca.receive(timeout=15)).decode()!r}")
        return carol

    async def act_impostor(self, carol: Node, bob: Node) -> None:
        self.act("6. Mallory relays to Bob but signs the answer herself")
        mallory = Relay(bob.address, Identity.generate(SystemRandom()))
        await mallory.start()
        self.names[mallory.address] = "mallory"
        self.say(f"carol is told bob is at {mallory.address} (mallory's relay)")
        try:
            await carol.establish(bob.did, mallory.address, timeout=15)
        except AuthenticationFailed as error:
            self.say(f"carol refused it: {error}")
        try:
            await carol.establish(bob.did, mallory.address, timeout=5)
        except PeerQuarantined as error:
            self.say(f"and refuses again at once: {error}")
        finally:
            await mallory.close()
        # Bob answered Carol's relayed INIT; his half of it times out too.
        half_open = bob.session(carol.did)
        if half_open is not None:
            await self.wait(
                "bob's half-open handshake to end",
                lambda: half_open.state is not State.HANDSHAKE_RECEIVED,
                timeout=30,
            )

    async def act_membrane(self, alice: Node, bob: Node) -> None:
        self.act("7. Bob's Membrane screens Alice's capability requests")
        ab, ba = alice.session(bob.did), bob.session(alice.did)
        assert ab is not None
        assert ba is not None
        assert bob.membrane is not None
        pay = Request("call", "service://payment", 6)

        async def ask(text: str) -> None:
            seq = await ab.send(text.encode(), request=pay)
            await ab.acknowledged(seq, timeout=10)
            await self.wait("the verdict", lambda: ab.denial(seq) is not None or ba.available > 0)
            if ab.denial(seq) is not None:
                self.say(f"alice asks {pay}: refused: {ab.denial(seq)}")
            else:
                (got,) = await ba.receive_deliveries(timeout=5)
                self.say(f"alice asks {got.request}: bob's application gets {got.payload!r}")

        await ask("pay 6")
        bob.trust(alice.did, 0.8)
        score = bob.membrane.trust.score(alice.did, bob.clock.now())
        self.say(f"bob signs a trust edge to alice (0.8): her QVL score is {score:.2f}")
        await ask("pay 6")
        await ask("pay 6 again")
        assert bob.store is not None
        bob.store.commit()
        report = bob.store.verify_audit()
        access = [e for e in bob.store.audit_log() if e.kind == "access"]
        self.say(
            f"bob's audit log: {report.count} entries ({len(access)} access decisions), "
            f"hash chain {'intact' if report.ok else 'BROKEN'}, head {report.head.hex()[:16]}…"
        )


#: Bob's policy in act 7: payments for peers he trusts, within a quota.
BOB_POLICY = """version = 1
[[grant]]
id = "payments"
peers = ["*"]
resource = "service://payment"
actions = ["call"]
min_trust = 0.7
quota = { units = 10, window = "1h" }
"""


class Relay:
    """Mallory: forwards every packet between a victim and Bob on the same
    path, replacing the signature in Bob's handshake RESPONSE with her own."""

    def __init__(self, target: str, identity: Identity) -> None:
        self.target = target
        self.identity = identity
        self.front: dict[str, Transport] = {"quic": QuicTransport(), "tcp": TcpTransport()}
        self.victim: str | None = None
        self.port = 0
        self.stats = TransportStats()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        port = 0
        for path, transport in self.front.items():
            port = await transport.start(_RelayListener(self, path), "127.0.0.1", port)
        self.port = port

    def forward(self, data: bytes, source: str, path: str) -> None:
        if source == self.target:
            if self.victim is not None:
                self.front[path].send(self.victim, self.forge(data))
            return
        self.victim = source
        self.front[path].send(self.target, data)

    def forge(self, data: bytes) -> bytes:
        try:
            packet = decode_packet(data)
        except L2SessionError:
            return data
        if not isinstance(packet, HandshakePacket) or packet.message[1:2] != bytes([TYPE_RESPONSE]):
            return data
        response = HandshakeResponse.decode(packet.message)
        signature = self.identity.signing.private.sign(response.body())
        forged = replace(response, signature=signature)
        return encode_packet(HandshakePacket(packet.session_id, forged.encode()))

    async def close(self) -> None:
        for transport in self.front.values():
            await transport.close()


class _RelayListener:
    def __init__(self, relay: Relay, path: str) -> None:
        self.relay = relay
        self.path = path

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        self.relay.forward(data, address, path)

    def path_up(self, address: str, path: str) -> None:
        pass

    def path_down(self, address: str, path: str, reason: str) -> None:
        pass


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(*, write: Write | None = None) -> int:
    out: Write = write or _print
    # The demo prints every state change itself; the library's own warnings
    # (missed heartbeats, quarantine) would repeat them out of order.
    for name in ("l2session", "quic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="l2session-demo-") as home:
        demo = Demo(Path(home), out)
        try:
            run(demo.run())
        except L2SessionError as error:
            out(f"demo failed: {error}")
            return 1
    out("")
    out("demo complete: every act behaved as described")
    return 0
