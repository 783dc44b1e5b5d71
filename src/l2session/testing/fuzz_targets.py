"""Fuzz targets: every decoder of untrusted bytes and every handshake
handler, in one registry.

The Hypothesis tests (``tests/fuzz``) and the atheris scripts (``fuzz/``)
both run :data:`TARGETS`, so a decoder is fuzzed the same way in the normal
suite and in a long campaign, and a crash found by one reproduces in the
other.  Each :class:`FuzzTarget` has

* ``run(data)`` (``check(data)`` also says whether the input was
  accepted): feeds ``data`` to the decoder or handler.  It returns quietly
  when the input is refused with one of the typed errors the decoder
  documents (``refuses``); anything else propagates and is a finding.
  When the input is *accepted*, it checks what is cheap to check:
  re-encoding gives the same bytes (the encodings are canonical, and the
  handshake transcript hashes them), and a handler that refused left its
  state exactly as it was (the genuine message still completes it);
* ``seeds()``: a few valid inputs built with the project's own encoders, so
  that mutations reach the code behind the first length check;
* ``entries``: the ``module:qualname`` of every decoder function the target
  drives; ``tests/fuzz`` holds the list against an inventory of the source,
  so a new decoder without a target fails the suite.

A finding is an exception outside ``refuses``: ``IndexError``,
``UnicodeError``, ``RecursionError``, ``OverflowError`` and the like mean a
hostile peer (or file) can crash its caller; :class:`PropertyViolation`
means the decoder accepted something it should not have, or a refused input
changed state.  Hangs and memory are the runner's business (libFuzzer's
``-timeout`` and ``-rss_limit_mb``); every loop in the targets is bounded.

**Text.** Decoders that take ``str`` get ``data.decode("utf-8",
"surrogateescape")``: every byte string maps to some text, and bytes that
are not UTF-8 become lone surrogates (U+DC80..U+DCFF).  A Python ``str``
really can hold those (``sys.argv`` on a non-UTF-8 file name, a JSON
``"\\udc80"`` escape), so the decoders must refuse them with their typed
errors too, and no input is wasted on a "not UTF-8" early return.

**Determinism.** Keys come from fixed :class:`SeededRandom` streams.  ML-KEM
encapsulation is the one operation OpenSSL randomizes by itself; the
targets use :data:`ENCAPSULATOR`, which is a function of the public key and
32 bytes drawn from the injected stream (FIPS 203 ``Encaps_internal`` when
``kyber-py`` is installed, as in the ``test`` and ``fuzz`` extras; without
it, OpenSSL's result memoized for the process).  So every handshake a
target replays is the same on every run, and with ``kyber-py`` the seeds
are the same bytes in every process (a corpus stays valid).

This module imports neither Hypothesis nor atheris: the atheris scripts run
with only the ``fuzz`` extra installed.  Product code never imports it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, cast

from l2session.core.config import SessionConfig
from l2session.core.events import PacketRejected, SessionEvent
from l2session.core.lifecycle import early
from l2session.core.lifecycle.persistence import ROUTE_MIGRATED, RouteRecord
from l2session.core.lifecycle.resumption import (
    PendingResume,
    StoredSession,
    answer_resume,
    finish_resume,
    start_resume,
)
from l2session.core.link.envelope import (
    AccessRecord,
    Denial,
    Refused,
    Request,
    denial,
    is_placeholder,
    refused,
    unwrap,
    wrap,
)
from l2session.core.management.manager import Outgoing
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.crypto import primitives
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.handshake_messages import (
    TYPE_FINISH,
    TYPE_INIT,
    TYPE_RESPONSE,
    HandshakeFinish,
    HandshakeInit,
    HandshakeResponse,
)
from l2session.crypto.pqxdh import HandshakeResult, InitiatorHandshake, ResponderHandshake
from l2session.crypto.prekey_records import OneTimePrekey, SignedPrekeySet
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.ratchet_state import decode_snapshot, encode_snapshot
from l2session.crypto.rng import RandomSource, SeededRandom
from l2session.errors import (
    AuthenticationFailed,
    BridgeUnavailable,
    ConfigError,
    DidResolutionError,
    HandshakeError,
    IdentityError,
    InvalidDid,
    InvalidForeignIdentity,
    InvalidTrustStatement,
    KeyFileError,
    L2SessionError,
    MalformedMessage,
    PolicyError,
    PrekeyError,
    RekeyPending,
    ReplayDetected,
    TooManySkippedKeys,
    UnsupportedKeyType,
)
from l2session.identity import base58
from l2session.identity.bundle import PrekeyBundle
from l2session.identity.did import (
    Did,
    b64url_decode,
    b64url_encode,
    decode_multibase_key,
    decode_varint,
    did_key_from_ed25519,
    ed25519_from_did_key,
    encode_multibase_key,
    encode_varint,
)
from l2session.identity.document import DidDocument, did_key_document
from l2session.identity.foreign import BridgeProtocol, ForeignIdentity
from l2session.identity.identity import Identity
from l2session.identity.keyfile import decode_identity, encode_identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.membrane.audit import Checkpoint, decode_record, encode_record
from l2session.membrane.policy_file import parse_policy
from l2session.membrane.trust_statement import TrustStatement
from l2session.runtime.directory import parse_peer
from l2session.testing.network import PATHS
from l2session.testing.parties import Party
from l2session.testing.simulation import SimNode, Simulation
from l2session.testing.vectors import wire_vector
from l2session.transports.address import InvalidAddress, format_address, parse_address
from l2session.transports.discovery_wire import (
    DIAL_REACHED,
    MAX_DATAGRAM,
    DialBack,
    DialJob,
    DialResult,
    DiscoveryResponder,
    Here,
    Probe,
    Reflex,
    WhoHas,
    decode_message,
)
from l2session.transports.framing import (
    HEADER,
    MAX_FRAME,
    FrameDecoder,
    decode_hello,
    encode_frame,
    encode_frames,
    encode_hello,
)
from l2session.transports.relay_server import RelayServer
from l2session.wire.packets import (
    PKT_BUNDLE,
    PKT_BUNDLE_REQUEST,
    PKT_DATA,
    PKT_HANDSHAKE,
    PKT_RESUME,
    PKT_RESUME_ACK,
    PKT_RESUME_EARLY,
    PKT_RESUME_REJECT,
    ResumeAckPacket,
    ResumeEarlyPacket,
    ResumePacket,
    decode_packet,
    encode_packet,
)
from l2session.wire.records import Message, Record, Sync, encode_records
from l2session.wire.records import decode_records as _decode_records
from l2session.wire.relay import (
    CircuitEnd,
    Connect,
    ConnectOk,
    ConnectReject,
    RelayData,
    RelayPacket,
    Reserve,
    ReserveOk,
    ReserveReject,
    decode_relay,
    encode_relay,
    reserve_signed_bytes,
)

#: Wall-clock time of every target (2027-01-15T08:00:00Z, as the tests).
NOW: Final = 1_800_000_000.0
#: Small prekey pools: a party costs one signature per one-time prekey.
POLICY: Final = PrekeyPolicy(one_time_pool_size=3, one_time_refill_threshold=1)


class PropertyViolation(AssertionError):
    """A decoder accepted an input it should have refused, re-encoded it to
    other bytes, or a refused input changed the state of its handler."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PropertyViolation(message)


