"""The sans-I/O session core (SPEC-018 §3-§5): time is passed in as ``now``.

* :mod:`~l2session.core.states` -- the state table of SPEC-018 §3 and the machine enforcing it
* :mod:`~l2session.core.diagram` -- docs/STATES.md and its mermaid diagram, from that table
* :mod:`~l2session.core.config` -- SessionConfig and ReconnectionPolicy
* :mod:`~l2session.core.context` -- the capabilities a call runs with
* :mod:`~l2session.core.session` -- one session: delivery, heartbeats, timers
* :mod:`~l2session.core.rotation`, :mod:`~l2session.core.rotating` -- in-session key rotation
* :mod:`~l2session.core.establishment` -- PQXDH, prekey bundles, resumption
* :mod:`~l2session.core.migration` -- MIGRATE and path validation (PATH_CHALLENGE/RESPONSE)
* :mod:`~l2session.core.multipath` -- a session's validated routes and how packets use them
* :mod:`~l2session.core.manager` -- many sessions, routing, one timer heap
* :mod:`~l2session.core.api` -- SPEC-018 §5.2 ``establish/resume/accept/tick``
"""

from l2session.core.api import accept, establish, resume, tick
from l2session.core.clock import TimeSource
from l2session.core.config import ReconnectionPolicy, SessionConfig, SessionKind
from l2session.core.context import (
    Capability,
    Context,
    LocalKeys,
    PeerDirectory,
    StaticDirectory,
)
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
from l2session.core.manager import Outgoing, SessionManager
from l2session.core.multipath import MultipathStrategy
from l2session.core.resumption import StoredSession
from l2session.core.session import Session
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
