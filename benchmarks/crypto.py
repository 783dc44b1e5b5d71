"""Crypto benchmark: the PQXDH handshake against its floor, the ratchet against ``doubleratchet``.

What one run measures (``python benchmarks/crypto.py [--json] [--quick]``):

``handshake_floor_us``
    The least a handshake can cost with these primitives: the X25519, ML-KEM-768
    and Ed25519 operations one full handshake (INIT -> RESPONSE -> FINISH, with a
    one-time prekey, both sides) performs, each priced at the median cost of the
    bare ``cryptography`` calls it consists of.
``handshake_us``
    The real handshake, both sides in this process on one core: median
    microseconds for the four steps (``InitiatorHandshake.start``,
    ``ResponderHandshake.receive_init``, ``.receive_response``,
    ``.receive_finish``), DID-key lookups through the default resolver included.
``handshake_floor_ratio``
    floor / real: the share of the handshake spent in the primitives themselves
    (target >= 0.8; the rest is Python: encoding, transcripts, KDFs, checks).
``ratchet_us_1k``
    Steady-state one-way stream: one side encrypts a 1,024-byte message, the
    other decrypts it; median microseconds per encrypt + decrypt (target <= 20).
``doubleratchet_us_1k`` / ``ratchet_speedup``
    The same stream through the ``doubleratchet`` package (Syndace, PyPI, the
    ``bench`` extra) in its recommended configuration, measured in the same run
    because these machines are noisy; speedup = theirs / ours (target >= 7).

Why the floor is computed this way.  A guessed operation count would silently
go stale when the protocol changes, so the count is *observed*: every function
of :mod:`l2session.crypto.primitives` (through which every asymmetric operation
of l2session goes, called as ``primitives.name(...)``) is temporarily replaced
by a counting wrapper while one real handshake runs.  Only outermost calls count
(``x25519_generate`` calling ``x25519_from_private`` is one key generation).  A
primitive the price list below does not know, or an inner call its price does
not cover, stops the benchmark instead of being left out of the floor.  Each
known operation is then priced by timing the raw ``cryptography`` calls it
makes (key parsing included where the library parses; Ed25519 verification on
a pre-parsed key, because validated keys are cached, and on messages of the
length the handshake signs), and floor = sum of count x median cost.

Noise control (two noisy cores): warm-up first; then several rounds, each
timing real handshakes with one timing of every raw operation right after
each handshake (floor and handshake see the same machine state), then both
ratchets in alternating chunks; every figure is the median over all rounds,
and the garbage collector is off inside timed loops.  Plaintexts are checked after
every decryption, so broken code cannot be measured by accident.  The exit
code is 0 whether or not a target is met: a benchmark reports, it does not
fail.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import cryptography
import doubleratchet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from l2session.crypto import primitives
from l2session.crypto.pqxdh import HandshakeResult, InitiatorHandshake, ResponderHandshake
from l2session.crypto.prekey_records import OneTimePrekey, SignedPrekeySet
from l2session.crypto.ratchet import DoubleRatchet
from l2session.identity.prekeys import PrekeyPolicy
from l2session.identity.resolver import DidResolver, default_resolver, resolve_signing_key
from l2session.runtime.entropy import SystemRandom
from l2session.testing.parties import Party

MESSAGE_SIZE: Final = 1024

#: The operations the floor prices, and the inner primitive calls each one's
#: price covers (anything else inside them stops the benchmark).
FLOOR_OPS: Final[dict[str, frozenset[str]]] = {
    "x25519_generate": frozenset({"x25519_from_private"}),
    "x25519": frozenset(),
    "mlkem_generate": frozenset({"mlkem_from_seed"}),
    # The encapsulation price includes parsing the public key.
    "mlkem_encapsulate": frozenset({"openssl_encapsulate", "mlkem_public_key"}),
    "mlkem_decapsulate": frozenset(),
    "ed25519_sign": frozenset(),
    # ed25519_public_key is lru-cached; a cache miss is detected separately.
    "ed25519_verify": frozenset({"ed25519_public_key"}),
}
#: Functions of ``primitives`` that do no asymmetric work: not priced, and
#: free to be imported by name (pqxdh imports ``ct_equal``).
NOT_ASYMMETRIC: Final = frozenset({"ct_equal"})
_SIGNING_OPS: Final = ("ed25519_sign", "ed25519_verify")

TARGETS: Final[dict[str, tuple[str, float]]] = {
    "handshake_floor_ratio": (">=", 0.8),
    "ratchet_us_1k": ("<=", 20.0),
    "ratchet_speedup": (">=", 7.0),
}


class BenchmarkError(RuntimeError):
    """The benchmark cannot measure what it claims to (never a missed target)."""


@dataclass(frozen=True, slots=True)
class Config:
    """Iteration counts.  Each round times ``handshakes_per_round`` real
    handshakes, each followed by one timing of every raw operation (so floor
    and handshake see the same machine), then ``chunks_per_round`` chunks of
    both ratchets, ours and theirs alternating."""

    name: str
    rounds: int
    warmup_handshakes: int
    handshakes_per_round: int
    warmup_messages: int
    chunks_per_round: int
    stream_per_chunk: int
    pingpong_per_chunk: int


DEFAULT: Final = Config(
    name="default",
    rounds=10,
    warmup_handshakes=30,
    handshakes_per_round=300,
    warmup_messages=300,
    chunks_per_round=10,
    stream_per_chunk=200,
    pingpong_per_chunk=40,
)
QUICK: Final = Config(
    name="quick",
    rounds=2,
    warmup_handshakes=3,
    handshakes_per_round=15,
    warmup_messages=10,
    chunks_per_round=2,
    stream_per_chunk=25,
    pingpong_per_chunk=10,
)


# ==========================================================================
# Timing helpers


@contextmanager
def _gc_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _median_us(samples_ns: list[int]) -> float:
    return statistics.median(samples_ns) / 1000.0


def _p90_us(samples_ns: list[int]) -> float:
    ordered = sorted(samples_ns)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)] / 1000.0


# ==========================================================================
# Counting the primitive operations of one handshake


@dataclass(slots=True)
class OpCount:
    """What one run under :func:`_counting_primitives` observed."""

    outer: Counter[str] = field(default_factory=Counter)
    inner: Counter[tuple[str, str]] = field(default_factory=Counter)
    message_bytes: dict[str, list[int]] = field(default_factory=dict)


def _primitive_functions() -> dict[str, Callable[..., Any]]:
    """Every function defined in ``primitives`` (the lru-cached one included)."""
    return {
        name: obj
        for name, obj in vars(primitives).items()
        if callable(obj)
        and not isinstance(obj, type)
        and getattr(obj, "__module__", None) == primitives.__name__
    }


def _check_no_bypass(functions: dict[str, Callable[..., Any]]) -> None:
    """Refuse to count if a module imported a primitive by name: its calls
    would bypass the counting wrappers (and the floor)."""
    by_id = {id(fn): name for name, fn in functions.items() if name not in NOT_ASYMMETRIC}
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("l2session.") or module is primitives:
            continue
        for attr, value in vars(module).items():
            if id(value) in by_id:
                raise BenchmarkError(
                    f"{module_name}.{attr} is primitives.{by_id[id(value)]} imported by name; "
                    "its calls would escape the operation count (call it as primitives.name)"
                )


@contextmanager
def _counting_primitives() -> Iterator[OpCount]:
    originals = _primitive_functions()
    _check_no_bypass(originals)
    record = OpCount()
    stack: list[str] = []

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        def counted(*args: Any, **kwargs: Any) -> Any:
            if stack:
                record.inner[(stack[0], name)] += 1
            else:
                record.outer[name] += 1
                if name in _SIGNING_OPS:
                    message = signature.bind(*args, **kwargs).arguments["message"]
                    record.message_bytes.setdefault(name, []).append(len(message))
            stack.append(name)
            try:
                return fn(*args, **kwargs)
            finally:
                stack.pop()

        return counted

    for name, fn in originals.items():
        setattr(primitives, name, wrap(name, fn))
    try:
        yield record
    finally:
        for name, fn in originals.items():
            setattr(primitives, name, fn)


def _validate_count(record: OpCount) -> None:
    for name, count in sorted(record.outer.items()):
        if name not in FLOOR_OPS and name not in NOT_ASYMMETRIC:
            raise BenchmarkError(
                f"the handshake called primitives.{name} {count}x and the floor has no price "
                "for it; add its raw cryptography cost to benchmarks/crypto.py "
                "(ed25519_public_key here means a key-cache miss after warm-up)"
            )
    for (outer, inner), count in sorted(record.inner.items()):
        if outer in FLOOR_OPS and inner not in FLOOR_OPS[outer]:
            raise BenchmarkError(
                f"primitives.{outer} called primitives.{inner} {count}x, which its floor price "
                "does not cover"
            )
    for name in FLOOR_OPS:
        if record.outer[name] == 0:
            raise BenchmarkError(f"the handshake performed no {name}; is the protocol intact?")


# ==========================================================================
# The real handshake


@dataclass(frozen=True, slots=True)
class _Prepared:
    signed_prekeys: SignedPrekeySet
    one_time: OneTimePrekey
    now: float


class _Handshakes:
    """Alice initiates, Bob (1,000 one-time prekeys, refilled outside the
    timed region) responds; both look keys up through one default resolver."""

    def __init__(self, rng: SystemRandom) -> None:
        now = time.time()
        self.rng = rng
        self.resolver: DidResolver = default_resolver()
        self.alice = Party.create(rng, now=now)
        self.bob = Party.create(
            rng,
            now=now,
            policy=PrekeyPolicy(one_time_pool_size=1000, one_time_refill_threshold=500),
        )
        self.bob_did = self.bob.did
        resolver = self.resolver
        self._lookup: Callable[[str], bytes] = lambda did: resolve_signing_key(resolver, did)

    def prepare(self) -> _Prepared:
        """Untimed: refill Bob's pool if due, take his bundle and a one-time key."""
        now = time.time()
        self.bob.prekeys.maintain(rng=self.rng, now=now)
        bundle = self.bob.prekeys.bundle()
        one_time = bundle.pick_one_time(self.rng)
        if one_time is None:
            raise BenchmarkError("the responder's one-time prekey pool is empty")
        return _Prepared(bundle.signed_prekeys, one_time, now)

    def run(self, prepared: _Prepared) -> tuple[HandshakeResult, HandshakeResult]:
        """Timed: INIT -> RESPONSE -> FINISH, both sides."""
        alice, bob, rng, now = self.alice, self.bob, self.rng, prepared.now
        initiator, init = InitiatorHandshake.start(
            local=alice.identity,
            peer_did=self.bob_did,
            peer_signing_key=resolve_signing_key(self.resolver, self.bob_did),
            signed_prekeys=prepared.signed_prekeys,
            one_time_prekey=prepared.one_time,
            rng=rng,
            now=now,
        )
        responder, response = ResponderHandshake.receive_init(
            init,
            local=bob.identity,
            prekeys=bob.prekeys,
            peer_signing_key=self._lookup,
            guard=bob.guard,
            rng=rng,
            now=now,
        )
        initiator_result, finish = initiator.receive_response(response)
        responder_result = responder.receive_finish(finish)
        return initiator_result, responder_result

    def once(self) -> tuple[HandshakeResult, HandshakeResult]:
        results = self.run(self.prepare())
        _check_handshake(*results)
        return results