def as_text(data: bytes) -> str:
    """The text a ``str`` decoder is fed (see the module docstring)."""
    return data.decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class FuzzTarget:
    """One fuzz target (see the module docstring)."""

    name: str
    #: ``module:qualname`` of each decoder this target drives; the first
    #: names the target's main entry point.
    entries: tuple[str, ...]
    #: Feeds one input; True if the decoder accepted it, False if it
    #: refused it with one of ``refuses``; any exception is a finding.
    check: Callable[[bytes], bool] = field(repr=False)
    seeds: Callable[[], tuple[bytes, ...]] = field(repr=False)
    #: The typed errors that mean "refused" (everything else is a finding).
    refuses: tuple[type[L2SessionError], ...]
    #: Whether the decoder takes text (fed through :func:`as_text`).
    text: bool = False
    #: Largest useful input (libFuzzer's ``-max_len``, Hypothesis's sizes).
    max_len: int = 4096
    #: Relative cost of one run: the Hypothesis tests give costly targets
    #: fewer examples so that the whole suite stays fast.
    cost: int = 1
    #: Keywords of the input's grammar (libFuzzer's ``-dict``).
    tokens: tuple[bytes, ...] = ()

    @property
    def module(self) -> str:
        return self.entries[0].split(":", 1)[0]

    def run(self, data: bytes) -> None:
        """The fuzzing entry point (atheris's ``TestOneInput``)."""
        self.check(data)


def _refusing(
    decode: Callable[[bytes], object],
    refuses: tuple[type[L2SessionError], ...],
    check: Callable[[bytes, object], None] | None = None,
) -> Callable[[bytes], bool]:
    """``check`` for a pure decoder: refusals pass, accepted values are checked."""

    def run(data: bytes) -> bool:
        try:
            value = decode(data)
        except refuses:
            return False
        if check is not None:
            check(data, value)
        return True

    return run


# ==========================================================================
# Shared key material (built once per process, deterministic)


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


# ==========================================================================
# wire/


def _check_packet(data: bytes, packet: object) -> None:
    _require(encode_packet(packet) == bytes(data), "packet re-encodes to other bytes")  # type: ignore[arg-type]


@functools.cache
def _packet_seeds() -> tuple[bytes, ...]:
    vector = wire_vector()
    handshake = _handshake()
    return (
        *(bytes.fromhex(p["hex"]) for p in vector["packets"]),
        bytes.fromhex("0110") + handshake.initiator.session_id + handshake.init,
    )


def _check_records(data: bytes, records: object) -> None:
    _require(encode_records(records) == bytes(data), "records re-encode to other bytes")  # type: ignore[arg-type]


@functools.cache
def _record_seeds() -> tuple[bytes, ...]:
    vector = wire_vector()
    return tuple(bytes.fromhex(r["hex"]) for r in (*vector["records"], *vector["payloads"]))


# ==========================================================================
# transports/


def _check_hello(data: bytes, port: object) -> None:
    _require(isinstance(port, int) and 0 <= port <= 0xFFFF, f"HELLO port {port!r}")
    _require(encode_hello(port) == encode_frame(data), "HELLO re-encodes to other bytes")  # type: ignore[arg-type]


#: Frame limits the stream target chooses from (its first input byte).
_FRAME_LIMITS: Final = (0, 1, 16, 255, 4096, MAX_FRAME)


def _frame_stream(data: bytes) -> bool:
    """FrameDecoder.feed over ``data[2:]`` in chunks of ``data[1] + 1``
    bytes, with the limit ``data[0]`` picks.  Every byte fed is either in a
    returned frame (re-encoding the frames gives the stream back) or still
    buffered, and what is buffered is less than one whole frame."""
    if len(data) < 2:
        return False
    limit = _FRAME_LIMITS[data[0] % len(_FRAME_LIMITS)]
    step = data[1] + 1
    stream = bytes(data[2:])
    decoder = FrameDecoder(limit)
    frames: list[bytes] = []
    try:
        for start in range(0, len(stream), step):
            frames.extend(decoder.feed(stream[start : start + step]))
    except MalformedMessage:
        return False
    consumed = len(stream) - decoder.buffered
    _require(encode_frames(frames) == stream[:consumed], "frames do not re-encode to the stream")
    # Left over: part of one frame, never a whole one (nor past the limit).
    _require(decoder.buffered < HEADER + limit, "decoder holds a whole frame back")
    _require(all(len(frame) <= limit for frame in frames), "a frame exceeds the limit")
    return True


def _frame_seeds() -> tuple[bytes, ...]:
    """``limit index, chunk size - 1`` and a stream (see :func:`_frame_stream`)."""
    stream = encode_frames([b"", b"one", bytes(300)])
    return (
        bytes((4, 0)) + stream,
        bytes((4, 7)) + stream,
        bytes((5, 255)) + encode_hello(7000) + stream,
        bytes((3, 2)) + encode_frames([b"x" * 255, b"y"]),
    )


def _check_discovery(data: bytes, message: object) -> None:
    encode = getattr(message, "encode", None)
    _require(callable(encode) and encode() == bytes(data), "discovery message re-encodes")


def _relay_seeds() -> tuple[bytes, ...]:
    nonce, circuit = bytes(range(16)), bytes(range(8))
    alice = _keys("alice").identity
    signed = reserve_signed_bytes(_RELAY_DID, alice.did_text, int(NOW * 1000), nonce)
    signature = primitives.ed25519_sign(alice.signing, signed)
    return (
        encode_relay(Reserve(int(NOW * 1000), nonce, alice.did_text, signature)),
        encode_relay(ReserveOk(nonce, 600, _DISCOVERY_SOURCE)),
        encode_relay(ReserveReject(nonce, 2)),
        encode_relay(Connect(nonce, alice.did_text)),
        encode_relay(ConnectOk(nonce, circuit, 1 << 30, 3600, _DISCOVERY_SOURCE)),
        encode_relay(ConnectReject(nonce, 6)),
        encode_relay(RelayData(circuit, b"\x01\x20" + bytes(40))),
        encode_relay(CircuitEnd(circuit, 8)),
    )


def _check_relay(data: bytes, message: object) -> None:
    _require(encode_relay(cast(RelayPacket, message)) == bytes(data), "relay packet re-encodes")


