"""Is this node reachable from outside, and at which address?

A node behind a NAT or a firewall cannot see that from inside: it has to
ask peers, as libp2p's AutoNAT and STUN do.  With discovery configured, the
node asks each discovery target (at most :data:`MAX_TARGETS`)

* PROBE: at which address do you see me?  (the *reflexive* address of our
  discovery socket: the NAT's public IP and the port it mapped);
* DIAL_BACK: open a brand-new μTCP connection to my IP at my listening
  port -- from a port I never sent to, so a NAT or firewall filter stops it
  unless that port is really reachable -- and tell me if an l2session
  HELLO answered.

From the answers: **public** when any dial-back reached us, **private**
when dial-backs were made and none did, else **unknown**; the NAT's
**mapping** is *endpoint-independent* when two targets at different IPs
saw the same reflexive port, *endpoint-dependent* (a symmetric NAT, where
hole punching cannot work) when they saw different ports, else unknown.
A lying target can make the node believe it is reachable or not; the
result is advice (what to show, whether to hold a relay), never a
security decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from l2session.errors import TransportFailed
from l2session.transports.address import parse_address
from l2session.transports.discovery import DiscoveryEndpoint
from l2session.transports.discovery_wire import DIAL_REACHED, DIAL_UNREACHABLE

#: Discovery targets asked per check.
MAX_TARGETS: Final = 4
PUBLIC: Final = "public"
PRIVATE: Final = "private"
UNKNOWN: Final = "unknown"
ENDPOINT_INDEPENDENT: Final = "endpoint-independent"
ENDPOINT_DEPENDENT: Final = "endpoint-dependent"


@dataclass(frozen=True, slots=True)
class Reachability:
    """What peers told this node about its reachability (see module doc)."""

    status: str = UNKNOWN
    #: Our discovery socket as the first answering target saw it.
    reflexive: str | None = None
    mapping: str = UNKNOWN
    #: Wall-clock seconds of the check (None: never checked).
    checked_at: float | None = None
    #: The targets that answered.
    by: tuple[str, ...] = field(default=())
    reason: str = "not checked (no discovery targets)"

    def as_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "reflexive": self.reflexive,
            "mapping": self.mapping,
            "checked_at": self.checked_at,
            "by": list(self.by),
            "reason": self.reason,
            # The line ``l2session sessions`` prints (None before a check).
            "line": None if self.checked_at is None else self.describe(),
        }

    def describe(self) -> str:
        """One line for ``l2session sessions``."""
        if self.checked_at is None:
            return f"reachability: {self.status} ({self.reason})"
        seen = f", seen as {self.reflexive}" if self.reflexive else ""
        return (
            f"reachability: {self.status}{seen}, NAT mapping {self.mapping} "
            f"(asked {len(self.by)} peer{'s' if len(self.by) != 1 else ''}: {self.reason})"
        )


def mapping_of(observed: dict[str, str]) -> str:
    """The NAT's mapping behaviour from reflexive addresses seen by targets
    (target -> observed): only targets at different IPs count."""
    by_ip: dict[str, int] = {}
    for target, seen in observed.items():
        by_ip.setdefault(parse_address(target)[0], parse_address(seen)[1])
    ports = set(by_ip.values())
    if len(by_ip) < 2:
        return UNKNOWN
    return ENDPOINT_INDEPENDENT if len(ports) == 1 else ENDPOINT_DEPENDENT


async def check(
    discovery: DiscoveryEndpoint,
    targets: list[str],
    port: int,
    now: float,
    timeout: float = 6.0,
) -> Reachability:
    """Ask ``targets`` (see the module doc); ``port`` is where our μTCP
    listens, ``now`` the wall-clock time recorded with the result."""
    observed: dict[str, str] = {}
    reached: list[str] = []
    unreachable: list[str] = []
    for target in targets[:MAX_TARGETS]:
        try:
            observed[target] = await discovery.probe(target, timeout=min(2.0, timeout))
            result = await discovery.dial_back(target, port, timeout=timeout)
        except TransportFailed:
            continue
        if result.status == DIAL_REACHED:
            reached.append(target)
        elif result.status == DIAL_UNREACHABLE:
            unreachable.append(target)
    if reached:
        status, reason = PUBLIC, f"dialled back by {', '.join(reached)}"
    elif unreachable:
        status, reason = PRIVATE, f"no dial-back reached port {port}"
    elif observed:
        status, reason = UNKNOWN, "no dial-back answered"
    else:
        status, reason = UNKNOWN, "no discovery target answered"
    first = next(iter(observed.values()), None)
    return Reachability(
        status=status,
        reflexive=first,
        mapping=mapping_of(observed),
        checked_at=now,
        by=tuple(observed),
        reason=reason,
    )