def _check_handshake(initiator: HandshakeResult, responder: HandshakeResult) -> None:
    if (
        initiator.session_id != responder.session_id
        or initiator.handshake_hash != responder.handshake_hash
        or initiator.root_key != responder.root_key
        or not (initiator.used_one_time_prekey and responder.used_one_time_prekey)
    ):
        raise BenchmarkError("the two sides of a handshake disagree")


def _time_handshake_round(
    handshakes: _Handshakes, raw: dict[str, Callable[[], object]], n: int
) -> tuple[list[int], dict[str, list[int]], list[int]]:
    """``n`` real handshakes, each followed by one timing of every raw
    operation and of a no-op call: ``(handshakes, operations, no-op)``."""
    clock = time.perf_counter_ns
    timed: list[int] = []
    ops: dict[str, list[int]] = {name: [] for name in raw}
    timer: list[int] = []
    for _ in range(n):
        prepared = handshakes.prepare()
        start = clock()
        results = handshakes.run(prepared)
        timed.append(clock() - start)
        _check_handshake(*results)
        for name, operation in raw.items():
            start = clock()
            operation()
            ops[name].append(clock() - start)
        start = clock()
        _nothing()
        timer.append(clock() - start)
    return timed, ops, timer


def _count_handshake(handshakes: _Handshakes) -> OpCount:
    key_cache = primitives.ed25519_public_key
    prepared = handshakes.prepare()
    misses = key_cache.cache_info().misses
    with _counting_primitives() as record:
        results = handshakes.run(prepared)
    _check_handshake(*results)
    if key_cache.cache_info().misses != misses:
        raise BenchmarkError(
            "an Ed25519 key was parsed during the counted handshake despite the warm-up; "
            "the floor prices verification on cached keys"
        )
    _validate_count(record)
    return record


