"""The generated diagram is the spec's diagram, and docs/STATES.md is not stale.

``spec_state_diagram.mmd`` is SPEC-018 §3.2 copied verbatim, so these tests
do not depend on files outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

from l2session.core.diagram import mermaid_state_diagram, states_markdown
from l2session.core.states import TRANSITIONS, State

HERE = Path(__file__).resolve().parent
SPEC_DIAGRAM = HERE / "spec_state_diagram.mmd"
STATES_MD = HERE.parent.parent / "docs" / "STATES.md"

EDGE = re.compile(r"^\s*(\S+)\s*-->\s*(\S+?)\s*(?::\s*(.*?))?\s*$")

Edge = tuple[str, str, str]


def parse_edges(text: str) -> list[Edge]:
    """(source, target, label) per edge line, in order; comments and the header skipped."""
    edges: list[Edge] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("%%") or stripped == "stateDiagram-v2":
            continue
        match = EDGE.match(stripped)
        assert match is not None, f"not an edge line: {line!r}"
        source, target, label = match.groups()
        edges.append((source, target, label or ""))
    return edges


def spec_edges() -> list[Edge]:
    return parse_edges(SPEC_DIAGRAM.read_text(encoding="utf-8"))


def test_the_spec_copy_is_marked_verbatim_and_parses() -> None:
    lines = SPEC_DIAGRAM.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "%% verbatim from SPEC-018 §3.2"
    assert lines[1] == "stateDiagram-v2"
    assert len(spec_edges()) == 17


def test_the_generated_diagram_has_exactly_the_spec_edges() -> None:
    assert set(parse_edges(mermaid_state_diagram())) == set(spec_edges())


def test_the_generated_diagram_lists_the_edges_in_the_spec_order() -> None:
    assert parse_edges(mermaid_state_diagram()) == spec_edges()


def test_the_generated_diagram_starts_like_a_state_diagram() -> None:
    lines = mermaid_state_diagram().splitlines()
    assert lines[:2] == ["stateDiagram-v2", "[*] --> idle"]


def test_every_state_appears_in_the_diagram() -> None:
    nodes = {
        node
        for source, target, _ in parse_edges(mermaid_state_diagram())
        for node in (source, target)
    }
    assert {state.value for state in State} <= nodes


def test_rules_sharing_an_edge_are_joined_in_table_order() -> None:
    labels = [
        rule.label
        for rule in TRANSITIONS
        if rule.source is State.HANDSHAKE_INITIATED and rule.target is State.FAILED
    ]
    assert labels == ["timeout", "invalid_sig"]
    assert "handshake_initiated --> failed: timeout / invalid_sig" in mermaid_state_diagram()


def test_docs_states_md_is_up_to_date() -> None:
    expected = states_markdown()
    actual = STATES_MD.read_text(encoding="utf-8")
    assert actual == expected, "docs/STATES.md is stale: run `make docs`"


def test_the_markdown_embeds_the_diagram_and_every_rule() -> None:
    text = states_markdown()
    assert f"```mermaid\n{mermaid_state_diagram()}```\n" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == len(TRANSITIONS)
    for row, rule in zip(rows, TRANSITIONS, strict=True):
        assert row.startswith(f"| `{rule.source.value}` | `{rule.trigger.value}` |")
        assert rule.meaning in row
    assert "## Events that are not transitions" in text
