"""Shared accessors for the migration and multipath tests."""

from __future__ import annotations

from l2session.core.link.session import Session
from l2session.core.paths import multipath
from l2session.core.paths.migration import PathValidation, state_of
from l2session.testing.simulation import SimNode


def validation(session: Session) -> PathValidation:
    """The session's path-validation state (allocated on first use)."""
    return state_of(session)


def extra(session: Session) -> list[tuple[str, str]]:
    return multipath.others(session)


def session_of(node: SimNode, peer: SimNode) -> Session:
    session = node.session(peer)
    assert session is not None
    return session
