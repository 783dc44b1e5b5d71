"""Reachability detection (runtime/reachability.py) on loopback: a node
asks its discovery targets where they see it and to dial it back on a new
connection; the verdict and its reasons are kept and shown by the CLI."""

from __future__ import annotations

import pytest

from l2session.cli.netdemo import DEMO_CONFIG
from l2session.errors import ConfigError, InvalidState
from l2session.runtime.node import Node
from l2session.runtime.reachability import (
    ENDPOINT_DEPENDENT,
    ENDPOINT_INDEPENDENT,
    PRIVATE,
    PUBLIC,
    UNKNOWN,
    Reachability,
    mapping_of,
)

from .support import run, until


def test_a_node_learns_it_is_reachable_from_a_dial_back() -> None:
    async def scenario() -> None:
        async with Node(config=DEMO_CONFIG, discovery="127.0.0.1:0") as b:
            assert b.discovery is not None
            target = b.discovery.address
            async with Node(
                config=DEMO_CONFIG, discovery="127.0.0.1:0", discovery_targets=[target]
            ) as a:
                assert a.discovery is not None
                # Checked in the background at start.
                await until(lambda: a.reachability.checked_at is not None, "the check")
                seen = a.reachability
                assert seen.status == PUBLIC
                assert seen.reflexive == a.discovery.address
                assert seen.by == (target,)
                assert seen.mapping == UNKNOWN  # one target cannot tell
                assert "dialled back by" in seen.reason
                assert b.discovery.stats.dialled_reached == 1
                assert seen.describe().startswith("reachability: public, seen as 127.0.0.1:")

    run(scenario(), 60)


def test_a_node_whose_port_nobody_reaches_is_private() -> None:
    async def scenario() -> None:
        async with Node(config=DEMO_CONFIG, discovery="127.0.0.1:0") as b:
            assert b.discovery is not None
            # QUIC only: nothing accepts μTCP at this node's port.
            async with Node(config=DEMO_CONFIG, paths=("quic",), discovery="127.0.0.1:0") as a:
                seen = await a.check_reachability([b.discovery.address])
                assert seen.status == PRIVATE
                assert a.reachability is seen
                assert f"port {a.port}" in seen.reason

    run(scenario(), 60)


def test_with_no_answer_reachability_stays_unknown() -> None:
    async def scenario() -> None:
        async with Node(config=DEMO_CONFIG, discovery="127.0.0.1:0") as a:
            seen = await a.check_reachability(["127.0.0.1:9"])  # nobody answers there
            assert seen.status == UNKNOWN
            assert seen.reason == "no discovery target answered"
        async with Node(config=DEMO_CONFIG) as plain:
            assert plain.reachability == Reachability()
            with pytest.raises(InvalidState, match="no discovery endpoint"):
                await plain.check_reachability(["127.0.0.1:9"])
        async with Node(config=DEMO_CONFIG, discovery="127.0.0.1:0") as lonely:
            with pytest.raises(ConfigError, match="no discovery targets"):
                await lonely.check_reachability()

    run(scenario(), 60)


def test_the_nat_mapping_is_read_from_reflexive_ports_at_different_ips() -> None:
    same = {"192.0.2.1:7": "203.0.113.9:4000", "198.51.100.1:7": "203.0.113.9:4000"}
    assert mapping_of(same) == ENDPOINT_INDEPENDENT
    differ = {"192.0.2.1:7": "203.0.113.9:4000", "198.51.100.1:7": "203.0.113.9:4001"}
    assert mapping_of(differ) == ENDPOINT_DEPENDENT
    one_ip = {"192.0.2.1:7": "203.0.113.9:4000", "192.0.2.1:8": "203.0.113.9:4001"}
    assert mapping_of(one_ip) == UNKNOWN
    assert mapping_of({}) == UNKNOWN
