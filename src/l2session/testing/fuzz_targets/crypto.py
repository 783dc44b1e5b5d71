"""Fuzz targets of ``crypto/``: handshake messages, prekey records,
ratchet snapshots and restored ratchets, and the three PQXDH handlers.

The handlers feed one message to a party mid-handshake (or to Bob's
ratchet) and require that a refused input left the party exactly as it
was: the genuine message still completes the handshake or decrypts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from l2session.crypto.handshake_messages import HandshakeFinish, HandshakeInit, HandshakeResponse
from l2session.crypto.prekey_records import OneTimePrekey, SignedPrekeySet
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.ratchet_state import decode_snapshot, encode_snapshot
from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    AuthenticationFailed,
    HandshakeError,
    IdentityError,
    MalformedMessage,
    PrekeyError,
    RekeyPending,
    ReplayDetected,
    TooManySkippedKeys,
)
from l2session.testing.fuzz_targets._base import (
    _M,
    FuzzTarget,
    _check_encoding,
    _decoder,
    _handler,
    _require,
)
from l2session.testing.fuzz_targets._fixtures import (
    _HANDSHAKE_REFUSES,
    _handshake,
    _keys,
    _receive_init,
    _start_initiator,
)


def _init_seeds() -> tuple[bytes, ...]:
    return (_handshake().init,)


def _response_seeds() -> tuple[bytes, ...]:
    return (_handshake().response,)


def _finish_seeds() -> tuple[bytes, ...]:
    return (_handshake().finish,)


@functools.cache
def _prekey_record_seeds() -> tuple[bytes, ...]:
    bundle = _keys("alice").party().prekeys.bundle()
    return (bundle.signed_prekeys.encode(), *(r.encode() for r in bundle.one_time_prekeys))


def _signed_prekey_seeds() -> tuple[bytes, ...]:
    return _prekey_record_seeds()[:1]


def _one_time_prekey_seeds() -> tuple[bytes, ...]:
    return _prekey_record_seeds()[1:]


@dataclass(frozen=True, slots=True)
class _RatchetFixture:
    """Bob's ratchet before any message, and Alice's first messages to it."""

    state: bytes
    messages: tuple[bytes, ...]
    plaintexts: tuple[bytes, ...]
    states: tuple[bytes, ...]


@functools.cache
def _ratchet() -> _RatchetFixture:
    """Built once: it advances the ratchets of the cached handshake, which
    nothing else uses."""
    handshake = _handshake()
    alice, bob = handshake.initiator.ratchet, handshake.responder.ratchet
    plaintexts = (b"one", b"two", b"", b"four " * 20)
    state = bob.to_bytes()
    messages = tuple(alice.encrypt(p) for p in plaintexts)
    # States with a receiving chain, skipped keys and a reply chain.
    bob.decrypt(messages[2])
    skipped = bob.to_bytes()
    reply = bob.encrypt(b"reply")
    alice.decrypt(reply)
    return _RatchetFixture(state, messages, plaintexts, (state, skipped, bob.to_bytes()))


def _check_snapshot(data: bytes, snapshot: object) -> None:
    _require(encode_snapshot(snapshot) == bytes(data), "ratchet state re-encodes")  # type: ignore[arg-type]


def _ratchet_from_bytes(data: bytes) -> DoubleRatchet:
    return DoubleRatchet.from_bytes(data, rng=SeededRandom("fuzz ratchet"))


def _check_ratchet(data: bytes, ratchet: object) -> None:
    assert isinstance(ratchet, DoubleRatchet)
    _require(ratchet.to_bytes() == bytes(data), "restored ratchet re-encodes to other bytes")


_DECRYPT_REFUSES: Final = (
    MalformedMessage,
    AuthenticationFailed,
    ReplayDetected,
    TooManySkippedKeys,
    RekeyPending,
)


def _ratchet_decrypt(data: bytes) -> bool:
    """A refused message leaves the ratchet byte for byte as it was, and
    the genuine first message still decrypts afterwards."""
    fixture = _ratchet()
    ratchet = _ratchet_from_bytes(fixture.state)
    try:
        plaintext = ratchet.decrypt(bytes(data))
    except _DECRYPT_REFUSES:
        _require(ratchet.to_bytes() == fixture.state, "a refused message changed the ratchet")
        _require(
            ratchet.decrypt(fixture.messages[0]) == fixture.plaintexts[0],
            "the genuine message no longer decrypts after a refused one",
        )
        return False
    _require(bytes(data) in fixture.messages, "the ratchet accepted a message Alice never sent")
    _require(
        plaintext == fixture.plaintexts[fixture.messages.index(bytes(data))],
        "a message decrypted to another plaintext",
    )
    return True


_INIT_REFUSES: Final = (
    MalformedMessage,
    HandshakeError,
    ReplayDetected,
    PrekeyError,
    AuthenticationFailed,
    IdentityError,
)


def _pqxdh_init(data: bytes) -> bool:
    """The responder refuses every INIT but Alice's genuine one, and a
    refused INIT consumes no prekey and is not remembered by the guard."""
    handshake = _handshake()
    keys = _keys("bob")
    party = keys.party()
    try:
        _receive_init(bytes(data), party)
    except _INIT_REFUSES:
        _require(party.prekeys.to_bytes() == keys.prekeys, "a refused INIT changed the prekeys")
        _require(party.guard.remembered == 0, "a refused INIT was remembered")
        _receive_init(handshake.init, party)  # the genuine INIT still works
        return False
    _require(bytes(data) == handshake.init, "the responder accepted a forged INIT")
    return True


def _pqxdh_response(data: bytes) -> bool:
    """The initiator refuses every RESPONSE but Bob's, and is unchanged by
    a refused one: Bob's genuine RESPONSE still completes it."""
    handshake = _handshake()
    initiator, _ = _start_initiator()
    try:
        initiator.receive_response(bytes(data))
    except _HANDSHAKE_REFUSES:
        result, finish = initiator.receive_response(handshake.response)
        _require(
            finish == handshake.finish and result.session_id == handshake.initiator.session_id,
            "a refused RESPONSE changed the initiator",
        )
        return False
    _require(bytes(data) == handshake.response, "the initiator accepted a forged RESPONSE")
    return True


