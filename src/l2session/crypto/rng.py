"""Injected randomness.

The pure layers never read OS randomness themselves: every operation that
needs random bytes takes a :class:`RandomSource`.  Production code passes
:class:`l2session.runtime.entropy.SystemRandom` (the OS CSPRNG); tests and the
known-answer vectors pass :class:`SeededRandom`, which makes every key, nonce
and handshake byte reproducible from one seed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import blake3

from l2session.errors import ConfigError


@runtime_checkable
class RandomSource(Protocol):
    """Anything that returns uniformly random bytes on request."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` random bytes."""
        ...


class SeededRandom:
    """A deterministic random stream: BLAKE3 in keyed XOF mode.

    ``SeededRandom(seed)`` is the BLAKE3 extendable output of the keyed hash of
    the label ``"l2session seeded random v1"`` under ``key = BLAKE3(seed)``,
    read sequentially.  Two instances with the same seed return the same bytes
    in the same order, which is what fixes every byte of the test vectors.

    It is a sound DRBG for tests, but it is *not* for production keys: a seed
    chosen by a human ("alice") is guessable.
    """

    __slots__ = ("_hasher", "_position")

    _LABEL = b"l2session seeded random v1"

    def __init__(self, seed: bytes | str | int) -> None:
        if isinstance(seed, str):
            seed_bytes = seed.encode("utf-8")
        elif isinstance(seed, int):
            if seed < 0:
                raise ConfigError("SeededRandom seed must be a non-negative integer")
            seed_bytes = seed.to_bytes((seed.bit_length() + 7) // 8 or 1, "big")
        else:
            seed_bytes = bytes(seed)
        key = blake3.blake3(seed_bytes).digest()
        self._hasher = blake3.blake3(self._LABEL, key=key)
        self._position = 0

    def random_bytes(self, n: int) -> bytes:
        if n < 0:
            raise ConfigError(f"random_bytes: n must be >= 0, got {n}")
        out = self._hasher.digest(length=n, seek=self._position)
        self._position += n
        return out

    def fork(self, label: str) -> SeededRandom:
        """An independent stream derived from this one (for a second party)."""
        return SeededRandom(self.random_bytes(32) + label.encode("utf-8"))
