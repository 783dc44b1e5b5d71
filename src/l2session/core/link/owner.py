"""What a session needs of its owner, the manager, as one port.

:class:`SessionOwner` is the union of the owner ports of the behaviours a
session drives (each defined next to its behaviour: liveness, which takes
in establishment, rotation, migration, multipath and the path race; the
Membrane's screening; persistence) and of the calls
:class:`~l2session.core.link.session.Session` makes itself.  It is generic
in the session type because the manager's methods take the session they
concern, and the session module cannot be imported here (it imports this).
:class:`~l2session.core.management.manager.SessionManager` satisfies it
structurally; mypy checks that where the manager creates a session.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from l2session.core.events import SessionEvent
from l2session.core.lifecycle.liveness import LivenessOwner
from l2session.core.lifecycle.persistence import PersistenceOwner
from l2session.core.lifecycle.screening import ScreeningOwner
from l2session.core.states import TransitionRecord

S_contra = TypeVar("S_contra", contravariant=True)


class SessionOwner(
    LivenessOwner[S_contra],
    ScreeningOwner[S_contra],
    PersistenceOwner[S_contra],
    Protocol[S_contra],
):
    """The manager as a session sees it."""

    def record_transition(self, record: TransitionRecord) -> None:
        """The sink of the session's state machine (events, audit log)."""
        ...

    def emit(self, event: SessionEvent) -> None: ...

    def address_moved(self, session: S_contra, old: str | None, new: str | None, /) -> None:
        """Keep the manager's address index true."""
        ...

    def forget(self, session: S_contra, /) -> None:
        """The session ended: drop it from every table."""
        ...

    def commit(self, *, barrier: bool = ...) -> None: ...

    def authenticated(self, session: S_contra, /) -> None:
        """The packet being received authenticated as the session's peer."""
        ...

    def quarantined_until(self, did: str, address: str | None, now: float) -> float: ...