_RELAY_DID: Final = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
_RELAY_SOURCE: Final = ("198.51.100.7:4433", "quic")


def _relay_server(data: bytes) -> bool:
    """RelayServer.receive never raises and answers only its source (a
    stranger's bytes never reach anyone else)."""
    server = RelayServer(
        _RELAY_DID, lambda did: _keys("alice").identity.signing.public, SeededRandom("relay")
    )
    out = server.receive(data, _RELAY_SOURCE, NOW)
    _require(all(route == _RELAY_SOURCE for route, _ in out), "a relay answered someone else")
    return bool(out)


_DISCOVERY_SECRET: Final = bytes(range(32))
_DISCOVERY_SOURCE: Final = "198.51.100.7:4433"
_DISCOVERY_LISTEN: Final = "192.0.2.1:7000"


def _responder() -> DiscoveryResponder:
    return DiscoveryResponder(
        _DISCOVERY_SECRET, identity=_keys("bob").identity, listen_address=_DISCOVERY_LISTEN
    )


@functools.cache
def _discovery_seeds() -> tuple[bytes, ...]:
    nonce = bytes(range(16))
    bob = _keys("bob").identity
    cookie = _responder().cookie(_DISCOVERY_SOURCE, NOW)
    return (
        Probe.padded(nonce).encode(),
        Probe.padded(nonce, cookie).encode(),
        Reflex(nonce, _DISCOVERY_SOURCE, cookie).encode(),
        Reflex(nonce, "[2001:db8::1]:4433").encode(),
        WhoHas.padded(nonce, bob.did_text).encode(),
        WhoHas.padded(nonce, bob.did_text, cookie).encode(),
        Here.signed(bob, nonce, _DISCOVERY_LISTEN).encode(),
        DialBack(nonce, cookie, 7000).encode(),
        DialResult(nonce, DIAL_REACHED, _DISCOVERY_SOURCE).encode(),
    )


def _discovery_responder(data: bytes) -> bool:
    """DiscoveryResponder.receive never raises, counts each datagram once,
    and never answers an unvalidated source with more than it sent."""
    responder = _responder()
    answer = responder.receive(data, _DISCOVERY_SOURCE, NOW)
    stats = responder.stats
    counted = stats.answered + stats.refused + stats.malformed + stats.rate_limited + stats.ignored
    _require(counted == 1, f"one datagram counted {counted} times: {stats}")
    if isinstance(answer, DialJob):
        # Only a proven source is dialled, and only at its own IP.
        _require(stats.validated == 1, "a dial-back for an unvalidated source")
        _require(
            answer.address.rsplit(":", 1)[0] == _DISCOVERY_SOURCE.rsplit(":", 1)[0],
            "a dial-back to another host than the asker",
        )
        answer = answer.answer(DIAL_REACHED)
    if answer is not None:
        _require(len(answer) <= MAX_DATAGRAM, "discovery answer exceeds the datagram limit")
        _require(
            stats.validated == 1 or len(answer) <= len(data),
            "discovery amplifies an unvalidated source",
        )
    return answer is not None


# ==========================================================================
# crypto/


def _check_encoding(data: bytes, value: object) -> None:
    encode = getattr(value, "encode", None)
    _require(callable(encode) and encode() == bytes(data), "re-encodes to other bytes")


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


_HANDSHAKE_REFUSES: Final = (MalformedMessage, AuthenticationFailed, HandshakeError)


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


# ==========================================================================
# identity/


def _did_seeds() -> tuple[bytes, ...]:
    return tuple(
        text.encode()
        for text in (
            _keys("alice").identity.did_text,
            "did:web:example.org:users:alice",
            "did:example:123%41bc:x",
        )
    )


def _check_did(data: bytes, did: object) -> None:
    _require(str(did) == as_text(data), "a DID is not the text it was parsed from")


def _check_did_key(data: bytes, key: object) -> None:
    assert isinstance(key, bytes)
    _require(str(did_key_from_ed25519(key)) == as_text(data), "did:key is not canonical")


def _check_varint(data: bytes, value: object) -> None:
    assert isinstance(value, tuple)
    number, length = value
    _require(encode_varint(number) == bytes(data[:length]), "varint is not minimal")


def _check_multibase(data: bytes, value: object) -> None:
    assert isinstance(value, tuple)
    codec, key = value
    _require(encode_multibase_key(codec, key) == as_text(data), "multibase key re-encodes")


def _check_b64url(data: bytes, value: object) -> None:
    assert isinstance(value, bytes)
    _require(b64url_encode(value) == as_text(data), "base64url re-encodes")


def _check_base58(data: bytes, value: object) -> None:
    assert isinstance(value, bytes)
    _require(base58.encode(value) == as_text(data), "base58 re-encodes to other text")


@functools.cache
def _multibase_seeds() -> tuple[bytes, ...]:
    alice = _keys("alice").identity
    return (
        encode_multibase_key(0xED, alice.signing_public).encode(),
        encode_multibase_key(0xEC, alice.agreement_public).encode(),
        encode_multibase_key(0x1200, bytes(33)).encode(),
    )


def _document(data: bytes) -> DidDocument:
    """JSON text to a document, as a resolver does.  Text that is not JSON
    never reaches the parser, so it is refused here as the resolver would."""
    try:
        obj = json.loads(as_text(data))
    except (ValueError, RecursionError):
        raise DidResolutionError("not JSON") from None
    return DidDocument.from_json(obj)


def _check_document(data: bytes, document: object) -> None:
    """Writing a parsed document out and parsing that again is stable."""
    assert isinstance(document, DidDocument)
    written = document.to_json()
    again = DidDocument.from_json(json.loads(json.dumps(written)))
    _require(again.to_json() == written, "a DID document does not survive to_json/from_json")


@functools.cache
def _document_seeds() -> tuple[bytes, ...]:
    alice = _keys("alice").identity
    did = "did:example:alice"
    ed = encode_multibase_key(0xED, alice.signing_public)
    rich = {
        "@context": ["https://www.w3.org/ns/did/v1", {"@vocab": "https://example.org#"}],
        "id": did,
        "verificationMethod": [
            {"id": "#key-1", "type": "Multikey", "controller": did, "publicKeyMultibase": ed},
            {
                "id": f"{did}#jwk",
                "type": "JsonWebKey2020",
                "controller": did,
                "publicKeyJwk": {
                    "kty": "OKP",
                    "crv": "X25519",
                    "x": b64url_encode(alice.agreement_public),
                },
            },
            {
                "id": f"{did}#b58",
                "type": "Ed25519VerificationKey2018",
                "controller": did,
                "publicKeyBase58": base58.encode(alice.signing_public),
            },
            {"id": f"{did}#rsa", "type": "RsaVerificationKey2018", "controller": did},
        ],
        "authentication": ["#key-1", f"{did}#b58"],
        "keyAgreement": [
            f"{did}#jwk",
            {
                "id": "#embedded",
                "type": "X25519KeyAgreementKey2020",
                "controller": did,
                "publicKeyMultibase": encode_multibase_key(0xEC, alice.agreement_public),
            },
        ],
        "service": [
            {"id": "#l2", "type": "L2Session", "serviceEndpoint": "quic://192.0.2.1:7000"},
            {"id": "#set", "type": ["A", "B"], "serviceEndpoint": {"uri": "x"}},
        ],
    }
    return (
        json.dumps(did_key_document(alice.did).to_json()).encode(),
        json.dumps(rich).encode(),
    )