# ==========================================================================
# Raw cryptography operations (the floor's price list)


def _mean_length(record: OpCount, name: str) -> int:
    return round(statistics.fmean(record.message_bytes[name]))


def _raw_operations(record: OpCount) -> dict[str, Callable[[], object]]:
    """For each floor operation, the bare ``cryptography`` calls it makes."""
    x_secret = os.urandom(32)
    x_own = X25519PrivateKey.from_private_bytes(os.urandom(32))
    x_peer = X25519PrivateKey.generate().public_key().public_bytes_raw()
    kem_seed = os.urandom(64)
    kem_own = MLKEM768PrivateKey.from_seed_bytes(os.urandom(64))
    kem_public = kem_own.public_key().public_bytes_raw()
    _, kem_ciphertext = kem_own.public_key().encapsulate()
    ed_own = Ed25519PrivateKey.from_private_bytes(os.urandom(32))
    ed_public = ed_own.public_key()  # pre-parsed: validated keys are cached
    sign_message = os.urandom(_mean_length(record, "ed25519_sign"))
    verify_message = os.urandom(_mean_length(record, "ed25519_verify"))
    verify_signature = ed_own.sign(verify_message)

    def x25519_generate() -> object:
        return X25519PrivateKey.from_private_bytes(x_secret).public_key().public_bytes_raw()

    def x25519() -> object:
        return x_own.exchange(X25519PublicKey.from_public_bytes(x_peer))

    def mlkem_generate() -> object:
        return MLKEM768PrivateKey.from_seed_bytes(kem_seed).public_key().public_bytes_raw()

    def mlkem_encapsulate() -> object:
        return MLKEM768PublicKey.from_public_bytes(kem_public).encapsulate()

    def mlkem_decapsulate() -> object:
        return kem_own.decapsulate(kem_ciphertext)

    def ed25519_sign() -> object:
        return ed_own.sign(sign_message)

    def ed25519_verify() -> object:
        ed_public.verify(verify_signature, verify_message)
        return None

    operations: dict[str, Callable[[], object]] = {
        "x25519_generate": x25519_generate,
        "x25519": x25519,
        "mlkem_generate": mlkem_generate,
        "mlkem_encapsulate": mlkem_encapsulate,
        "mlkem_decapsulate": mlkem_decapsulate,
        "ed25519_sign": ed25519_sign,
        "ed25519_verify": ed25519_verify,
    }
    if set(operations) != set(FLOOR_OPS):
        raise BenchmarkError("the raw operation list and FLOOR_OPS differ")
    return operations


