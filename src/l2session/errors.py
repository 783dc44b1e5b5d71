"""Every error l2session raises, in one hierarchy.

Callers catch :class:`L2SessionError` to handle anything this library refuses,
or a precise subclass to react to one cause.  Hostile bytes never escape as
``ValueError``, ``IndexError``, ``struct.error`` or a library's own exception:
each layer converts them into one of these types at its boundary, so a peer
that sends garbage costs us a typed, countable rejection and nothing else.

Messages say what was wrong and, where the user can fix it, how.  They never
contain secret material.
"""

from __future__ import annotations


class L2SessionError(Exception):
    """Base class of every error raised by l2session."""


class ConfigError(L2SessionError, ValueError):
    """A configuration value is invalid; the message names the field."""


# --------------------------------------------------------------------------
# Bytes that cannot be parsed


class MalformedMessage(L2SessionError):
    """Bytes from a peer (or a file) do not decode: truncated, oversized,
    trailing garbage, unknown version, or a field out of range.

    Raised before any state changes, so a session survives it.
    """


class MessageTooLarge(L2SessionError):
    """A local caller asked to encrypt or encode more than the declared limit."""


# --------------------------------------------------------------------------
# Cryptographic refusals


class CryptoError(L2SessionError):
    """Base class of refusals by the crypto core."""


class AuthenticationFailed(CryptoError):
    """A signature, MAC, key confirmation or AEAD tag did not verify.

    ``reason`` is a short machine-readable cause (for example
    ``"invalid_signature"``, ``"key_confirmation_failed"``, ``"aead"``) that
    the session layer records and counts; it never contains secrets.
    """

    def __init__(self, message: str, *, reason: str = "authentication_failed") -> None:
        super().__init__(message)
        self.reason = reason


class ReplayDetected(CryptoError):
    """A message, or a handshake, was seen before (or is too old to tell)."""


class TooManySkippedKeys(CryptoError):
    """A ratchet message jumps further ahead than the forward-jump limit."""


class RekeyPending(CryptoError):
    """A ratchet message was sent after a post-quantum re-seed that this side
    has not registered yet.  Nothing changed; feed it again once the re-seed
    secret is known."""


class ChainExhausted(CryptoError):
    """A sending chain reached its message-number limit; a DH ratchet step
    (a reply from the peer) or a rekey is needed before sending more."""


class PrekeyError(CryptoError):
    """A prekey is missing, expired, or already consumed."""


class PrekeyNotFound(PrekeyError):
    """The prekey a handshake refers to is unknown (never existed, rotated
    out, or a one-time prekey already used)."""


class PrekeyExpired(PrekeyError):
    """A signed prekey record is past its expiry time."""


class HandshakeError(CryptoError):
    """A handshake message is valid bytes but cannot be accepted here
    (wrong recipient, unexpected in this handshake state, stale timestamp)."""


# --------------------------------------------------------------------------
# Identity


class IdentityError(L2SessionError):
    """Base class of DID and key-management errors."""


class InvalidDid(IdentityError, ValueError):
    """A string is not a syntactically valid DID (or did:key)."""


class UnsupportedDidMethod(IdentityError):
    """No resolver is registered for the DID's method."""


class UnsupportedKeyType(IdentityError):
    """A did:key (or DID document) names a key type l2session cannot use."""


class DidNotFound(IdentityError):
    """A resolver knows the method but has no document for this DID."""


class DidResolutionError(IdentityError):
    """A resolver failed or returned a document that does not validate."""


class KeyFileError(IdentityError):
    """Base class of identity key-file errors; the message names the path."""


class KeyFilePermissionError(KeyFileError):
    """A key file is readable or writable by others than its owner."""


class KeyFileFormatError(KeyFileError):
    """A key file is not a valid l2session identity file."""


class PassphraseRequired(KeyFileError):
    """The key file is encrypted and no passphrase was given."""


class WrongPassphrase(KeyFileError):
    """The passphrase does not decrypt the key file (or the file was altered)."""


# --------------------------------------------------------------------------
# Sessions (SPEC-018 §5.1 SessionError)


class SessionError(L2SessionError):
    """Base class of session-level errors (SPEC-018 §5.1 ``SessionError``)."""


class InvalidState(SessionError):
    """An operation or transition is not allowed in the session's current
    state (SPEC-018 §3: the state table is authoritative)."""


class SessionTimeout(SessionError, TimeoutError):
    """A handshake, rotation or receive did not complete in time
    (SPEC-018 ``Timeout``)."""


class TransportFailed(SessionError):
    """No path to the peer works (SPEC-018 ``TransportFailed``)."""


class PeerRefused(TransportFailed):
    """The peer's node is there but refused us on every path: it is at one
    of its limits (connections; docs/NETWORK.md).  Try again later or
    elsewhere; it is not a network fault."""


class KeyRotationFailed(SessionError):
    """An in-session key rotation did not complete (SPEC-018 ``KeyRotationFailed``)."""


class QueueFull(SessionError):
    """The outbound queue is at its limit: back off and retry.  Nothing was
    queued and nothing already queued was dropped."""


class MissingCapability(SessionError, ConfigError):
    """A session API was called with a context that lacks a capability it
    needs (SPEC-018 §5.2 ``ctx.has(...)``); the message names it."""