#: The passphrase the key-file target tries on cheap encrypted files.
_PASSPHRASE: Final = "fuzz passphrase"  # noqa: S105 - a test value
#: scrypt cost (n * r * p) above which the target does not decrypt: the
#: decoder bounds it at 2**22 by design, which is seconds per input.
_MAX_FUZZ_SCRYPT_WORK: Final = 2**14


def _keyfile(data: bytes) -> Identity:
    """Decode without a passphrase; a passphrase-protected file with cheap
    scrypt parameters is then decrypted with the fuzz passphrase too."""
    try:
        return decode_identity(data, passphrase=None)
    except KeyFileError as error:
        cheap = _cheap_kdf(data)
        if not cheap:
            raise
        try:
            return decode_identity(data, passphrase=_PASSPHRASE)
        except KeyFileError:
            raise error from None


def _cheap_kdf(data: bytes) -> bool:
    """Whether ``data`` names scrypt parameters cheap enough to run."""
    try:
        kdf = json.loads(data)["kdf"]
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
    except (ValueError, RecursionError, TypeError, KeyError, IndexError):
        return False
    numbers = (n, r, p)
    if not all(type(x) is int and 0 < x <= _MAX_FUZZ_SCRYPT_WORK for x in numbers):
        return False
    return bool(n * r * p <= _MAX_FUZZ_SCRYPT_WORK)


def _check_keyfile(data: bytes, identity: object) -> None:
    assert isinstance(identity, Identity)
    again = decode_identity(
        encode_identity(identity, passphrase=None, rng=SeededRandom("fuzz keyfile")),
        passphrase=None,
    )
    _require(
        again.did == identity.did
        and again.signing.seed() == identity.signing.seed()
        and again.agreement.private_bytes() == identity.agreement.private_bytes(),
        "an identity does not survive encoding and decoding",
    )


@functools.cache
def _keyfile_seeds() -> tuple[bytes, ...]:
    alice = _keys("alice").identity
    rng = SeededRandom("fuzz keyfile seeds")
    return (
        encode_identity(alice, passphrase=None, rng=rng),
        encode_identity(alice, passphrase=_PASSPHRASE, rng=rng, scrypt_n=2**10, scrypt_r=1),
    )


def _bundle(data: bytes) -> PrekeyBundle:
    """Decode, then verify as a fetched bundle is (signatures, did:key)."""
    bundle = PrekeyBundle.decode(data)
    bundle.verify(default_resolver(), now=NOW)
    return bundle


def _bundle_seeds() -> tuple[bytes, ...]:
    return (_keys("alice").party().prekeys.bundle().encode(),)


def _prekey_store(data: bytes) -> PrekeyStore:
    return PrekeyStore.from_bytes(data, _keys("alice").identity, POLICY)


def _check_prekey_store(data: bytes, store: object) -> None:
    assert isinstance(store, PrekeyStore)
    _require(store.to_bytes() == bytes(data), "a prekey store re-encodes to other bytes")


def _prekey_store_seeds() -> tuple[bytes, ...]:
    party = _keys("alice").party()
    fresh = party.prekeys.to_bytes()
    party.prekeys.consume_one_time_prekey(party.prekeys.bundle().one_time_prekeys[0].prekey_id)
    party.prekeys.maintain(rng=SeededRandom("fuzz rotate"), now=NOW + 8 * 86_400)
    return (fresh, party.prekeys.to_bytes())


# ==========================================================================
# core/


def _check_envelope(data: bytes, value: object) -> None:
    body = bytes(data)
    if isinstance(value, Refused):
        _require(is_placeholder(body), "a placeholder is not recognised as one")
    elif isinstance(value, Denial):
        _require(denial(value.stream, value.seq, value.reason) == body, "denial re-encodes")
    else:
        assert isinstance(value, tuple)
        payload, request = value
        # An escape is tolerated on any payload (PROTOCOL.md §4.2 uses it
        # only for one starting with 0xFF); everything else is canonical.
        escaped = body[:2] == b"\xff\x00" and body[2:] == payload and request is None
        _require(escaped or wrap(payload, request) == body, "an envelope re-encodes")


def _envelope_seeds() -> tuple[bytes, ...]:
    return (
        b"plain payload",
        wrap(b"\xffstarts with the mark"),
        wrap(b"payload", Request("call", "service://payment", 5)),
        wrap(b"", Request("read", "feed://my-channel/2027")),
        refused("denied by policy"),
        denial(0x0102030405060708, 42, "no grant for write feed://x"),
    )


def _check_request(data: bytes, request: object) -> None:
    assert isinstance(request, Request)
    text = f"{request.action} {request.resource} {request.units}"
    _require(Request.parse(text) == request, "a capability request does not survive parsing")


def _stored_session() -> StoredSession:
    alice, bob = _keys("alice").identity, _keys("bob").identity
    return StoredSession(
        local_did=alice.did_text,
        peer_did=bob.did_text,
        peer_signing_key=bob.signing_public,
        resumption_secret=bytes(range(32)),
        lineage=bytes(range(32, 64)),
        pq_keyed_at=NOW - 3600.0,
        issued_at=NOW - 60.0,
        out_stream=7,
        in_stream=0xFFFF_FFFF_FFFF,
    )


def _check_stored(data: bytes, stored: object) -> None:
    assert isinstance(stored, StoredSession)
    _require(stored.to_bytes() == bytes(data), "a stored session re-encodes to other bytes")


@dataclass(frozen=True, slots=True)
class _Resumption:
    pending: PendingResume
    resume: bytes
    ack: bytes


@functools.cache
def _resumption() -> _Resumption:
    stored = _stored_session()
    pending = start_resume(stored, rng=SeededRandom("fuzz resume"), now=NOW)
    answer = answer_resume(pending.packet, stored, rng=SeededRandom("fuzz resume ack"), now=NOW)
    return _Resumption(pending, encode_packet(pending.packet), encode_packet(answer.reply))


_RESUME_REFUSES: Final = _HANDSHAKE_REFUSES


