"""Test helpers, public so that applications can test against l2session.

* :class:`MockResolver` -- SPEC-018 §6.3 "MockResolver with test documents"
* :class:`~l2session.crypto.rng.SeededRandom` -- reproducible randomness
* :func:`deterministic_encapsulate` -- ML-KEM with injected randomness
* :func:`pqxdh_vector` -- the known-answer vectors (SPEC-018 §6.3 "deterministic test vectors")
* :class:`Party`, :func:`run_handshake` -- a whole handshake in one call
* :class:`MockNetwork`, :class:`MockTransport`, :class:`LinkProfile` -- SPEC-018
  §6.3 "MockTransport with latency/packet loss controls": a seeded datagram
  network on virtual time
* :class:`ManualClock` -- SPEC-018 §6.3 "Injectable TimeSource"
* :class:`Simulation` -- several real nodes over the mock network on virtual
  time, with kill-and-restart from a store

Product code never imports this package (a test enforces it).
"""

from l2session.crypto.rng import SeededRandom
from l2session.testing.clock import ManualClock
from l2session.testing.kem import deterministic_encapsulate
from l2session.testing.network import (
    PATHS,
    Datagram,
    LinkProfile,
    MockNetwork,
    MockTransport,
    NetworkStats,
)
from l2session.testing.parties import Party, run_handshake
from l2session.testing.resolver import MockResolver
from l2session.testing.simulation import Simulation
from l2session.testing.vectors import kdf_vector, pqxdh_vector

__all__ = [
    "PATHS",
    "Datagram",
    "LinkProfile",
    "ManualClock",
    "MockNetwork",
    "MockResolver",
    "MockTransport",
    "NetworkStats",
    "Party",
    "SeededRandom",
    "Simulation",
    "deterministic_encapsulate",
    "kdf_vector",
    "pqxdh_vector",
    "run_handshake",
]
