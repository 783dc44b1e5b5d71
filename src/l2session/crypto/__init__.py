"""The post-quantum crypto core (sans-I/O; randomness injected).

* :mod:`~l2session.crypto.primitives` -- X25519, Ed25519, ML-KEM-768, each in one place
* :mod:`~l2session.crypto.kdf` -- the one BLAKE3 KDF construction, MAC, transcript
* :mod:`~l2session.crypto.pqxdh` -- the hybrid handshake
* :mod:`~l2session.crypto.ratchet` -- the Double Ratchet with post-quantum re-seed
* :mod:`~l2session.crypto.replay` -- the sliding replay window
* :mod:`~l2session.crypto.prekey_records` -- signed prekey records

docs/CRYPTO.md specifies every byte.
"""

from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.handshake_messages import HandshakeFinish, HandshakeInit, HandshakeResponse
from l2session.crypto.pqxdh import (
    HandshakeResult,
    InitiatorHandshake,
    LocalParty,
    OneTimePrekeySecret,
    ResponderHandshake,
    ResponderPrekeys,
    SignedPrekeySecrets,
)
from l2session.crypto.prekey_records import OneTimePrekey, SignedPrekeySet
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.replay import ReplayWindow
from l2session.crypto.rng import RandomSource, SeededRandom

__all__ = [
    "DoubleRatchet",
    "HandshakeFinish",
    "HandshakeInit",
    "HandshakeReplayGuard",
    "HandshakeResponse",
    "HandshakeResult",
    "InitiatorHandshake",
    "LocalParty",
    "OneTimePrekey",
    "OneTimePrekeySecret",
    "RandomSource",
    "ReplayWindow",
    "ResponderHandshake",
    "ResponderPrekeys",
    "SeededRandom",
    "SignedPrekeySecrets",
    "SignedPrekeySet",
]