def _resume_answer(data: bytes) -> None:
    """The responder answers only the genuine RESUME: its MAC covers every
    field."""
    resumption = _resumption()
    packet = decode_packet(data)
    if not isinstance(packet, ResumePacket):
        raise MalformedMessage("not a RESUME")
    answer_resume(packet, _stored_session(), rng=SeededRandom("fuzz resume ack"), now=NOW)
    _require(bytes(data) == resumption.resume, "the responder accepted a forged RESUME")


@functools.cache
def _early_flight() -> bytes:
    """A genuine 0-RTT first flight (RESUME_EARLY) for the fuzz ticket."""
    stored = _stored_session()
    pending = start_resume(stored, rng=SeededRandom("fuzz resume early"), now=NOW)
    records: list[Record] = [Sync(7, 0, 9, 3), Message(0, b"early"), Message(1, b"data")]
    return encode_packet(early.seal(stored, pending.packet, records))


def _early_open(data: bytes) -> None:
    """The responder opens only the genuine RESUME_EARLY: the MAC covers the
    RESUME part, the AEAD (with those 90 bytes as associated data) the
    rest; and only a SYNC followed by messages is accepted."""
    packet = decode_packet(data)
    if not isinstance(packet, ResumeEarlyPacket):
        raise MalformedMessage("not a RESUME_EARLY")
    stored = _stored_session()
    answer_resume(packet.resume, stored, rng=SeededRandom("fuzz resume ack"), now=NOW)
    early.open_records(stored, packet)
    _require(bytes(data) == _early_flight(), "the responder opened a forged 0-RTT flight")


def _resume_finish(data: bytes) -> None:
    """The initiator accepts only the genuine RESUME_ACK."""
    resumption = _resumption()
    packet = decode_packet(data)
    if not isinstance(packet, ResumeAckPacket):
        raise MalformedMessage("not a RESUME_ACK")
    finish_resume(resumption.pending, packet)
    _require(bytes(data) == resumption.ack, "the initiator accepted a forged RESUME_ACK")


# ==========================================================================
# membrane/


def _trust_statement(data: bytes) -> TrustStatement:
    statement = TrustStatement.from_bytes(data)
    statement.verify()
    return statement


def _check_statement(data: bytes, statement: object) -> None:
    assert isinstance(statement, TrustStatement)
    _require(statement.to_bytes() == bytes(data), "a trust statement re-encodes")


def _statement_seeds() -> tuple[bytes, ...]:
    alice, bob = _keys("alice").identity, _keys("bob").identity
    return (
        TrustStatement.sign(alice, bob.did_text, 0.75, NOW).to_bytes(),
        TrustStatement.sign(bob, "did:web:example.org", -1.0, 0.0).to_bytes(),
        TrustStatement.sign(alice, bob.did_text, 0.0, NOW + 1).to_bytes(),
    )


_POLICY_SEED: Final = """\
# Membrane policy of the Berlin chapter's node.
version = 1
expires = 2027-06-30T00:00:00+02:00

[constraints]
min_trust = 0.2
max_units = 500

[groups]
berlin = [
    "did:key:z6MkoGkqLKJdo9UuTQixJrQZrt5PLLQuD9rsGNEbFjp8a7MP",  # anna
    "did:key:z6MksdGaijQZ2MeJ7gCfHoa8T5JBgx8aWQRSWiuZWTiHHEx7",
]
stewards = ["did:key:z6MkkBritvCu9Ca77zJKQn7VWynb9gEsq1SirCyEde6LR4Ci"]
"guests.2027" = []

[[grant]]
id = "public-feed"
peers = ["*"]
resource = "feed://berlin"
actions = ["read", "subscribe"]

[[grant]]
peers = ["group:berlin", "group:stewards"]
resource = "chapter://berlin/proposals/"
action = "write"
member_of = "berlin"

[[grant]]
id = "payments"
peers = ["group:berlin", "did:key:z6MkwZnBntPPrboZWizSsn4WLpND4cUBqauYuAQ7ewQ2P4KU"]
resource = "service://payment"
actions = ["call"]
quota = { units = 100, window = "1h" }
min_trust = 0.5
expires = 2027-03-31T23:59:59Z
"""


#: decode_record's first argument, chosen by the target's first input byte.
_AUDIT_KINDS: Final = ("transition", "access", "route", "unknown")
_AUDIT_SUBJECT: Final = "did:key:z6MkoGkqLKJdo9UuTQixJrQZrt5PLLQuD9rsGNEbFjp8a7MP"


def _audit_record(data: bytes) -> object:
    """``data[0]`` picks the kind, the rest is the JSON body (as text)."""
    if not data:
        raise MalformedMessage("empty")
    kind = _AUDIT_KINDS[data[0] % len(_AUDIT_KINDS)]
    return decode_record(kind, _AUDIT_SUBJECT, 1.5, as_text(data[1:]))


def _check_audit(data: bytes, record: object) -> None:
    encoded = encode_record(record)  # type: ignore[arg-type]
    _require(decode_record(*encoded) == record, "an audit record does not survive re-encoding")


def _audit_seeds() -> tuple[bytes, ...]:
    records = (
        TransitionRecord(
            _AUDIT_SUBJECT,
            State.IDLE,
            State.HANDSHAKE_INITIATED,
            Trigger.INITIATE_HANDSHAKE,
            "x",
            1.5,
        ),
        AccessRecord(_AUDIT_SUBJECT, False, "call", "service://pay", 5, "grant", "no", None, 1.5),
        RouteRecord(
            _AUDIT_SUBJECT, "192.0.2.1:1", "tcp", "192.0.2.2:2", "quic", ROUTE_MIGRATED, 1.5
        ),
    )
    out = []
    for record in records:
        kind, _, _, body = encode_record(record)
        out.append(bytes((_AUDIT_KINDS.index(kind),)) + body.encode())
    return tuple(out)


# ==========================================================================
# addresses


def _check_address(data: bytes, value: object) -> None:
    assert isinstance(value, tuple)
    host, port = value
    _require(parse_address(format_address(host, port), allow_zero_port=True) == value, "address")


_ADDRESS_SEEDS: Final = (b"127.0.0.1:7000", b"[::1]:7000", b"[fe80::1%eth0]:443", b"0.0.0.0:0")


def _peer_seeds() -> tuple[bytes, ...]:
    return (f"{_keys('alice').identity.did_text}@192.0.2.1:7000".encode(),)


# ==========================================================================
# The session manager (core/management/manager.py), fed whole datagrams


def packet_kind(data: bytes) -> str:
    """A short name for a packet ("INIT", "DATA", ...) without decoding it
    fully: what the tests use to pick packets out of an outbox."""
    if len(data) < 2:
        return "?"
    kind = data[1]
    if kind == PKT_HANDSHAKE and len(data) > 19:
        return {TYPE_INIT: "INIT", TYPE_RESPONSE: "RESPONSE", TYPE_FINISH: "FINISH"}.get(
            data[19], "HANDSHAKE"
        )
    names = {
        PKT_BUNDLE_REQUEST: "BUNDLE_REQ",
        PKT_BUNDLE: "BUNDLE",
        PKT_DATA: "DATA",
        PKT_RESUME: "RESUME",
        PKT_RESUME_ACK: "RESUME_ACK",
        PKT_RESUME_REJECT: "RESUME_REJ",
        PKT_RESUME_EARLY: "RESUME_EARLY",
    }
    return names.get(kind, "?")


