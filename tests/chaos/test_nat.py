"""Reachability through NATs on real kernels (tests/chaos/nat_lab.py): two
home networks behind nftables masquerade NATs, relays in an "internet"
namespace, every node a real process.

* A behind NAT reaches B behind NAT through a relay: 10,000 messages
  exactly once, in order, and the relay saw the NATs' public addresses.
* A relay dies mid-stream: a session with a direct path goes on, and a
  relayed one recovers through a second relay.
* A reservation flood and a circuit over its byte budget meet the relay's
  limits (counted), and the honest stream still arrives whole.
* Reachability: behind an endpoint-independent NAT the node learns it is
  private and how its NAT maps; behind a symmetric one, that it is
  endpoint-dependent (where hole punching cannot work).

Root, ``ip`` and ``nft`` are needed; otherwise every test skips and says
why (CI sets L2S_REQUIRE_CHAOS=1 and fails instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .chaos_lab import (
    ENV,
    Agent,
    AgentFailed,
    assert_exactly_once_in_order,
    init_home,
    lab_unavailable,
    report,
    wait_received,
)
from .nat_lab import NatLab

_WHY = lab_unavailable()
if _WHY is not None and os.environ.get("L2S_REQUIRE_CHAOS") == "1":
    raise RuntimeError(f"L2S_REQUIRE_CHAOS is set but the chaos lab cannot run: {_WHY}")
pytestmark = pytest.mark.skipif(_WHY is not None, reason=_WHY or "")

MESSAGES = 10_000
PORT = 7000
FLOOD = Path(__file__).with_name("flood_relay.py")


@pytest.fixture
def lab() -> Iterator[NatLab]:
    with NatLab() as made:
        yield made


class Net:
    """Starts agents in the lab's namespaces (each with its own home)."""

    def __init__(self, lab: NatLab, tmp: Path, agents: list[Agent]) -> None:
        self.lab, self.tmp, self.agents = lab, tmp, agents

    def start(self, name: str, where: str, listen: str, *args: str) -> Agent:
        home = self.tmp / name
        init_home(home)
        agent = Agent(home, ["--listen", listen, *args], prefix=self.lab.prefix(where), name=name)
        self.agents.append(agent)
        return agent

    def relay(self, name: str, port: int, *args: str) -> tuple[Agent, str, str]:
        """A relay in the internet: (agent, DID@address, address)."""
        address = f"{self.lab.public}:{port}"
        agent = self.start(name, "inet", address, "--role", "relay", *args)
        did = agent.expect("ready")["did"]
        return agent, f"{did}@{address}", address

    def receiver(self, name: str, where: str, host: str, *args: str) -> tuple[Agent, Path, str]:
        log = self.tmp / f"{name}.log"
        agent = self.start(
            name,
            where,
            f"{host}:{PORT}",
            *("--role", "receiver", "--count", str(MESSAGES), "--log", str(log)),
            *args,
        )
        return agent, log, agent.expect("ready")["did"]

    def sender(
        self, name: str, where: str, host: str, peer: str, to: str, *args: str, port: int = PORT
    ) -> Agent:
        return self.start(
            name,
            where,
            f"{host}:{port}",
            *("--role", "sender", "--count", str(MESSAGES), "--peer", peer),
            *("--peer-address", to),
            *args,
        )


@pytest.fixture
def net(lab: NatLab, tmp_path: Path, agents: list[Agent]) -> Net:
    return Net(lab, tmp_path, agents)


def finish(sender: Agent, receiver: Agent, log: Path) -> None:
    sender.expect("sent", timeout=240)
    assert receiver.expect("received", timeout=120)["count"] == MESSAGES
    assert_exactly_once_in_order(log, MESSAGES)


