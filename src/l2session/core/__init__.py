"""The sans-I/O session core (SPEC-018 §3-§5): time is passed in as ``now``.

* :mod:`~l2session.core.states` -- the state table of SPEC-018 §3 and the machine enforcing it
* :mod:`~l2session.core.diagram` -- docs/STATES.md and its mermaid diagram, from that table
"""

from l2session.core.diagram import mermaid_state_diagram, states_markdown
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
    "Rule",
    "State",
    "StateMachine",
    "TransitionRecord",
    "Trigger",
    "allowed_triggers",
    "mermaid_state_diagram",
    "states_markdown",
]
