"""The one key-derivation construction, the MAC, and the transcript hash.

KDF
    ``KDF(label, p1, ..., pn; L)`` is BLAKE3 in its key-derivation mode with the
    context string ``"l2session v1 " + label`` and the key material
    ``u32be(len p1) || p1 || ... || u32be(len pn) || pn``, read to ``L`` bytes
    of output.  BLAKE3's derive-key mode is its designated KDF (the context
    string is hashed into a context key that then keys the compression of the
    key material); length-prefixing makes the input tuple unambiguous; the
    label separates every use.  Every derivation in l2session is an instance
    of this one construction, and docs/CRYPTO.md lists each label.

MAC
    ``MAC(key, data)`` is BLAKE3 keyed hashing (32-byte key, 32-byte tag),
    compared in constant time.

Transcript
    ``TH`` is plain BLAKE3 over ``"l2session v1 pqxdh transcript"`` followed by
    each absorbed message as ``u32be(len) || bytes``.
"""

from __future__ import annotations

from typing import Final

import blake3

from l2session.codec import length_prefixed

CONTEXT_PREFIX: Final = "l2session v1 "

# Every label in use, so that docs and tests can enumerate them.
LABEL_PQXDH_STAGE1: Final = "pqxdh stage1"
LABEL_PQXDH_MASTER: Final = "pqxdh master"
LABEL_SESSION_ID: Final = "session id"
LABEL_RATCHET_ROOT: Final = "ratchet root"
LABEL_RATCHET_CHAIN: Final = "ratchet chain"
LABEL_RATCHET_HEADER: Final = "ratchet header"
LABEL_PQ_RESEED: Final = "ratchet pq reseed"
LABEL_KEYFILE: Final = "identity keyfile"

ALL_LABELS: Final = (
    LABEL_PQXDH_STAGE1,
    LABEL_PQXDH_MASTER,
    LABEL_SESSION_ID,
    LABEL_RATCHET_ROOT,
    LABEL_RATCHET_CHAIN,
    LABEL_RATCHET_HEADER,
    LABEL_PQ_RESEED,
    LABEL_KEYFILE,
)

_CHAIN_CONTEXT: Final = CONTEXT_PREFIX + LABEL_RATCHET_CHAIN
_LEN32: Final = (32).to_bytes(4, "big")

#: Output of one symmetric-ratchet step: next chain key, AEAD key, AEAD nonce.
CHAIN_STEP_SIZE: Final = 32 + 32 + 12


def kdf(label: str, *parts: bytes, length: int = 32) -> bytes:
    """``KDF(label, parts; length)`` as defined in the module docstring."""
    hasher = blake3.blake3(length_prefixed(*parts), derive_key_context=CONTEXT_PREFIX + label)
    return hasher.digest(length=length)


def chain_step(chain_key: bytes) -> tuple[bytes, bytes, bytes]:
    """One symmetric-ratchet step: ``KDF("ratchet chain", ck; 76)`` split into
    ``(next_chain_key, message_key, nonce)``.

    Same construction as :func:`kdf` for a single 32-byte part, inlined
    because it runs once per message on each side.
    """
    out = blake3.blake3(_LEN32 + chain_key, derive_key_context=_CHAIN_CONTEXT).digest(
        length=CHAIN_STEP_SIZE
    )
    return out[:32], out[32:64], out[64:]


def mac(key: bytes, data: bytes) -> bytes:
    """BLAKE3 keyed hash: a 32-byte tag of ``data`` under a 32-byte ``key``."""
    return blake3.blake3(data, key=key).digest()


def fingerprint(*parts: bytes, length: int = 32) -> bytes:
    """A public BLAKE3 hash over length-prefixed parts (no secret inputs)."""
    return blake3.blake3(length_prefixed(*parts)).digest(length=length)


class Transcript:
    """Running hash of every handshake byte, in order."""

    __slots__ = ("_hasher",)

    _DOMAIN: Final = b"l2session v1 pqxdh transcript"

    def __init__(self) -> None:
        self._hasher = blake3.blake3(self._DOMAIN)

    def absorb(self, data: bytes) -> None:
        self._hasher.update(len(data).to_bytes(4, "big"))
        self._hasher.update(data)

    def digest(self) -> bytes:
        """The hash so far; absorbing can continue afterwards."""
        return self._hasher.digest()

    def copy(self) -> Transcript:
        clone = Transcript.__new__(Transcript)
        clone._hasher = self._hasher.copy()
        return clone
