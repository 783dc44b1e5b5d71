"""Two peers that both moved while down find each other again (issue 21,
bug 2) whichever of them has the lower DID.

Crossing attempts are settled by DID order: the side with the lower DID
ignores the peer's attempt and waits for its own to be answered.  That is
only sound when both attempts travel between the same two addresses.  When
the operator told one side the other's new address (``peer set``,
``--peer``) but not the reverse, the lower side's own attempt goes to the
peer's *old* address, where nobody listens: yielding then deadlocked the
two until the CLI test's timeout, in about half the runs (the DIDs are
random).  An attempt from another address than the one ours goes to is
answered instead.
"""

from __future__ import annotations

import pytest

from l2session.core.states import State
from l2session.store.memory import MemoryStore
from l2session.testing.simulation import SimNode, Simulation


@pytest.mark.parametrize("told", ["lower", "higher"])
def test_peers_that_both_moved_resume_whichever_side_was_told(told: str) -> None:
    sim = Simulation(f"both-moved-{told}")
    stores = {"alice": MemoryStore(), "bob": MemoryStore()}
    alice = sim.add_node("alice", store=stores["alice"])
    bob = sim.add_node("bob", store=stores["bob"])
    # The lower DID opened the session, so it resumes by itself at restart
    # (toward the address it remembers); the other side starts only when
    # told the new address.
    low, high = sorted((alice, bob), key=lambda n: n.did)
    opened = low.manager.establish(high.did)
    opened.send(b"before")
    sim.run_until(lambda: (s := high.session(low)) is not None and s.available == 1, timeout=10)
    for store in stores.values():
        store.commit()
    # Both come back at new addresses; only one of them is told where the
    # other is now (the other's session remembers the old address).
    sim.rebind(low.name, "low-new", announce=False)
    sim.rebind(high.name, "high-new", announce=False)
    nodes: dict[str, SimNode] = {
        name: sim.restart(name, stores[name]) for name in (low.name, high.name)
    }
    low, high = nodes[low.name], nodes[high.name]
    if told == "higher":
        assert high.manager.redirect(low.did, "low-new")
    else:
        assert low.manager.redirect(high.did, "high-new")
    sim.run_until(
        lambda: all(
            (s := n.session(p)) is not None and s.state is State.ESTABLISHED
            for n, p in ((low, high), (high, low))
        ),
        # One round trip, not a handshake timeout and a retry: the told
        # side's attempt is answered at once.
        timeout=2,
    )
