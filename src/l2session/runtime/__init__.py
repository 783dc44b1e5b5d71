"""The thin layer that touches the operating system: the asyncio node.

:class:`Node` owns identity, store, transports and the session manager and
feeds the sans-I/O core; :class:`SessionHandle` is one session as the
application sees it.  Also the production clock and randomness.
"""

from l2session.runtime.clock import SystemClock
from l2session.runtime.directory import AddressBook
from l2session.runtime.entropy import SystemRandom
from l2session.runtime.events import NodeEvent, PathChanged
from l2session.runtime.faults import Faults
from l2session.runtime.handle import SessionHandle
from l2session.runtime.limits import NodeLimits
from l2session.runtime.loop import run
from l2session.runtime.node import Node

__all__ = [
    "AddressBook",
    "Faults",
    "Node",
    "NodeEvent",
    "NodeLimits",
    "PathChanged",
    "SessionHandle",
    "SystemClock",
    "SystemRandom",
    "run",
]
