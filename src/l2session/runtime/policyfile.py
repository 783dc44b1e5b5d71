"""The Membrane's I/O: reading a policy file, loading and saving the trust
graph, and giving a node its :class:`~l2session.membrane.membrane.Membrane`.

The membrane layer is pure (it parses text and never opens a file); this
module is where files and the store come in.
"""

from __future__ import annotations

import logging
from pathlib import Path

from l2session.errors import L2SessionError, PolicyError
from l2session.membrane.membrane import Membrane
from l2session.membrane.policy import MembranePolicy
from l2session.membrane.policy_file import parse_policy
from l2session.membrane.trust import TrustGraph
from l2session.membrane.trust_statement import TrustStatement
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore

_log = logging.getLogger("l2session.membrane")

#: Largest policy file read (a 10,000-grant policy is about 1.5 MB).
MAX_POLICY_BYTES = 16 * 1024 * 1024


def load_policy(path: str | Path) -> MembranePolicy:
    """Read and parse the TOML policy at ``path``; every problem is a
    :class:`PolicyError` naming the file (and line and field)."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_POLICY_BYTES:
            raise PolicyError(
                f"{file}: {size} bytes is more than a policy may hold ({MAX_POLICY_BYTES})",
                path=str(file),
            )
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            f"{file}: no such policy file. Fix: check the path (docs/MEMBRANE.md has an example)",
            path=str(file),
        ) from None
    except UnicodeDecodeError as exc:
        raise PolicyError(
            f"{file}: not UTF-8 text (byte {exc.start}); a policy file is TOML", path=str(file)
        ) from None
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read it: {exc.strerror}", path=str(file)) from None
    return parse_policy(text, str(file))


def load_trust(store: SqliteStore | MemoryStore | None, root: str, now: float) -> TrustGraph:
    """The trust graph rooted at ``root``, from the statements in ``store``.
    Each is verified again on the way in; one that no longer fits (bad
    signature, a bound lowered) is skipped with a warning, not fatal."""
    graph = TrustGraph(root)
    if store is None:
        return graph
    for data in store.trust_statements():
        try:
            graph.add(TrustStatement.from_bytes(data), now)
        except L2SessionError as exc:
            _log.warning("skipping a stored trust statement: %s", exc)
    return graph


def node_membrane(
    policy: MembranePolicy,
    store: SqliteStore | MemoryStore | None,
    root: str,
    now: float,
) -> Membrane:
    """A node's Membrane: its trust graph from the store, every decision
    appended to the store's audit log (committed with the node's next
    commit), every trust statement added kept in the store."""

    graph = load_trust(store, root, now)
    if store is None:
        return Membrane(policy, graph)

    def keep(statement: TrustStatement) -> None:
        store.put_trust(statement.issuer, statement.subject, statement.to_bytes())

    return Membrane(policy, graph, audit=store.append_audit, on_trust=keep)


def next_issue_time(graph: TrustGraph, issuer: str, subject: str, now: float) -> float:
    """When to date a new statement by ``issuer`` about ``subject``: now,
    or just after the one held (two changes within one millisecond must
    still be ordered, or the second would be refused as stale)."""
    held = graph.held(issuer, subject)
    return now if held is None else max(now, held.issued_at + 0.001)
