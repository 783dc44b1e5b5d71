"""Deterministic known-answer vectors: PQXDH, the ratchet, the wire, the session.

SPEC-018 §6.3 asks for "deterministic test vectors" in place of live PQXDH.
:func:`pqxdh_vector` runs a complete handshake and a scripted conversation
(out-of-order delivery, a DH step in each direction, a post-quantum re-seed)
with every random byte drawn from one :class:`SeededRandom` and ML-KEM
encapsulation made deterministic (:mod:`l2session.testing.kem`), and returns
every public byte and derived secret as hex.  The checked-in JSON under
``tests/vectors/`` was produced by it; the tests regenerate it and require
byte equality, so any change to the protocol's bytes is caught.

:func:`kdf_vector` pins the KDF per label (docs/CRYPTO.md §2);
:func:`wire_vector` every packet and record type of docs/PROTOCOL.md §3-§4
with its bytes, plus malformed inputs every decoder must refuse; and
:func:`session_vector` the session key schedule on fixed inputs, DATA
packets sealed by Channels on fixed keys, a rotation and a resumption
(docs/PROTOCOL.md §6-§8).  ``tests/vectors/generate.py`` (``make vectors``)
writes them all.

The builders live in one module per layer: :mod:`.crypto`
(:func:`pqxdh_vector`, :func:`kdf_vector`), :mod:`.wire`
(:func:`wire_vector`, :func:`relay_vector`, the JSON translation of packets
and records) and :mod:`.session` (:func:`session_vector`); :mod:`._format`
holds what they share.  Every name is importable from this package, as it
was when the builders were one module.
"""

from __future__ import annotations

from l2session.testing.vectors._format import PER_TURN, VECTOR_FORMAT, VECTOR_NOW
from l2session.testing.vectors.crypto import kdf_vector, pqxdh_vector
from l2session.testing.vectors.session import session_vector
from l2session.testing.vectors.wire import (
    PACKET_KINDS,
    RECORD_KINDS,
    from_json_fields,
    json_fields,
    relay_vector,
    wire_vector,
)

__all__ = [
    "PACKET_KINDS",
    "PER_TURN",
    "RECORD_KINDS",
    "VECTOR_FORMAT",
    "VECTOR_NOW",
    "from_json_fields",
    "json_fields",
    "kdf_vector",
    "pqxdh_vector",
    "relay_vector",
    "session_vector",
    "wire_vector",
]