class Duo:
    """Alice and Bob as two real nodes (:class:`SessionManager` each, on one
    virtual clock) whose packets move only when the caller moves them, so a
    test can stop a handshake at any message and feed a mutation instead.

    Deterministic: the same keys, and the same handshake bytes, every time
    (fresh prekey pools from :func:`_keys`, :data:`ENCAPSULATOR`).
    """

    #: Rounds of delivery per :meth:`run_until` or :meth:`settle` at most
    #: (a handshake takes three).
    MAX_STEPS: Final = 64

    def __init__(self, seed: str = "fuzz duo", config: SessionConfig | None = None) -> None:
        self.sim = Simulation(seed)
        self.alice = self.add("alice", "alice", config)
        self.bob = self.add("bob", "bob", config)

    def add(self, name: str, keys: str, config: SessionConfig | None = None) -> SimNode:
        """A node named ``name`` with the keys of ``keys`` ("alice"/"bob")."""
        return self.sim.add_node(
            name, party=_keys(keys).party(), encapsulator=ENCAPSULATOR, config=config
        )

    def outbox(self, node: SimNode) -> list[Outgoing]:
        """What ``node`` sends now (its timers run first, at the same time)."""
        node.manager.tick()
        return node.manager.datagrams_to_send()

    def feed(self, node: SimNode, data: bytes, source: str) -> list[SessionEvent]:
        """``data`` arrives at ``node`` from ``source``; returns its events."""
        node.manager.receive_datagram(data, source, PATHS[0])
        return node.manager.events()

    def run_until(self, kind: str, *nodes: SimNode) -> tuple[SimNode, bytes]:
        """Deliver packets between ``nodes`` until one of them sends a
        packet of ``kind``; returns the sender and that packet, undelivered."""
        found = self._pump(nodes, kind)
        if found is None:
            raise RuntimeError(f"no {kind} packet was sent")
        return found

    def settle(self, *nodes: SimNode) -> None:
        """Deliver packets between ``nodes`` until none is left."""
        self._pump(nodes, None)

    def _pump(self, nodes: Sequence[SimNode], kind: str | None) -> tuple[SimNode, bytes] | None:
        for _ in range(self.MAX_STEPS):
            moved = False
            for sender in nodes:
                for out in self.outbox(sender):
                    if kind is not None and packet_kind(out.data) == kind:
                        return sender, out.data
                    self.feed(self._node_at(out.address), out.data, sender.address)
                    moved = True
            if not moved:
                return None
        raise RuntimeError(f"the nodes still exchange packets after {self.MAX_STEPS} rounds")

    def _node_at(self, address: str) -> SimNode:
        for node in self.sim.nodes.values():
            if node.address == address:
                return node
        raise RuntimeError(f"no node at {address!r}")


def rejected(events: Sequence[SessionEvent]) -> list[PacketRejected]:
    """The rejections among ``events``."""
    return [event for event in events if isinstance(event, PacketRejected)]


@dataclass(frozen=True, slots=True)
class _ManagerStage:
    finish: bytes
    init: bytes


def _manager_stage(duo: Duo) -> _ManagerStage:
    """Bob has answered Alice's INIT and waits for her FINISH."""
    duo.alice.manager.establish(duo.bob.did)
    _, init = duo.run_until("INIT", duo.alice, duo.bob)
    duo.feed(duo.bob, init, duo.alice.address)
    _, finish = duo.run_until("FINISH", duo.bob, duo.alice)
    return _ManagerStage(finish, init)


def _session_manager(data: bytes) -> bool:
    """SessionManager.receive_datagram never raises; a datagram it rejects
    leaves Bob's half-open session as it was, so that Alice's FINISH still
    completes the handshake."""
    duo = Duo()
    stage = _manager_stage(duo)
    session = duo.bob.session(duo.alice)
    assert session is not None
    handshake, state = session.handshake, session.state
    prekeys = duo.bob.party.prekeys.to_bytes()
    events = duo.feed(duo.bob, bytes(data), "mallory")
    if not rejected(events):
        return True
    _require(
        duo.bob.session(duo.alice) is session
        and session.handshake is handshake
        and session.state is state
        and duo.bob.party.prekeys.to_bytes() == prekeys,
        "a rejected datagram changed Bob's session",
    )
    duo.feed(duo.bob, stage.finish, duo.alice.address)
    _require(session.state is State.ESTABLISHED, "FINISH no longer completes the handshake")
    return False


@functools.cache
def _manager_seeds() -> tuple[bytes, ...]:
    duo = Duo()
    stage = _manager_stage(duo)
    return (stage.finish, stage.init, *_packet_seeds())


# ==========================================================================
# The registry


def _decoder(
    name: str,
    entries: tuple[str, ...],
    decode: Callable[[bytes], object],
    seeds: Callable[[], tuple[bytes, ...]],
    refuses: tuple[type[L2SessionError], ...],
    *,
    verify: Callable[[bytes, object], None] | None = None,
    text: bool = False,
    max_len: int = 4096,
    cost: int = 1,
    tokens: tuple[bytes, ...] = (),
) -> FuzzTarget:
    """A pure decoder: ``refuses`` pass, ``verify`` checks what is accepted."""
    check = _refusing(decode, refuses, verify)
    return FuzzTarget(name, entries, check, seeds, refuses, text, max_len, cost, tokens)


def _text_decoder(
    name: str,
    entries: tuple[str, ...],
    decode: Callable[[str], object],
    seeds: Callable[[], tuple[bytes, ...]],
    refuses: tuple[type[L2SessionError], ...],
    *,
    verify: Callable[[bytes, object], None] | None = None,
    max_len: int = 4096,
    cost: int = 1,
    tokens: tuple[bytes, ...] = (),
) -> FuzzTarget:
    """A decoder of text, fed :func:`as_text` of the input."""
    return _decoder(
        name,
        entries,
        lambda data: decode(as_text(data)),
        seeds,
        refuses,
        verify=verify,
        text=True,
        max_len=max_len,
        cost=cost,
        tokens=tokens,
    )


def _handler(
    name: str,
    entries: tuple[str, ...],
    check: Callable[[bytes], bool],
    seeds: Callable[[], tuple[bytes, ...]],
    refuses: tuple[type[L2SessionError], ...],
    *,
    max_len: int = 4096,
    cost: int = 1,
) -> FuzzTarget:
    """A handler: ``check`` catches ``refuses`` itself, to compare its state
    before and after a refusal, and returns whether the input was accepted."""
    return FuzzTarget(name, entries, check, seeds, refuses, False, max_len, cost)


