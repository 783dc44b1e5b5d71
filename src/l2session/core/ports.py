"""Every port of the core in one list, and the proof that the session and
the manager satisfy them.

A behaviour module never imports :mod:`l2session.core.link.session`: it
declares, next to its functions, a ``typing.Protocol`` naming exactly the
fields and calls it uses of a session (its *port*) and of the session's
owner, the manager (its *owner port*).  :class:`Session` and
:class:`SessionManager` satisfy them structurally.  mypy --strict checks
that wherever the session hands itself to a behaviour; :func:`conforms`
states it once for all of them (typed assignments, so a missing or
mistyped member fails type checking here, naming the port), and
tests/core/test_ports.py runs it on live objects.
"""

from __future__ import annotations

from l2session.core.lifecycle.establishment import EstablishmentOwner, EstablishmentPort
from l2session.core.lifecycle.liveness import LivenessOwner, LivenessPort
from l2session.core.lifecycle.persistence import PersistenceOwner, PersistencePort
from l2session.core.lifecycle.rotating import RotatingOwner, RotatingPort
from l2session.core.lifecycle.screening import ScreeningOwner, ScreeningPort
from l2session.core.link.owner import SessionOwner
from l2session.core.link.session import Session
from l2session.core.management.accepting import AcceptingOwner
from l2session.core.management.manager import SessionManager
from l2session.core.paths.migration import MigrationOwner, MigrationPort
from l2session.core.paths.multipath import MultipathOwner, MultipathPort
from l2session.core.paths.race import RaceOwner, RacePort

#: (behaviour, its session port, its owner port), bottom up.
PORTS: tuple[tuple[str, type, type], ...] = (
    ("persistence", PersistencePort, PersistenceOwner),
    ("multipath", MultipathPort, MultipathOwner),
    ("race", RacePort, RaceOwner),
    ("migration", MigrationPort, MigrationOwner),
    ("screening", ScreeningPort, ScreeningOwner),
    ("rotating", RotatingPort, RotatingOwner),
    ("establishment", EstablishmentPort, EstablishmentOwner),
    ("liveness", LivenessPort, LivenessOwner),
)


def conforms(session: Session, manager: SessionManager) -> int:
    """Type-level: ``session`` is every session port and ``manager`` every
    owner port.  Returns how many ports were bound (for the test)."""
    persistence: PersistencePort = session
    multipath: MultipathPort = session
    race: RacePort = session
    migration: MigrationPort = session
    screening: ScreeningPort = session
    rotating: RotatingPort = session
    establishment: EstablishmentPort = session
    liveness: LivenessPort = session
    owner: SessionOwner[Session] = manager
    persistence_owner: PersistenceOwner[Session] = manager
    multipath_owner: MultipathOwner[Session] = manager
    race_owner: RaceOwner[Session] = manager
    migration_owner: MigrationOwner[Session] = manager
    screening_owner: ScreeningOwner[Session] = manager
    rotating_owner: RotatingOwner = manager
    establishment_owner: EstablishmentOwner[Session] = manager
    liveness_owner: LivenessOwner[Session] = manager
    accepting_owner: AcceptingOwner = manager
    bound = (
        persistence,
        multipath,
        race,
        migration,
        screening,
        rotating,
        establishment,
        liveness,
        owner,
        persistence_owner,
        multipath_owner,
        race_owner,
        migration_owner,
        screening_owner,
        rotating_owner,
        establishment_owner,
        liveness_owner,
        accepting_owner,
    )
    return len(bound)