def _nothing() -> object:
    return None


# ==========================================================================
# Ratchets: ours


def _messages(count: int = 64) -> list[bytes]:
    return [os.urandom(MESSAGE_SIZE) for _ in range(count)]


def _ours_transfer(sender: DoubleRatchet, receiver: DoubleRatchet, plaintext: bytes) -> None:
    if receiver.decrypt(sender.encrypt(plaintext)) != plaintext:
        raise BenchmarkError("l2session ratchet: decrypted plaintext differs")


def _ours_pair(handshakes: _Handshakes) -> tuple[DoubleRatchet, DoubleRatchet]:
    """``(initiator, responder)`` ratchets of a fresh handshake, each past its
    first DH step (the responder speaks first, then the initiator)."""
    initiator, responder = handshakes.once()
    a, b = initiator.ratchet, responder.ratchet
    _ours_transfer(b, a, os.urandom(MESSAGE_SIZE))
    _ours_transfer(a, b, os.urandom(MESSAGE_SIZE))
    return a, b


def _time_ours(
    a: DoubleRatchet, b: DoubleRatchet, messages: list[bytes], n: int, *, pingpong: bool
) -> list[int]:
    clock = time.perf_counter_ns
    samples: list[int] = []
    sender, receiver = a, b
    for i in range(n):
        plaintext = messages[i % len(messages)]
        start = clock()
        received = receiver.decrypt(sender.encrypt(plaintext))
        samples.append(clock() - start)
        if received != plaintext:
            raise BenchmarkError("l2session ratchet: decrypted plaintext differs")
        if pingpong:
            sender, receiver = receiver, sender
    return samples