def _check_checkpoint(data: bytes, point: object) -> None:
    """An accepted checkpoint prints back to what it parses from."""
    assert isinstance(point, Checkpoint)
    _require(point.entry_id >= 1 and len(point.digest) == 32, "a checkpoint out of range")
    _require(Checkpoint.parse(str(point)) == point, "a checkpoint does not round-trip")


def _constant(*seeds: bytes) -> Callable[[], tuple[bytes, ...]]:
    return lambda: seeds


_M: Final = (MalformedMessage,)

_DID_TOKENS: Final = (b"did:", b"key:", b"web:", b"z6Mk", b"z6LS", b"%41", b":", b"@")
_JSON_TOKENS: Final = (b'"', b"{", b"}", b"[", b"]", b":", b",", b"null", b"true", b"\\u")
_DOCUMENT_TOKENS: Final = (
    *_JSON_TOKENS,
    *_DID_TOKENS,
    b'"id"',
    b'"type"',
    b'"controller"',
    b'"verificationMethod"',
    b'"publicKeyMultibase"',
    b'"publicKeyBase58"',
    b'"publicKeyJwk"',
    b'"authentication"',
    b'"keyAgreement"',
    b'"Multikey"',
    b'"JsonWebKey2020"',
    b'"kty"',
    b'"OKP"',
    b'"Ed25519"',
    b'"X25519"',
    b'"service"',
    b'"serviceEndpoint"',
    b"#key-1",
)
_KEYFILE_TOKENS: Final = (
    *_JSON_TOKENS,
    b'"format"',
    b'"l2session-identity"',
    b'"version"',
    b'"protection"',
    b'"passphrase"',
    b'"none"',
    b'"kdf"',
    b'"scrypt"',
    b'"salt"',
    b'"nonce"',
    b'"secret"',
    b"1024",
)
_POLICY_TOKENS: Final = (
    b"version = 1",
    b"[[grant]]",
    b"[groups]",
    b"[constraints]",
    b"peers",
    b"resource",
    b"actions",
    b"action",
    b"quota",
    b"units",
    b"window",
    b"min_trust",
    b"max_units",
    b"expires",
    b"member_of",
    b'"group:',
    b'"*"',
    b"2027-01-01T00:00:00Z",
    b"://",
    b'"""',
    b"'",
)
_AUDIT_TOKENS: Final = (
    *_JSON_TOKENS,
    b'"from"',
    b'"to"',
    b'"trigger"',
    b'"reason"',
    b'"units"',
    b'"allowed"',
    b'"grant"',
    b'"cause"',
    b'"migrated"',
    b'"established"',
    b"1e999",
    b"NaN",
)

#: Foreign peer names (identity/foreign.py) in every accepted spelling.
_FOREIGN_SEEDS: Final = (
    b"nostr:npub1k4qsp3j0h76z9ekuv0ve62gccjwhns87lpsvs26mtj4rj0lt3c3sj0fqgh",
    b"npub1k4qsp3j0h76z9ekuv0ve62gccjwhns87lpsvs26mtj4rj0lt3c3sj0fqgh",
    b"b54100c64fbfb422e6dc63d99d2918c49d79c0fef860c82b5b5caa393feb8e23",
    b"custom:loopback:alice",
)


def _check_foreign(data: bytes, result: object) -> None:
    """An accepted name has one canonical text, which parses to itself."""
    assert isinstance(result, ForeignIdentity)
    assert ForeignIdentity.parse(result.text) == result


