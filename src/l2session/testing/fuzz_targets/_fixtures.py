"""Key material and the one genuine PQXDH handshake every target
replays, built once per process from fixed seeds.

The crypto, core and manager targets all start from Alice's and Bob's keys
and from the same INIT/RESPONSE/FINISH bytes: building them in one place
keeps every target deterministic (see :data:`ENCAPSULATOR`) and pays for
the keys and the handshake once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from l2session.crypto import primitives
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.pqxdh import HandshakeResult, InitiatorHandshake, ResponderHandshake
from l2session.crypto.rng import RandomSource, SeededRandom
from l2session.errors import (
    AuthenticationFailed,
    ConfigError,
    HandshakeError,
    MalformedMessage,
)
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.testing.fuzz_targets._base import NOW, POLICY
from l2session.testing.parties import Party


class _FixedRandom:
    """A :class:`RandomSource` that returns one given byte string."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def random_bytes(self, n: int) -> bytes:
        if n != len(self._data):
            raise ConfigError(f"fixed randomness holds {len(self._data)} bytes, not {n}")
        return self._data


class ReplayableEncapsulator:
    """ML-KEM-768 encapsulation as a function of the public key and 32
    bytes drawn from the injected stream, so that replaying a handshake
    from the same seed replays it byte for byte (see the module docstring)."""

    __slots__ = ("_memo",)

    #: Distinct (key, randomness) pairs remembered; the targets use a handful.
    MAX_MEMO: Final = 1024

    def __init__(self) -> None:
        self._memo: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}

    def __call__(self, public: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
        message = rng.random_bytes(32)
        key = (bytes(public), message)
        hit = self._memo.get(key)
        if hit is None:
            hit = _encapsulate(bytes(public), message)
            if len(self._memo) < self.MAX_MEMO:
                self._memo[key] = hit
        return hit


def _encapsulate(public: bytes, message: bytes) -> tuple[bytes, bytes]:
    try:
        import kyber_py  # noqa: F401  (probe only: the test and fuzz extras have it)
    except ImportError:  # pragma: no cover - depends on the environment
        return primitives.openssl_encapsulate(public, _FixedRandom(message))
    from l2session.testing.kem import deterministic_encapsulate

    return deterministic_encapsulate(public, _FixedRandom(message))


#: The encapsulator of every handshake a target runs.
ENCAPSULATOR: Final = ReplayableEncapsulator()


@dataclass(frozen=True, slots=True)
class _Keys:
    """A party's identity and the bytes of its untouched prekey store."""

    identity: Identity
    prekeys: bytes

    def party(self) -> Party:
        """A fresh party: the same keys, a full pool, an empty replay guard."""
        store = PrekeyStore.from_bytes(self.prekeys, self.identity, POLICY)
        return Party(self.identity, store, HandshakeReplayGuard())


@functools.cache
def _keys(name: str) -> _Keys:
    party = Party.create(SeededRandom(f"fuzz party {name}"), now=NOW, policy=POLICY)
    return _Keys(party.identity, party.prekeys.to_bytes())


def _signing_key(did: str) -> bytes:
    return resolve_signing_key(default_resolver(), did)


# ==========================================================================
# PQXDH: one genuine handshake, replayable


@dataclass(frozen=True, slots=True)
class _Handshake:
    init: bytes
    response: bytes
    finish: bytes
    initiator: HandshakeResult
    responder: HandshakeResult


def _start_initiator() -> tuple[InitiatorHandshake, bytes]:
    """Alice's side after INIT; the same bytes on every call."""
    alice, bob = _keys("alice"), _keys("bob")
    bundle = bob.party().prekeys.bundle()
    return InitiatorHandshake.start(
        local=alice.identity,
        peer_did=bob.identity.did_text,
        peer_signing_key=bob.identity.signing_public,
        signed_prekeys=bundle.signed_prekeys,
        one_time_prekey=bundle.one_time_prekeys[0],
        rng=SeededRandom("fuzz initiator"),
        now=NOW,
        encapsulator=ENCAPSULATOR,
    )


def _receive_init(data: bytes, party: Party) -> tuple[ResponderHandshake, bytes]:
    """Bob's side of ``data``, with ``party``'s prekeys and replay guard."""
    return ResponderHandshake.receive_init(
        data,
        local=party.identity,
        prekeys=party.prekeys,
        peer_signing_key=_signing_key,
        guard=party.guard,
        rng=SeededRandom("fuzz responder"),
        now=NOW,
        encapsulator=ENCAPSULATOR,
    )


@functools.cache
def _handshake() -> _Handshake:
    initiator, init = _start_initiator()
    responder, response = _receive_init(init, _keys("bob").party())
    initiator_result, finish = initiator.receive_response(response)
    responder_result = responder.receive_finish(finish)
    return _Handshake(init, response, finish, initiator_result, responder_result)


#: What a handshake handler (PQXDH or resumption) refuses with.
_HANDSHAKE_REFUSES: Final = (MalformedMessage, AuthenticationFailed, HandshakeError)
