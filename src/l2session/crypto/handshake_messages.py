"""The three PQXDH handshake messages and their canonical encodings.

The encodings are canonical (one valid byte string per message) because the
handshake transcript hashes these exact bytes.  The wire layer frames them;
it never re-encodes them.

=========  =========================================================
INIT       initiator -> responder: identities, ephemerals, prekey ids,
           ML-KEM ciphertext to the signed PQ prekey, timestamp, signature
RESPONSE   responder -> initiator: ephemeral X25519, ML-KEM ciphertext to
           the initiator's ephemeral KEM key, signature, key confirmation
FINISH     initiator -> responder: key confirmation
=========  =========================================================
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from l2session.codec import Reader, Writer
from l2session.crypto.prekey_records import MAX_DID_BYTES
from l2session.crypto.primitives import (
    ED25519_SIGNATURE_SIZE,
    MLKEM768_CIPHERTEXT_SIZE,
    MLKEM768_PUBLIC_KEY_SIZE,
    X25519_KEY_SIZE,
)
from l2session.errors import MalformedMessage, MessageTooLarge

PROTOCOL_VERSION: Final = 1
TYPE_INIT: Final = 0x01
TYPE_RESPONSE: Final = 0x02
TYPE_FINISH: Final = 0x03
CONFIRM_SIZE: Final = 32

#: Session kinds as INIT carries them (docs/PROTOCOL.md §2.1).  Persistent
#: is the default and is encoded by leaving the kind byte out, so an INIT
#: for a persistent session is byte-identical to the original format.
KIND_PERSISTENT: Final = 0x00
KIND_EPHEMERAL: Final = 0x01
#: Reserved for the overview's Federated sessions (bridges); a node that
#: does not implement them refuses such an INIT with a HandshakeError.
KIND_FEDERATED: Final = 0x02
#: Kind values an INIT may carry explicitly; any other byte is malformed.
ENCODED_KINDS: Final = frozenset({KIND_EPHEMERAL, KIND_FEDERATED})

# INIT after the two DIDs: IK_A, EK_A, EKEM_A, spk id, flag, opk id, CT1, ts.
_INIT_KEYS: Final = struct.Struct(
    f">{X25519_KEY_SIZE}s{X25519_KEY_SIZE}s{MLKEM768_PUBLIC_KEY_SIZE}sIBI"
    f"{MLKEM768_CIPHERTEXT_SIZE}sQ"
)


def _read_prefix(r: Reader, expected_type: int, name: str) -> None:
    version = r.u8("version")
    if version != PROTOCOL_VERSION:
        raise MalformedMessage(f"{name}: protocol version {version} is not supported")
    kind = r.u8("type")
    if kind != expected_type:
        raise MalformedMessage(f"{name}: message type {kind:#04x}, expected {expected_type:#04x}")


@dataclass(frozen=True, slots=True)
class HandshakeInit:
    """PQXDH initial message.  ``signature`` covers everything before it."""

    initiator_did: str
    responder_did: str
    initiator_identity_dh: bytes
    ephemeral_dh: bytes
    ephemeral_kem: bytes
    signed_prekey_id: int
    one_time_prekey_id: int | None
    kem_ciphertext: bytes
    timestamp_ms: int
    signature: bytes = b""
    #: The session kind the initiator opens (``KIND_*``).  Covered by the
    #: signature and so by the transcript: a relay cannot change it.
    session_kind: int = KIND_PERSISTENT

    def body(self) -> bytes:
        """The signed part: the encoding up to (excluding) the signature."""
        if self.session_kind != KIND_PERSISTENT and self.session_kind not in ENCODED_KINDS:
            raise MalformedMessage(f"handshake INIT: unknown session kind {self.session_kind!r}")
        if (
            len(self.initiator_identity_dh) != X25519_KEY_SIZE
            or len(self.ephemeral_dh) != X25519_KEY_SIZE
            or len(self.ephemeral_kem) != MLKEM768_PUBLIC_KEY_SIZE
            or len(self.kem_ciphertext) != MLKEM768_CIPHERTEXT_SIZE
        ):
            raise MessageTooLarge("handshake INIT: a key or ciphertext has the wrong size")
        out = Writer().u8(PROTOCOL_VERSION).u8(TYPE_INIT)
        out.text16(self.initiator_did, "initiator did", max_len=MAX_DID_BYTES)
        out.text16(self.responder_did, "responder did", max_len=MAX_DID_BYTES)
        out.raw(
            _INIT_KEYS.pack(
                self.initiator_identity_dh,
                self.ephemeral_dh,
                self.ephemeral_kem,
                self.signed_prekey_id,
                self.one_time_prekey_id is not None,
                self.one_time_prekey_id or 0,
                self.kem_ciphertext,
                self.timestamp_ms,
            )
        )
        if self.session_kind != KIND_PERSISTENT:
            out.u8(self.session_kind)
        return out.getvalue()

    def encode(self) -> bytes:
        if len(self.signature) != ED25519_SIGNATURE_SIZE:
            raise MalformedMessage("INIT is not signed yet")
        return self.body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> HandshakeInit:
        r = Reader(data, "handshake INIT")
        _read_prefix(r, TYPE_INIT, "handshake INIT")
        initiator = r.text16("initiator did", max_len=MAX_DID_BYTES)
        responder = r.text16("responder did", max_len=MAX_DID_BYTES)
        (
            identity_dh,
            ephemeral_dh,
            ephemeral_kem,
            signed_prekey_id,
            has_one_time,
            one_time_id,
            ciphertext,
            timestamp,
        ) = r.struct(_INIT_KEYS, "keys and ciphertext")
        if has_one_time > 1:
            raise MalformedMessage(
                f"handshake INIT: has one-time prekey must be 0 or 1, got {has_one_time}"
            )
        if not has_one_time and one_time_id:
            raise MalformedMessage("handshake INIT: one-time prekey id set without its flag")
        # The optional kind byte: the signature has a fixed size, so one
        # byte more than it left means the kind is present.
        kind = KIND_PERSISTENT
        if r.remaining == ED25519_SIGNATURE_SIZE + 1:
            kind = r.u8("session kind")
            if kind not in ENCODED_KINDS:
                # 0x00 (persistent) is never written: one encoding per message.
                raise MalformedMessage(f"handshake INIT: unknown session kind {kind:#04x}")
        signature = r.fixed(ED25519_SIGNATURE_SIZE, "signature")
        r.finish()
        return cls(
            initiator,
            responder,
            identity_dh,
            ephemeral_dh,
            ephemeral_kem,
            signed_prekey_id,
            one_time_id if has_one_time else None,
            ciphertext,
            timestamp,
            signature,
            kind,
        )


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    """PQXDH response: the responder's ephemeral half, signed and confirmed."""

    ephemeral_dh: bytes
    kem_ciphertext: bytes
    signature: bytes = b""
    confirm: bytes = b""

    def body(self) -> bytes:
        """The signed part."""
        out = Writer().u8(PROTOCOL_VERSION).u8(TYPE_RESPONSE)
        out.fixed(self.ephemeral_dh, X25519_KEY_SIZE, "ephemeral key")
        out.fixed(self.kem_ciphertext, MLKEM768_CIPHERTEXT_SIZE, "kem ciphertext")
        return out.getvalue()

    def encode(self) -> bytes:
        out = Writer().raw(self.body())
        out.fixed(self.signature, ED25519_SIGNATURE_SIZE, "signature")
        out.fixed(self.confirm, CONFIRM_SIZE, "confirm")
        return out.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> HandshakeResponse:
        r = Reader(data, "handshake RESPONSE")
        _read_prefix(r, TYPE_RESPONSE, "handshake RESPONSE")
        ephemeral_dh = r.fixed(X25519_KEY_SIZE, "ephemeral key")
        ciphertext = r.fixed(MLKEM768_CIPHERTEXT_SIZE, "kem ciphertext")
        signature = r.fixed(ED25519_SIGNATURE_SIZE, "signature")
        confirm = r.fixed(CONFIRM_SIZE, "confirm")
        r.finish()
        return cls(ephemeral_dh, ciphertext, signature, confirm)


@dataclass(frozen=True, slots=True)
class HandshakeFinish:
    """The initiator's key confirmation."""

    confirm: bytes

    def encode(self) -> bytes:
        out = Writer().u8(PROTOCOL_VERSION).u8(TYPE_FINISH)
        return out.fixed(self.confirm, CONFIRM_SIZE, "confirm").getvalue()

    @classmethod
    def decode(cls, data: bytes) -> HandshakeFinish:
        r = Reader(data, "handshake FINISH")
        _read_prefix(r, TYPE_FINISH, "handshake FINISH")
        confirm = r.fixed(CONFIRM_SIZE, "confirm")
        r.finish()
        return cls(confirm)
