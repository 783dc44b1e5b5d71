"""A QUIC refusal without a connection: the server's Initial packet that
closes a connection attempt with ``CONNECTION_REFUSED`` (RFC 9000 §10.2.3,
§20.1), for an endpoint at its connection limit.

Ignoring the Initial would leave the client guessing ("no answer ... is a
node running there?") until its handshake timeout.  Accepting it only to
close it would cost the TLS handshake (~3 ms of asymmetric crypto) per
refused attempt, exactly when the node is busiest.  RFC 9000 lets a server
refuse in its first Initial, protected with the Initial keys that both
sides derive from the client's destination connection ID (RFC 9001 §5.2):
an HKDF, one AES-128-GCM seal and one AES block, microseconds.  The client
reports ``ConnectionTerminated(error_code=0x2, reason_phrase=...)``.

The datagram is far smaller than the client's 1,200-byte Initial, so this
amplifies nothing.  Only QUIC version 1 is answered (the only version the
node offers); anything else gets nothing, as before.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

#: QUIC version 1 and its Initial salt (RFC 9001 §5.2).
VERSION_1: Final = 0x00000001
INITIAL_SALT_V1: Final = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
#: Transport error code CONNECTION_REFUSED (RFC 9000 §20.1).
CONNECTION_REFUSED: Final = 0x02
_CONNECTION_CLOSE: Final = 0x1C
_PN_LENGTH: Final = 2
_TAG: Final = 16
_MAX_REASON: Final = 200


def _hkdf_expand_label(secret: bytes, label: str, length: int) -> bytes:
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def _extract(salt: bytes, ikm: bytes) -> bytes:
    mac = HMAC(salt, hashes.SHA256())
    mac.update(ikm)
    return mac.finalize()


def _varint(value: int) -> bytes:
    if value < 0x40:
        return bytes([value])
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    return (value | 0x80000000).to_bytes(4, "big")


def server_initial_keys(client_dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """(key, iv, header protection key) of the server's Initial packets."""
    initial = _extract(INITIAL_SALT_V1, client_dcid)
    secret = _hkdf_expand_label(initial, "server in", 32)
    return (
        _hkdf_expand_label(secret, "quic key", 16),
        _hkdf_expand_label(secret, "quic iv", 12),
        _hkdf_expand_label(secret, "quic hp", 16),
    )


def refusal(
    version: int | None, client_dcid: bytes, client_scid: bytes, reason: str
) -> bytes | None:
    """The server Initial refusing the connection attempt whose client
    Initial carried ``client_dcid`` / ``client_scid``; None for a version
    other than 1."""
    if version != VERSION_1:
        return None
    phrase = reason.encode()[:_MAX_REASON]
    frame = (
        _varint(_CONNECTION_CLOSE)
        + _varint(CONNECTION_REFUSED)
        + _varint(0)  # frame type: none
        + _varint(len(phrase))
        + phrase
    )
    # Header protection samples 16 bytes starting 4 bytes after the packet
    # number: pad the payload (PADDING frames are zero bytes) to cover it.
    frame += bytes(max(0, 4 + 16 - _TAG - _PN_LENGTH - len(frame)))
    packet_number = 0
    length = _PN_LENGTH + len(frame) + _TAG
    header = (
        bytes([0xC0 | (_PN_LENGTH - 1)])  # long header, Initial, 2-byte packet number
        + VERSION_1.to_bytes(4, "big")
        + bytes([len(client_scid)])
        + client_scid
        + bytes([8])
        + os.urandom(8)  # our source connection ID (never used again)
        + _varint(0)  # no token
        + _varint(length)
    )
    pn_offset = len(header)
    header += packet_number.to_bytes(_PN_LENGTH, "big")
    key, iv, hp = server_initial_keys(client_dcid)
    nonce = bytes(a ^ b for a, b in zip(iv, packet_number.to_bytes(12, "big"), strict=True))
    sealed = AESGCM(key).encrypt(nonce, frame, header)
    packet = bytearray(header + sealed)
    sample = bytes(packet[pn_offset + 4 : pn_offset + 20])
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()  # noqa: S305 (RFC 9001 §5.4.3)
    mask = encryptor.update(sample) + encryptor.finalize()
    packet[0] ^= mask[0] & 0x0F
    for i in range(_PN_LENGTH):
        packet[pn_offset + i] ^= mask[1 + i]
    return bytes(packet)