# ==========================================================================
# Ratchets: the doubleratchet package, in its recommended configuration
# (as in its examples/dr_chat.py, with Curve25519 and SHA-256 throughout).


class _DrDiffieHellman(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
    """X25519 DH ratchet (the package's recommended Curve25519 implementation)."""


class _DrAead(aead_aes_hmac.AEAD):
    """AES-256-CBC + HMAC-SHA-256, keys and IV from HKDF-SHA-256."""

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"l2session benchmark message key material"


class _DrRootKdf(kdf_hkdf.KDF):
    """Root chain: HKDF-SHA-256 (Signal's recommended KDF_RK)."""

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"l2session benchmark root chain"


class _DrMessageKdf(kdf_separate_hmacs.KDF):
    """Message chains: HMAC-SHA-256 with separate constants (Signal's KDF_CK)."""

    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


class _DrRatchet(doubleratchet.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        return (
            associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(8, "big")
            + header.sending_chain_length.to_bytes(8, "big")
        )


_DR_CONFIG: Final[dict[str, Any]] = {
    "diffie_hellman_ratchet_class": _DrDiffieHellman,
    "root_chain_kdf": _DrRootKdf,
    "message_chain_kdf": _DrMessageKdf,
    "message_chain_constant": b"\x01\x02",
    "dos_protection_threshold": 100,
    "max_num_skipped_message_keys": 1000,
    "aead": _DrAead,
}


async def _dr_transfer(
    sender: _DrRatchet, receiver: _DrRatchet, plaintext: bytes, ad: bytes
) -> None:
    received = await receiver.decrypt_message(await sender.encrypt_message(plaintext, ad), ad)
    if received != plaintext:
        raise BenchmarkError("doubleratchet: decrypted plaintext differs")


async def _dr_pair(ad: bytes) -> tuple[_DrRatchet, _DrRatchet]:
    """``(alice, bob)``, each past its first DH step (Alice, Bob, Alice speak)."""
    shared_secret = os.urandom(32)
    bob_key = X25519PrivateKey.generate()
    first = os.urandom(MESSAGE_SIZE)
    alice, initial = await _DrRatchet.encrypt_initial_message(
        shared_secret=shared_secret,
        recipient_ratchet_pub=bob_key.public_key().public_bytes_raw(),
        message=first,
        associated_data=ad,
        **_DR_CONFIG,
    )
    bob, received = await _DrRatchet.decrypt_initial_message(
        shared_secret=shared_secret,
        own_ratchet_priv=bob_key.private_bytes_raw(),
        message=initial,
        associated_data=ad,
        **_DR_CONFIG,
    )
    if received != first:
        raise BenchmarkError("doubleratchet: initial message differs")
    await _dr_transfer(bob, alice, os.urandom(MESSAGE_SIZE), ad)
    await _dr_transfer(alice, bob, os.urandom(MESSAGE_SIZE), ad)
    return alice, bob


async def _time_dr(
    a: _DrRatchet, b: _DrRatchet, messages: list[bytes], n: int, ad: bytes, *, pingpong: bool
) -> list[int]:
    clock = time.perf_counter_ns
    samples: list[int] = []
    sender, receiver = a, b
    for i in range(n):
        plaintext = messages[i % len(messages)]
        start = clock()
        received = await receiver.decrypt_message(await sender.encrypt_message(plaintext, ad), ad)
        samples.append(clock() - start)
        if received != plaintext:
            raise BenchmarkError("doubleratchet: decrypted plaintext differs")
        if pingpong:
            sender, receiver = receiver, sender
    return samples


# ==========================================================================
# The run


@dataclass(slots=True)
class _Samples:
    ops: dict[str, list[int]] = field(default_factory=dict)
    timer: list[int] = field(default_factory=list)
    handshakes: list[int] = field(default_factory=list)
    stream: list[int] = field(default_factory=list)
    dr_stream: list[int] = field(default_factory=list)
    pingpong: list[int] = field(default_factory=list)
    dr_pingpong: list[int] = field(default_factory=list)
    round_ratios: list[float] = field(default_factory=list)


def _op_costs_us(ops: dict[str, list[int]], timer: list[int]) -> dict[str, float]:
    """Median cost of each raw operation, less the cost of timing a no-op call."""
    overhead = _median_us(timer)
    return {name: max(_median_us(samples) - overhead, 0.0) for name, samples in ops.items()}


def _floor_us(counts: dict[str, int], costs: dict[str, float]) -> float:
    return sum(count * costs[name] for name, count in counts.items())


def _measure(config: Config) -> dict[str, Any]:
    started = time.perf_counter()
    rng = SystemRandom()
    handshakes = _Handshakes(rng)
    for _ in range(config.warmup_handshakes):  # imports, OpenSSL, resolver and key caches
        handshakes.once()
    record = _count_handshake(handshakes)
    counts = {name: record.outer[name] for name in FLOOR_OPS}
    raw = _raw_operations(record)

    messages = _messages()
    ad = os.urandom(32)  # doubleratchet's session associated data (ours: the handshake hash)
    stream_pair = _ours_pair(handshakes)
    pingpong_pair = _ours_pair(handshakes)
    samples = _Samples(ops={name: [] for name in raw})
    warm = config.warmup_messages

    with asyncio.Runner() as runner:  # one event loop for every doubleratchet coroutine
        dr_stream_pair = runner.run(_dr_pair(ad))
        dr_pingpong_pair = runner.run(_dr_pair(ad))

        # Warm-up of everything timed below (results discarded).
        _time_handshake_round(handshakes, raw, max(3, config.warmup_handshakes // 3))
        _time_ours(*stream_pair, messages, warm, pingpong=False)
        _time_ours(*pingpong_pair, messages, warm, pingpong=True)
        runner.run(_time_dr(*dr_stream_pair, messages, warm, ad, pingpong=False))
        runner.run(_time_dr(*dr_pingpong_pair, messages, warm, ad, pingpong=True))

        for _ in range(config.rounds):
            with _gc_paused():
                round_handshakes, round_ops, round_timer = _time_handshake_round(
                    handshakes, raw, config.handshakes_per_round
                )
            samples.handshakes += round_handshakes
            for name, values in round_ops.items():
                samples.ops[name] += values
            samples.timer += round_timer
            round_floor = _floor_us(counts, _op_costs_us(round_ops, round_timer))
            samples.round_ratios.append(round_floor / _median_us(round_handshakes))

            n_stream, n_pingpong = config.stream_per_chunk, config.pingpong_per_chunk
            for _ in range(config.chunks_per_round):
                with _gc_paused():
                    samples.stream += _time_ours(*stream_pair, messages, n_stream, pingpong=False)
                    samples.dr_stream += runner.run(
                        _time_dr(*dr_stream_pair, messages, n_stream, ad, pingpong=False)
                    )
                    samples.pingpong += _time_ours(
                        *pingpong_pair, messages, n_pingpong, pingpong=True
                    )
                    samples.dr_pingpong += runner.run(
                        _time_dr(*dr_pingpong_pair, messages, n_pingpong, ad, pingpong=True)
                    )

    costs = _op_costs_us(samples.ops, samples.timer)
    floor = _floor_us(counts, costs)
    real = _median_us(samples.handshakes)
    ratchet = _median_us(samples.stream)
    theirs = _median_us(samples.dr_stream)
    pingpong = _median_us(samples.pingpong)
    theirs_pingpong = _median_us(samples.dr_pingpong)
    figures: dict[str, Any] = {
        "handshake_floor_us": round(floor, 1),
        "handshake_us": round(real, 1),
        "handshake_floor_ratio": round(floor / real, 3),
        "ratchet_us_1k": round(ratchet, 2),
        "doubleratchet_us_1k": round(theirs, 2),
        "ratchet_speedup": round(theirs / ratchet, 2),
        # extras
        "handshake_ops": counts,
        "handshake_inner_primitive_calls": {
            f"{outer} > {inner}": count for (outer, inner), count in sorted(record.inner.items())
        },
        "handshake_signed_message_bytes": {
            name: record.message_bytes[name] for name in _SIGNING_OPS
        },
        "op_costs_us": {name: round(cost, 2) for name, cost in costs.items()},
        "op_costs_p90_us": {name: round(_p90_us(s), 2) for name, s in samples.ops.items()},
        "op_timer_overhead_us": round(_median_us(samples.timer), 3),
        "handshake_floor_terms_us": {
            name: round(counts[name] * costs[name], 1) for name in FLOOR_OPS
        },
        "handshake_p90_us": round(_p90_us(samples.handshakes), 1),
        "handshake_floor_ratio_by_round": [round(r, 3) for r in samples.round_ratios],
        "ratchet_p90_us_1k": round(_p90_us(samples.stream), 2),
        "doubleratchet_p90_us_1k": round(_p90_us(samples.dr_stream), 2),
        "ratchet_pingpong_us_1k": round(pingpong, 2),
        "doubleratchet_pingpong_us_1k": round(theirs_pingpong, 2),
        "ratchet_pingpong_speedup": round(theirs_pingpong / pingpong, 2),
        "mode": config.name,
        "iterations": {
            "rounds": config.rounds,
            "warmup_handshakes": config.warmup_handshakes,
            "handshakes": len(samples.handshakes),
            "op_samples_each": len(samples.timer),
            "chunks_per_round": config.chunks_per_round,
            "stream_messages_each": len(samples.stream),
            "pingpong_messages_each": len(samples.pingpong),
            "warmup_messages_each": warm,
        },
        "message_bytes": MESSAGE_SIZE,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "doubleratchet": doubleratchet.__version__,
        "cpus": os.cpu_count(),
    }
    figures["targets"] = {
        key: {"target": f"{op} {bound:g}", "met": _met(op, float(figures[key]), bound)}
        for key, (op, bound) in TARGETS.items()
    }
    figures["elapsed_s"] = round(time.perf_counter() - started, 1)
    return figures


def _met(op: str, value: float, bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound


# ==========================================================================
# Output


def _table(figures: dict[str, Any]) -> str:
    lines = [
        f"l2session crypto benchmark ({figures['mode']} mode, {figures['elapsed_s']} s; "
        f"Python {figures['python']}, cryptography {figures['cryptography']}, "
        f"doubleratchet {figures['doubleratchet']}, {figures['cpus']} CPUs)",
        "",
        "Handshake primitives (counted in one real handshake, priced as raw cryptography calls):",
        f"  {'operation':<20}{'count':>6}{'median µs':>12}{'p90 µs':>10}{'total µs':>11}",
    ]
    costs, p90s = figures["op_costs_us"], figures["op_costs_p90_us"]
    for name, count in figures["handshake_ops"].items():
        lines.append(
            f"  {name:<20}{count:>6}{costs[name]:>12.1f}{p90s[name]:>10.1f}"
            f"{figures['handshake_floor_terms_us'][name]:>11.1f}"
        )
    lines.append(f"  {'floor':<20}{'':>6}{'':>12}{'':>10}{figures['handshake_floor_us']:>11.1f}")
    lines += ["", f"  {'figure':<30}{'value':>10}   {'target':<8}{'met':>5}"]
    rows = [
        ("handshake_floor_us", "µs"),
        ("handshake_us", "µs"),
        ("handshake_floor_ratio", ""),
        ("ratchet_us_1k", "µs"),
        ("doubleratchet_us_1k", "µs"),
        ("ratchet_speedup", "x"),
    ]
    for key, unit in rows:
        target = figures["targets"].get(key)
        shown = f"{figures[key]:g} {unit}".rstrip()
        if target is None:
            lines.append(f"  {key:<30}{shown:>10}")
        else:
            met = "yes" if target["met"] else "NO"
            lines.append(f"  {key:<30}{shown:>10}   {target['target']:<8}{met:>5}")
    ratios = figures["handshake_floor_ratio_by_round"]
    lines += [
        "",
        f"  handshake p90 {figures['handshake_p90_us']:g} µs; floor ratio by round "
        f"{min(ratios):.3f} .. {max(ratios):.3f}",
        f"  ratchet p90 {figures['ratchet_p90_us_1k']:g} µs, doubleratchet p90 "
        f"{figures['doubleratchet_p90_us_1k']:g} µs",
        f"  ping-pong (a DH step per message): ours {figures['ratchet_pingpong_us_1k']:g} µs, "
        f"doubleratchet {figures['doubleratchet_pingpong_us_1k']:g} µs "
        f"({figures['ratchet_pingpong_speedup']:g}x)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quick", action="store_true", help="a few seconds (smoke test)")
    args = parser.parse_args(argv)
    figures = _measure(QUICK if args.quick else DEFAULT)
    if args.json:
        print(json.dumps(figures))
    else:
        print(_table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
