"""The sans-I/O session core (SPEC-018 §3-§5): time is passed in as ``now``.

The layout (docs/ARCHITECTURE.md has the map):

* top level -- the small shared modules: :mod:`~l2session.core.states` (the
  one state table), :mod:`~l2session.core.diagram` (docs/STATES.md from it),
  :mod:`~l2session.core.config`, :mod:`~l2session.core.clock`,
  :mod:`~l2session.core.events`, :mod:`~l2session.core.api`
* :mod:`l2session.core.link` -- one session and its data path (session,
  channel, delivery, envelope, keyschedule)
* :mod:`l2session.core.lifecycle` -- the behaviours over a session, each
  behind its own port (establishment, early, liveness, resumption, rotation,
  rotating, screening, persistence)
* :mod:`l2session.core.paths` -- migration, multipath, race
* :mod:`l2session.core.management` -- the manager with admission, context
  and federated sessions

Old module paths (``l2session.core.session``, ``l2session.core.manager``, ...)
keep working through :data:`MOVED_MODULES`, installed below.
"""

import importlib
import sys
from collections.abc import Mapping
from typing import Final

from l2session.core.api import accept, establish, resume, tick
from l2session.core.clock import TimeSource
from l2session.core.config import ReconnectionPolicy, SessionConfig, SessionKind
from l2session.core.diagram import mermaid_state_diagram, states_markdown
from l2session.core.events import (
    MessagesAvailable,
    PacketRejected,
    PathMigrated,
    PathValidated,
    SessionAccepted,
    SessionClosedEvent,
    SessionEvent,
    StateChanged,
)
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.session import Session
from l2session.core.management.context import (
    Capability,
    Context,
    LocalKeys,
    PeerDirectory,
    StaticDirectory,
)
from l2session.core.management.manager import Outgoing, SessionManager
from l2session.core.paths.multipath import MultipathStrategy
from l2session.core.states import (
    RULES,
    TRANSITIONS,
    Rule,
    State,
    StateMachine,
    TransitionRecord,
    Trigger,
    allowed_triggers,
)

__all__ = [
    "MOVED_MODULES",
    "RULES",
    "TRANSITIONS",
    "Capability",
    "Context",
    "LocalKeys",
    "MessagesAvailable",
    "MultipathStrategy",
    "Outgoing",
    "PacketRejected",
    "PathMigrated",
    "PathValidated",
    "PeerDirectory",
    "ReconnectionPolicy",
    "Rule",
    "Session",
    "SessionAccepted",
    "SessionClosedEvent",
    "SessionConfig",
    "SessionEvent",
    "SessionKind",
    "SessionManager",
    "State",
    "StateChanged",
    "StateMachine",
    "StaticDirectory",
    "StoredSession",
    "TimeSource",
    "TransitionRecord",
    "Trigger",
    "accept",
    "allowed_triggers",
    "establish",
    "mermaid_state_diagram",
    "resume",
    "states_markdown",
    "tick",
]


#: Where each module of the former flat ``core/`` lives now.  Installed as
#: ``sys.modules`` aliases (and package attributes), so that
#: ``import l2session.core.session`` and ``from l2session.core.manager import
#: SessionManager`` keep working and yield the very same module objects;
#: tests/core/test_moved_modules.py checks every row.  New code imports the
#: new paths (type checkers do not follow these aliases).
MOVED_MODULES: Final[Mapping[str, str]] = {
    "session": "l2session.core.link.session",
    "channel": "l2session.core.link.channel",
    "delivery": "l2session.core.link.delivery",
    "envelope": "l2session.core.link.envelope",
    "keyschedule": "l2session.core.link.keyschedule",
    "establishment": "l2session.core.lifecycle.establishment",
    "early": "l2session.core.lifecycle.early",
    "liveness": "l2session.core.lifecycle.liveness",
    "resumption": "l2session.core.lifecycle.resumption",
    "rotation": "l2session.core.lifecycle.rotation",
    "rotating": "l2session.core.lifecycle.rotating",
    "screening": "l2session.core.lifecycle.screening",
    "persistence": "l2session.core.lifecycle.persistence",
    "migration": "l2session.core.paths.migration",
    "multipath": "l2session.core.paths.multipath",
    "race": "l2session.core.paths.race",
    "manager": "l2session.core.management.manager",
    "admission": "l2session.core.management.admission",
    "context": "l2session.core.management.context",
    "federated": "l2session.core.management.federated",
}


def _install_moved_modules() -> None:
    package = sys.modules[__name__]
    for old, new in MOVED_MODULES.items():
        module = importlib.import_module(new)
        sys.modules[f"{__name__}.{old}"] = module
        setattr(package, old, module)


_install_moved_modules()
