"""Deterministic ML-KEM-768 encapsulation, for known-answer vectors.

OpenSSL draws the encapsulation message ``m`` itself, so a handshake through
it is not reproducible byte for byte.  :func:`deterministic_encapsulate` runs
FIPS 203 ``ML-KEM.Encaps_internal(ek, m)`` (Algorithm 17) with ``m`` drawn
from the injected :class:`~l2session.crypto.rng.RandomSource`, using the
pure-Python FIPS 203 implementation of ``kyber-py`` (a test dependency).  The
result is ordinary ML-KEM: OpenSSL decapsulates it to the same secret, which
the vector tests check on every run.

Slow (pure Python, about a millisecond); for tests and vectors only.
"""

from __future__ import annotations

from l2session.crypto.primitives import MLKEM768_PUBLIC_KEY_SIZE
from l2session.crypto.rng import RandomSource
from l2session.errors import MalformedMessage


def deterministic_encapsulate(public: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
    """``(shared_secret, ciphertext)`` with the 32-byte ``m`` from ``rng``."""
    try:
        from kyber_py.ml_kem import ML_KEM_768
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "deterministic ML-KEM needs the test extra: pip install 'l2session[test]'"
        ) from exc
    if len(public) != MLKEM768_PUBLIC_KEY_SIZE:
        raise MalformedMessage(
            f"ML-KEM-768 public key must be {MLKEM768_PUBLIC_KEY_SIZE} bytes, got {len(public)}"
        )
    message = rng.random_bytes(32)
    try:
        shared, ciphertext = ML_KEM_768._encaps_internal(public, message)
    except ValueError:
        raise MalformedMessage("ML-KEM-768 public key fails the FIPS 203 check") from None
    return bytes(shared), bytes(ciphertext)
