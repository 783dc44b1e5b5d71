"""The operating system's randomness, for production use.

The pure layers take a :class:`~l2session.crypto.rng.RandomSource`; this is
the one production implementation, backed by the kernel CSPRNG
(``getrandom(2)`` via :func:`os.urandom`).  It lives in ``runtime`` because
reading OS randomness is I/O that the sans-I/O layers must not do themselves.
"""

from __future__ import annotations

import os

from l2session.errors import ConfigError


class SystemRandom:
    """:class:`~l2session.crypto.rng.RandomSource` backed by ``os.urandom``."""

    __slots__ = ()

    def random_bytes(self, n: int) -> bytes:
        if n < 0:
            raise ConfigError(f"random_bytes: n must be >= 0, got {n}")
        return os.urandom(n)
