"""The Double Ratchet's message format and the key steps behind it
(docs/CRYPTO.md §5): the header layout, the header key and tag, the root
step, the post-quantum re-seed, and opening the AEAD body.

Message layout::

    header = dh(32) || pn(u32) || n(u32) || seq(u64) || epoch(u32)      52 bytes
    tag     = MAC(HK, header)[:16]
    message = header || tag || ChaCha20-Poly1305(..., AD = H || header || tag)

``dh`` is the sender's ratchet public key, ``pn`` the length of its previous
sending chain, ``n`` the message number in this chain, ``seq`` a per-direction
packet number for the replay window, ``epoch`` the number of post-quantum
re-seeds behind this chain.  ``HK`` is the chain's header key, derived with
the chain: the receiver checks the header tag *before* deriving any skipped
key, so a forged header costs at most one X25519 and a few hashes, never the
25,000 key derivations a real gap may need.

Pure functions of their inputs, apart from :class:`~l2session.crypto.ratchet.DoubleRatchet`
(the state machine that calls them) so that the format can be read on its
own; ``ratchet`` re-exports every public name.
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from l2session.crypto.kdf import (
    LABEL_PQ_RESEED,
    LABEL_RATCHET_HEADER,
    LABEL_RATCHET_ROOT,
    kdf,
    mac,
)
from l2session.crypto.primitives import ct_equal
from l2session.errors import (
    AuthenticationFailed,
)

HEADER: Final = struct.Struct(">32sIIQI")
HEADER_SIZE: Final = HEADER.size  # 52
HEADER_TAG_SIZE: Final = 16
TAG_SIZE: Final = 16
BODY_OFFSET: Final = HEADER_SIZE + HEADER_TAG_SIZE
OVERHEAD: Final = BODY_OFFSET + TAG_SIZE  # 84


SkippedKeys = list[tuple[tuple[bytes, int], tuple[bytes, bytes]]]


def root_step(root_key: bytes, dh_output: bytes) -> tuple[bytes, bytes]:
    """KDF_RK: ``KDF("ratchet root", rk, dh; 64)`` -> (next root key, chain key)."""
    out = kdf(LABEL_RATCHET_ROOT, root_key, dh_output, length=64)
    return out[:32], out[32:]


def header_key(chain_key: bytes) -> bytes:
    """``KDF("ratchet header", CK0)``: the header key of the chain starting at CK0."""
    return kdf(LABEL_RATCHET_HEADER, chain_key)


def header_tag(key: bytes, header: bytes) -> bytes:
    return mac(key, header)[:HEADER_TAG_SIZE]


def check_header(key: bytes, header: bytes, tag: bytes) -> None:
    if not ct_equal(header_tag(key, header), tag):
        raise AuthenticationFailed("ratchet header does not authenticate", reason="header")


def pq_reseed(root_key: bytes, secret: bytes) -> bytes:
    """``KDF("ratchet pq reseed", rk, ss; 32)``: mix an ML-KEM secret in."""
    return kdf(LABEL_PQ_RESEED, root_key, secret)


def open_body(key: bytes, nonce: bytes, body: bytes, ad: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, body, ad)
    except InvalidTag:
        raise AuthenticationFailed("ratchet message does not authenticate", reason="aead") from None