def _pqxdh_finish(data: bytes) -> bool:
    """The responder refuses every FINISH but Alice's, and still takes
    Alice's genuine FINISH after a refused one."""
    handshake = _handshake()
    responder, _ = _receive_init(handshake.init, _keys("bob").party())
    try:
        responder.receive_finish(bytes(data))
    except _HANDSHAKE_REFUSES:
        result = responder.receive_finish(handshake.finish)
        _require(
            result.handshake_hash == handshake.responder.handshake_hash,
            "a refused FINISH changed the responder",
        )
        return False
    _require(bytes(data) == handshake.finish, "the responder accepted a forged FINISH")
    return True


#: The targets of crypto/.
TARGETS: Final[tuple[FuzzTarget, ...]] = (
    _decoder(
        "handshake_init",
        ("l2session.crypto.handshake_messages:HandshakeInit.decode",),
        HandshakeInit.decode,
        _init_seeds,
        _M,
        verify=_check_encoding,
        max_len=8192,
    ),
    _decoder(
        "handshake_response",
        ("l2session.crypto.handshake_messages:HandshakeResponse.decode",),
        HandshakeResponse.decode,
        _response_seeds,
        _M,
        verify=_check_encoding,
        max_len=8192,
    ),
    _decoder(
        "handshake_finish",
        ("l2session.crypto.handshake_messages:HandshakeFinish.decode",),
        HandshakeFinish.decode,
        _finish_seeds,
        _M,
        verify=_check_encoding,
        max_len=256,
    ),
    _decoder(
        "signed_prekeys",
        ("l2session.crypto.prekey_records:SignedPrekeySet.decode",),
        SignedPrekeySet.decode,
        _signed_prekey_seeds,
        _M,
        verify=_check_encoding,
    ),
    _decoder(
        "one_time_prekey",
        ("l2session.crypto.prekey_records:OneTimePrekey.decode",),
        OneTimePrekey.decode,
        _one_time_prekey_seeds,
        _M,
        verify=_check_encoding,
    ),
    _decoder(
        "ratchet_snapshot",
        (
            "l2session.crypto.ratchet_state:decode_snapshot",
            "l2session.crypto.replay:ReplayWindow.read",
        ),
        decode_snapshot,
        lambda: _ratchet().states,
        _M,
        verify=_check_snapshot,
        max_len=16384,
    ),
    _decoder(
        "ratchet_state",
        ("l2session.crypto.ratchet:DoubleRatchet.from_bytes",),
        _ratchet_from_bytes,
        lambda: _ratchet().states,
        _M,
        verify=_check_ratchet,
        max_len=16384,
    ),
    _handler(
        "ratchet_decrypt",
        ("l2session.crypto.ratchet:DoubleRatchet.decrypt",),
        _ratchet_decrypt,
        lambda: _ratchet().messages,
        _DECRYPT_REFUSES,
    ),
    _handler(
        "pqxdh_init",
        ("l2session.crypto.pqxdh:ResponderHandshake.receive_init",),
        _pqxdh_init,
        _init_seeds,
        _INIT_REFUSES,
        max_len=8192,
        cost=10,
    ),
    _handler(
        "pqxdh_response",
        ("l2session.crypto.pqxdh:InitiatorHandshake.receive_response",),
        _pqxdh_response,
        _response_seeds,
        _HANDSHAKE_REFUSES,
        max_len=8192,
        cost=10,
    ),
    _handler(
        "pqxdh_finish",
        ("l2session.crypto.pqxdh:ResponderHandshake.receive_finish",),
        _pqxdh_finish,
        _finish_seeds,
        _HANDSHAKE_REFUSES,
        max_len=256,
        cost=10,
    ),
)