TARGETS: Final[tuple[FuzzTarget, ...]] = (
    # wire/
    _decoder(
        "wire_packets",
        ("l2session.wire.packets:decode_packet",),
        decode_packet,
        _packet_seeds,
        _M,
        verify=_check_packet,
    ),
    _decoder(
        "wire_records",
        ("l2session.wire.records:decode_records",),
        _decode_records,
        _record_seeds,
        _M,
        verify=_check_records,
    ),
    # transports/
    _decoder(
        "framing_hello",
        ("l2session.transports.framing:decode_hello",),
        decode_hello,
        _constant(encode_hello(7000)[HEADER:], encode_hello(0)[HEADER:]),
        _M,
        verify=_check_hello,
        max_len=64,
    ),
    _handler(
        "framing_stream",
        ("l2session.transports.framing:FrameDecoder.feed",),
        _frame_stream,
        _frame_seeds,
        _M,
    ),
    _decoder(
        "discovery_message",
        (
            "l2session.transports.discovery_wire:decode_message",
            "l2session.transports.discovery_wire:_decode",
        ),
        decode_message,
        _discovery_seeds,
        _M,
        verify=_check_discovery,
        max_len=2 * MAX_DATAGRAM,
    ),
    _decoder(
        "wire_relay",
        ("l2session.wire.relay:decode_relay", "l2session.wire.relay:_decode"),
        decode_relay,
        _relay_seeds,
        _M,
        verify=_check_relay,
        max_len=4096,
    ),
    _handler(
        "relay_server",
        ("l2session.transports.relay_server:RelayServer.receive",),
        _relay_server,
        _relay_seeds,
        (),
        max_len=4096,
    ),
    _handler(
        "discovery_responder",
        ("l2session.transports.discovery_wire:DiscoveryResponder.receive",),
        _discovery_responder,
        _discovery_seeds,
        (),
        max_len=2 * MAX_DATAGRAM,
    ),
    _text_decoder(
        "address",
        ("l2session.transports.address:parse_address",),
        lambda text: parse_address(text, allow_zero_port=True),
        _constant(*_ADDRESS_SEEDS),
        (InvalidAddress,),
        verify=_check_address,
        max_len=256,
        tokens=(b"[", b"]:", b"::", b"%", b"127.0.0.1", b":65535", b"::ffff:"),
    ),
    _text_decoder(
        "audit_checkpoint",
        ("l2session.membrane.audit:Checkpoint.parse",),
        Checkpoint.parse,
        _constant(b"#1 " + b"ab" * 32, b"42:" + b"0f" * 32, b"#9223372036854775807 " + b"00" * 32),
        (MalformedMessage,),
        verify=_check_checkpoint,
        max_len=256,
        tokens=(b"#", b":", b" ", b"0x", b"-1"),
    ),
    _text_decoder(
        "foreign_identity",
        ("l2session.identity.foreign:ForeignIdentity.parse",),
        ForeignIdentity.parse,
        _constant(*_FOREIGN_SEEDS),
        (InvalidForeignIdentity,),
        verify=_check_foreign,
        max_len=256,
        tokens=(b"nostr:", b"npub1", b"custom:", b"qpzry9x8", b"0123456789abcdef"),
    ),
    _text_decoder(
        "bridge_protocol",
        ("l2session.identity.foreign:BridgeProtocol.parse",),
        BridgeProtocol.parse,
        _constant(b"nostr", b"activitypub", b"xmtp", b"custom:echo", b"Custom:x.y-z"),
        (BridgeUnavailable,),
        max_len=128,
        tokens=(b"custom:", b"nostr"),
    ),
    _text_decoder(
        "peer",
        ("l2session.runtime.directory:parse_peer",),
        parse_peer,
        _peer_seeds,
        (ConfigError, InvalidDid),
        max_len=1024,
        tokens=(*_DID_TOKENS, b"127.0.0.1:", b"[::1]:"),
    ),
    # crypto/
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
    # identity/
    _text_decoder(
        "did",
        ("l2session.identity.did:Did.parse",),
        Did.parse,
        _did_seeds,
        (InvalidDid,),
        verify=_check_did,
        max_len=1024,
        tokens=_DID_TOKENS,
    ),
    _text_decoder(
        "did_key",
        ("l2session.identity.did:ed25519_from_did_key",),
        ed25519_from_did_key,
        _did_seeds,
        (InvalidDid, UnsupportedKeyType),
        verify=_check_did_key,
        max_len=1024,
        tokens=_DID_TOKENS,
    ),
    _decoder(
        "did_varint",
        ("l2session.identity.did:decode_varint",),
        decode_varint,
        _constant(b"\xed\x01", b"\x00", b"\x80\x24", b"\xff" * 8 + b"\x7f"),
        _M,
        verify=_check_varint,
        max_len=32,
    ),
    _text_decoder(
        "did_multibase",
        ("l2session.identity.did:decode_multibase_key",),
        decode_multibase_key,
        _multibase_seeds,
        _M,
        verify=_check_multibase,
        max_len=8192,
    ),
    _text_decoder(
        "did_b64url",
        ("l2session.identity.did:b64url_decode",),
        b64url_decode,
        _constant(b"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", b"AQ", b"AQI"),
        _M,
        verify=_check_b64url,
        max_len=256,
    ),
    _text_decoder(
        "base58",
        ("l2session.identity.base58:decode",),
        base58.decode,
        _constant(b"6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", b"111z", b"1"),
        _M,
        verify=_check_base58,
        max_len=512,
    ),
    _decoder(
        "did_document",
        ("l2session.identity.document:DidDocument.from_json",),
        _document,
        _document_seeds,
        (DidResolutionError,),
        verify=_check_document,
        max_len=16384,
        tokens=_DOCUMENT_TOKENS,
        text=True,
    ),
    _decoder(
        "keyfile",
        ("l2session.identity.keyfile:decode_identity",),
        _keyfile,
        _keyfile_seeds,
        (KeyFileError,),
        verify=_check_keyfile,
        max_len=4096,
        cost=3,
        tokens=_KEYFILE_TOKENS,
    ),
    _decoder(
        "prekey_bundle",
        ("l2session.identity.bundle:PrekeyBundle.decode",),
        _bundle,
        _bundle_seeds,
        (MalformedMessage, AuthenticationFailed, PrekeyError, IdentityError),
        verify=_check_encoding,
        max_len=16384,
    ),
    _decoder(
        "prekey_store",
        ("l2session.identity.prekeys:PrekeyStore.from_bytes",),
        _prekey_store,
        _prekey_store_seeds,
        _M,
        verify=_check_prekey_store,
        max_len=16384,
        cost=2,
    ),
    # core/
    _decoder(
        "envelope",
        ("l2session.core.link.envelope:unwrap",),
        unwrap,
        _envelope_seeds,
        _M,
        verify=_check_envelope,
        max_len=2048,
    ),
    _text_decoder(
        "capability_request",
        ("l2session.core.link.envelope:Request.parse",),
        Request.parse,
        _constant(b"call service://payment 5", b"read feed://my-channel"),
        (ConfigError,),
        verify=_check_request,
        max_len=1200,
        tokens=(b"call ", b"read ", b"://", b"%2e", b"..", b"/", b" 1000000"),
    ),
    _decoder(
        "stored_session",
        ("l2session.core.lifecycle.resumption:StoredSession.from_bytes",),
        StoredSession.from_bytes,
        lambda: (_stored_session().to_bytes(),),
        _M,
        verify=_check_stored,
        max_len=2048,
    ),
    _decoder(
        "resume_answer",
        ("l2session.core.lifecycle.resumption:answer_resume",),
        _resume_answer,
        lambda: (_resumption().resume,),
        _RESUME_REFUSES,
        max_len=256,
    ),
    _decoder(
        "resume_early",
        ("l2session.core.lifecycle.early:open_records",),
        _early_open,
        lambda: (_early_flight(),),
        _RESUME_REFUSES,
        max_len=512,
    ),
    _decoder(
        "resume_finish",
        ("l2session.core.lifecycle.resumption:finish_resume",),
        _resume_finish,
        lambda: (_resumption().ack,),
        _RESUME_REFUSES,
        max_len=256,
    ),
    _handler(
        "session_manager",
        ("l2session.core.management.manager:SessionManager.receive_datagram",),
        _session_manager,
        _manager_seeds,
        (),
        max_len=8192,
        cost=25,
    ),
    # membrane/
    _decoder(
        "trust_statement",
        ("l2session.membrane.trust_statement:TrustStatement.from_bytes",),
        _trust_statement,
        _statement_seeds,
        (MalformedMessage, InvalidTrustStatement),
        verify=_check_statement,
        max_len=2048,
    ),
    _text_decoder(
        "policy_file",
        ("l2session.membrane.policy_file:parse_policy",),
        parse_policy,
        _constant(_POLICY_SEED.encode(), b"version = 1\n"),
        (PolicyError,),
        max_len=8192,
        cost=2,
        tokens=_POLICY_TOKENS,
    ),
    _decoder(
        "audit_record",
        ("l2session.membrane.audit:decode_record",),
        _audit_record,
        _audit_seeds,
        _M,
        verify=_check_audit,
        max_len=2048,
        tokens=_AUDIT_TOKENS,
    ),
)

#: The targets by name.
BY_NAME: Final[dict[str, FuzzTarget]] = {target.name: target for target in TARGETS}


def target(name: str) -> FuzzTarget:
    """The target called ``name`` (ConfigError listing the names if none)."""
    found = BY_NAME.get(name)
    if found is None:
        raise ConfigError(f"no fuzz target {name!r}; targets: {', '.join(BY_NAME)}")
    return found


__all__ = [
    "BY_NAME",
    "ENCAPSULATOR",
    "NOW",
    "POLICY",
    "TARGETS",
    "Duo",
    "FuzzTarget",
    "PropertyViolation",
    "ReplayableEncapsulator",
    "as_text",
    "packet_kind",
    "rejected",
    "target",
]