def test_a_behind_nat_reaches_b_behind_nat_through_a_relay(lab: NatLab, net: Net) -> None:
    relay, via, address = net.relay("relay", 7001)
    a, log, a_did = net.receiver(
        "a", "home_a", lab.host["home_a"], "--reserve-on", via, "--no-punch"
    )
    observed = a.expect("reserved")["observed"][address]
    assert observed.startswith(lab.nat_public["a"] + ":")  # the relay sees A's NAT
    b = net.sender("b", "home_b", lab.host["home_b"], a_did, f"relay://{address}", "--no-punch")
    session = b.expect("session")
    assert session["path"] == "relay"
    finish(b, a, log)
    relay.tell("stop")
    stats: dict[str, Any] = relay.expect("relayed")
    assert stats["circuits_opened"] >= 1
    assert stats["packets_forwarded"] > MESSAGES // 32
    report(
        "A behind NAT to B behind NAT through a relay",
        messages=MESSAGES,
        establish_seconds=session["seconds"],
        relay_packets=stats["packets_forwarded"],
        relay_bytes=stats["bytes_forwarded"],
        result="exactly once, in order; the relay saw only NAT addresses",
    )


def test_a_relay_dies_mid_stream(lab: NatLab, net: Net) -> None:
    first, via1, address1 = net.relay("relay1", 7001)
    _, via2, address2 = net.relay("relay2", 7002)
    # A relayed pair: A reserves on both relays, B has the second as standby.
    a, a_log, a_did = net.receiver(
        "a", "home_a", lab.host["home_a"], "--reserve-on", via1, "--reserve-on", via2, "--no-punch"
    )
    a.expect("reserved")
    b = net.sender(
        "b",
        "home_b",
        lab.host["home_b"],
        a_did,
        f"relay://{address1}",
        *("--standby-relay", address2, "--no-punch"),
    )
    assert b.expect("session")["path"] == "relay"
    # A direct pair: C behind B's NAT talks to a public node D.
    d, d_log, d_did = net.receiver("d", "inet", lab.public)
    c = net.sender("c", "home_b", lab.host["home_b"], d_did, f"{lab.public}:{PORT}", port=7010)
    assert c.expect("session")["path"] == "quic"
    wait_received(a_log, MESSAGES // 4, a, timeout=120)
    wait_received(d_log, MESSAGES // 4, d, timeout=120)
    first.kill9()
    moved = b.expect("route", timeout=90)
    assert moved["address"] == f"{address2}/{a_did}"  # the standby relay
    assert moved["path"] == "relay"
    finish(b, a, a_log)
    finish(c, d, d_log)
    report(
        "relay dies mid-stream",
        messages=MESSAGES,
        result="relayed session recovered through the second relay; direct session unaffected",
    )


def test_relay_limits_hold_and_honest_traffic_goes_on(lab: NatLab, net: Net) -> None:
    budget = 150_000
    relay, via, address = net.relay(
        "relay", 7001, "--relay-max-per-ip", "2", "--relay-max-bytes", str(budget)
    )
    # A flood of reservations from behind B's NAT (one public IP).
    flood = subprocess.run(
        [*lab.prefix("home_b"), sys.executable, str(FLOOD), via, "20"],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert flood.returncode == 0, flood.stderr
    granted, refused = map(int, flood.stdout.split())
    assert (granted, refused) == (2, 18)
    # The honest receiver (another NAT, another IP) still gets its reservation.
    a, log, a_did = net.receiver(
        "a", "home_a", lab.host["home_a"], "--reserve-on", via, "--no-punch"
    )
    a.expect("reserved")
    b = net.sender("b", "home_b", lab.host["home_b"], a_did, f"relay://{address}", "--no-punch")
    finish(b, a, log)  # the circuit ends at its budget, a new one carries on
    relay.tell("stop")
    stats = relay.expect("relayed")
    assert stats["refused"].get("per_ip", 0) >= 18
    assert stats["circuits_ended"].get("bytes", 0) >= 1
    report(
        "relay limits",
        flood_granted=granted,
        flood_refused=refused,
        circuit_byte_budget=budget,
        circuits_ended=stats["circuits_ended"],
        result="limits held and counted; the honest stream exactly once, in order",
    )


@pytest.mark.parametrize("symmetric", [False, True], ids=["endpoint-independent", "symmetric"])
def test_a_node_behind_nat_learns_it_is_private_and_how_its_nat_maps(
    tmp_path: Path, agents: list[Agent], symmetric: bool
) -> None:
    with NatLab(symmetric_a=symmetric) as lab:
        net = Net(lab, tmp_path, agents)
        second = lab.public.rsplit(".", 1)[0] + ".9"
        subprocess.run(
            [*lab.prefix("inet"), "ip", "addr", "add", f"{second}/32", "dev", "lo"], check=True
        )
        for name, host in (("t1", lab.public), ("t2", second)):
            net.start(
                name, "inet", f"{host}:7001", "--role", "relay", "--discovery", f"{host}:7100"
            )
        probe = net.start(
            "probe",
            "home_a",
            f"{lab.host['home_a']}:{PORT}",
            *("--role", "receiver", "--discovery", f"{lab.host['home_a']}:7100"),
            *("--discover-via", f"{lab.public}:7100", "--discover-via", f"{second}:7100"),
        )
        seen = probe.expect("reachability")
        assert seen["status"] == "private"
        assert seen["reflexive"].startswith(lab.nat_public["a"] + ":")
        assert seen["mapping"] == ("endpoint-dependent" if symmetric else "endpoint-independent")
        report("reachability behind NAT", symmetric=symmetric, **seen)
        for agent in agents:
            agent.close()


def test_hole_punching_moves_a_relayed_session_to_a_direct_path(lab: NatLab, net: Net) -> None:
    """Endpoint-independent NATs on both sides: the relayed session upgrades
    to a direct QUIC path between the two NATs' addresses; after that the
    relay forwards nothing more; nothing lost or duplicated."""
    relay, via, address = net.relay("relay", 7001)
    a, log, a_did = net.receiver("a", "home_a", lab.host["home_a"], "--reserve-on", via)
    a.expect("reserved")
    b = net.sender("b", "home_b", lab.host["home_b"], a_did, f"relay://{address}")
    session = b.expect("session")
    assert session["path"] == "relay"
    started = time.monotonic()
    moved = b.expect("route", timeout=60)
    punched = round(time.monotonic() - started, 2)
    assert moved["path"] == "quic"
    assert moved["address"] == f"{lab.nat_public['a']}:{PORT}"  # A's NAT, port kept
    time.sleep(2.0)  # what was in flight on the relay arrives
    relay.tell("stats")
    before = relay.expect("relayed")["packets_forwarded"]
    finish(b, a, log)
    relay.tell("stats")
    after = relay.expect("relayed")["packets_forwarded"]
    assert after == before  # the relay saw no data after the upgrade
    # The punch was timed as DCUtR's: the leader (the lower DID) measured
    # the relayed round trip and fired half of it after its PUNCH_SYNC.
    leader = "a" if a_did < b.expect("ready")["did"] else "b"
    said = (net.tmp / leader / f"{leader}.stderr").read_text()
    assert "relayed round trip" in said
    assert "punching to" in said
    report(
        "hole punching, endpoint-independent NATs",
        messages=MESSAGES,
        seconds_to_direct=punched,
        relay_packets_before_upgrade=before,
        relay_packets_after_upgrade=after - before,
        result="direct QUIC between the NATs; relay kept as backup; exactly once, in order",
    )


def test_hole_punching_fails_cleanly_behind_a_symmetric_nat(
    tmp_path: Path, agents: list[Agent]
) -> None:
    with NatLab(symmetric_b=True) as lab:
        net = Net(lab, tmp_path, agents)
        _, via, address = net.relay("relay", 7001)
        a, log, a_did = net.receiver("a", "home_a", lab.host["home_a"], "--reserve-on", via)
        a.expect("reserved")
        b = net.sender("b", "home_b", lab.host["home_b"], a_did, f"relay://{address}")
        assert b.expect("session")["path"] == "relay"
        finish(b, a, log)
        with pytest.raises(AgentFailed):
            b.expect("route", timeout=1)  # never left the relay
        logs = [tmp_path / "a" / "a.stderr", tmp_path / "b" / "b.stderr"]
        said = ""
        for _ in range(300):  # the punch gives up after its three challenges
            said = "".join(log.read_text() for log in logs)
            if "hole punching to" in said:
                break
            time.sleep(0.1)
        assert "hole punching to" in said
        assert "staying on the relay" in said
        report(
            "hole punching, symmetric NAT",
            messages=MESSAGES,
            result="punch failed and said why; the session stayed relayed; exactly once, in order",
        )
        for agent in agents:
            agent.close()
