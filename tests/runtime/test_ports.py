"""The Node satisfies every port the runtime's parts use.

mypy --strict checks this where the parts are built, and these
assignments make it check each port even if no call site used it; the
test checks at run time that every member a port names exists on the Node
class (a port may not grow a member the node lacks, nor the node lose one
a port relies on, without a failure here).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from l2session.runtime.establishing import EstablishHost
from l2session.runtime.events import BridgeHost
from l2session.runtime.federation import FederationHost
from l2session.runtime.handle import HandleHost
from l2session.runtime.node import Node
from l2session.runtime.node_ops import OpsHost
from l2session.runtime.paths import PathHost
from l2session.runtime.pump import PumpHost
from l2session.runtime.relaying import RelayHost
from l2session.runtime.stall import StallHost

PORTS: tuple[type[Any], ...] = (
    BridgeHost,
    PathHost,
    StallHost,
    HandleHost,
    PumpHost,
    EstablishHost,
    RelayHost,
    FederationHost,
    OpsHost,
)


def _static_check(node: Node) -> None:
    """Never called: mypy checks that a Node is each port."""
    bridge: BridgeHost = node
    path: PathHost = node
    stall: StallHost = node
    handle: HandleHost = node
    pump: PumpHost = node
    establish: EstablishHost = node
    relay: RelayHost = node
    federation: FederationHost = node
    ops: OpsHost = node
    del bridge, path, stall, handle, pump, establish, relay, federation, ops


def members(port: type[Any]) -> set[str]:
    """The names a Protocol declares, its bases' included."""
    names: set[str] = set()
    for klass in port.__mro__:
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        if klass.__module__ == "typing":
            continue
        names.update(getattr(klass, "__annotations__", {}))
        names.update(n for n in vars(klass) if not n.startswith("_"))
    return names


@pytest.mark.parametrize("port", PORTS, ids=lambda p: p.__name__)
def test_the_node_has_every_member_of_the_port(port: type[Any]) -> None:
    names = members(port)
    assert names, f"{port.__name__} names nothing"
    node = Node()
    missing = []
    for name in sorted(names):
        try:
            inspect.getattr_static(node, name)
        except AttributeError:
            missing.append(name)
    assert not missing, f"Node lacks {port.__name__}'s {missing}"