class PeerQuarantined(SessionError):
    """The peer failed authentication recently and is refused until the
    quarantine ends; ``until`` is that time (seconds, the context's clock)."""

    def __init__(self, message: str, *, until: float) -> None:
        super().__init__(message)
        self.until = until


class SessionClosed(SessionError):
    """The session was closed; it sends and receives nothing more."""


# --------------------------------------------------------------------------
# Durable store (store/sqlite.py; docs/STORE.md lists every message)


class StoreError(L2SessionError):
    """Base class of durable-store errors.  The message names the database
    file and, where the user can fix it, how.  A failed commit leaves its
    writes buffered (commit again to retry)."""


class StoreNotFound(StoreError):
    """The store does not hold what was asked for (no identity saved yet)."""


class StoreCorrupt(StoreError):
    """The file is not a readable l2session database: not SQLite at all,
    truncated, or damaged inside.  It is left exactly as it was."""


class StoreForeign(StoreError):
    """The file is an SQLite database of another application; it is left
    untouched rather than mixed with our tables."""


class StoreTooNew(StoreError):
    """The database was written by a newer l2session (a higher schema
    version); this version cannot read it and does not modify it."""


class StorePermissionError(StoreError):
    """The database file (or its directory, ``-wal`` or ``-shm`` file) can be
    read or written by others, belongs to another user, or is a symlink."""


class StoreIOError(StoreError):
    """The operating system failed a read or write: disk full, I/O error,
    read-only file system.  Nothing of the failed commit was written."""


class StoreLocked(StoreError):
    """Another process holds the database's write lock for too long."""


# --------------------------------------------------------------------------
# The Membrane: capability policy, QVL trust, audit log (docs/MEMBRANE.md)


class MembraneError(L2SessionError):
    """Base class of Membrane errors (policy, trust graph, audit log)."""


class AccessDenied(MembraneError):
    """The Membrane refused a capability request.  ``reason`` says why in
    one line (it is what the audit log records and what the denial frame
    carries to the sender); ``step`` names the check that refused:
    ``"trust"``, ``"grant"`` or ``"constraint"``."""

    def __init__(self, message: str, *, reason: str, step: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.step = step


class PolicyError(MembraneError, ConfigError):
    """A policy file (or policy value) is invalid.  The message starts with
    ``file:line:`` and names the field; ``path``, ``line`` and ``field`` hold
    them for programs (``line`` is 0 when the file has no line to blame)."""

    def __init__(self, message: str, *, path: str = "", line: int = 0, field: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field


class TrustError(MembraneError):
    """Base class of QVL trust-graph refusals."""


class InvalidTrustStatement(TrustError):
    """A trust statement is malformed, out of range, stale, or its issuer's
    signature does not verify; the graph is unchanged."""


class TrustGraphFull(TrustError):
    """Adding a statement would exceed a trust-graph bound (nodes, or edges
    per issuer); the message names the bound and the graph is unchanged."""


class AuditTampered(MembraneError):
    """The audit log's hash chain does not verify: an entry was edited,
    deleted, inserted or reordered.  ``entry`` is the id of the first bad
    entry."""

    def __init__(self, message: str, *, entry: int) -> None:
        super().__init__(message)
        self.entry = entry


__all__ = [
    "AccessDenied",
    "AuditTampered",
    "AuthenticationFailed",
    "ChainExhausted",
    "ConfigError",
    "CryptoError",
    "DidNotFound",
    "DidResolutionError",
    "HandshakeError",
    "IdentityError",
    "InvalidDid",
    "InvalidState",
    "InvalidTrustStatement",
    "KeyFileError",
    "KeyFileFormatError",
    "KeyFilePermissionError",
    "KeyRotationFailed",
    "L2SessionError",
    "MalformedMessage",
    "MembraneError",
    "MessageTooLarge",
    "MissingCapability",
    "PassphraseRequired",
    "PeerQuarantined",
    "PolicyError",
    "PrekeyError",
    "PrekeyExpired",
    "PrekeyNotFound",
    "QueueFull",
    "RekeyPending",
    "ReplayDetected",
    "SessionClosed",
    "SessionError",
    "SessionTimeout",
    "StoreCorrupt",
    "StoreError",
    "StoreForeign",
    "StoreIOError",
    "StoreLocked",
    "StoreNotFound",
    "StorePermissionError",
    "StoreTooNew",
    "TooManySkippedKeys",
    "TransportFailed",
    "TrustError",
    "TrustGraphFull",
    "UnsupportedDidMethod",
    "UnsupportedKeyType",
    "WrongPassphrase",
]


# ---------------------------------------------------------------------------
# federation (docs/FEDERATION.md)


class FederationError(L2SessionError):
    """Base class of federated-session (bridge) errors."""


class InvalidForeignIdentity(FederationError, ValueError):
    """A foreign peer name (``nostr:npub1…``, an npub, 64 hex digits) does not parse."""


class BridgeUnavailable(FederationError):
    """The bridge named is not available here (not implemented, its extra is
    not installed, or no entry point provides it); the message says which."""


class ForgedEvent(FederationError, AuthenticationFailed):
    """A foreign event failed its protocol's authentication (a bad signature,
    or a seal whose author is not the message's author); it is refused and
    counted.  ``reason`` is ``"bad_signature"`` or ``"author_mismatch"``."""


class ForeignMessageRejected(FederationError, MalformedMessage):
    """A foreign event is malformed or its content is too large; the message
    says which limit or field, and nothing else is affected."""
