"""docs/STATES.md and its mermaid diagram, generated from the state table.

The diagram is built from :data:`~l2session.core.states.TRANSITIONS` in the
spec's own notation, so a test can compare it edge by edge with SPEC-018 §3.2,
and docs/STATES.md is regenerated with ``make docs`` rather than edited, so it
cannot describe a state machine the code does not have.  Pure: this module
returns text; the Makefile writes the file.
"""

from __future__ import annotations

from l2session.core.states import TRANSITIONS, Rule, State

_INITIAL = State.IDLE


def _node(state: State | None) -> str:
    return "[*]" if state is None else state.value


def mermaid_state_diagram() -> str:
    """The ``stateDiagram-v2`` text: one edge per (source, target), labels joined by " / "."""
    edges: dict[tuple[State, State | None], list[str]] = {}
    for rule in TRANSITIONS:
        edges.setdefault((rule.source, rule.target), []).append(rule.label)
    lines = ["stateDiagram-v2", f"[*] --> {_node(_INITIAL)}"]
    lines.extend(
        f"{_node(source)} --> {_node(target)}: {' / '.join(labels)}"
        for (source, target), labels in edges.items()
    )
    return "\n".join(lines) + "\n"


def _row(rule: Rule) -> str:
    target = "[*] (removed)" if rule.target is None else f"`{rule.target.value}`"
    return f"| `{rule.source.value}` | `{rule.trigger.value}` | {target} | {rule.meaning} |"


def states_markdown() -> str:
    """The full text of docs/STATES.md."""
    parts = [
        "# Session states",
        "",
        "<!-- Generated file: edit l2session/core/states.py, then run `make docs`. -->",
        "",
        "This file is generated from `l2session.core.states.TRANSITIONS`, the one table",
        "of SPEC-018 §3, by `make docs` (which writes `states_markdown()` of",
        "`l2session.core.diagram` to `docs/STATES.md`); a test fails when it is stale.",
        "A trigger the table does not list for the current state raises `InvalidState`",
        "and changes nothing. Every transition is logged at INFO on the",
        "`l2session.session` logger.",
        "",
        "```mermaid",
        mermaid_state_diagram().rstrip("\n"),
        "```",
        "",
        "| from | trigger | to | meaning |",
        "|---|---|---|---|",
        *(_row(rule) for rule in TRANSITIONS),
        "",
        "## Events that are not transitions",
        "",
        "* Closing a session with `Session.close()` removes it without a state",
        "  transition: the spec's table has no edge out of `established` to `[*]`.",
        "* A new handshake from the peer while a session is `established` replaces",
        "  the session keys inside `established`; the state does not change.",
    ]
    return "\n".join(parts) + "\n"


__all__ = ["mermaid_state_diagram", "states_markdown"]
