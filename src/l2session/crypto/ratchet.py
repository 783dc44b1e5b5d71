"""The Double Ratchet (Signal's algorithm, with a post-quantum re-seed).

Each message is encrypted with its own key from a symmetric chain (forward
secrecy per message); each time the conversation changes direction both sides
take a Diffie-Hellman step that mixes a fresh X25519 agreement into the root
key (post-compromise security).  ``register_pq_secret`` additionally mixes a
fresh ML-KEM shared secret into the root key at the next DH step, which is how
in-session key rotation restores post-quantum strength.

Message layout (52-byte header, then the AEAD ciphertext)::

    dh(32) || pn(u32) || n(u32) || seq(u64) || epoch(u32) || ChaCha20-Poly1305(...)

``dh`` is the sender's current ratchet public key, ``pn`` the length of its
previous sending chain, ``n`` the message number in this chain, ``seq`` a
per-direction packet number for the replay window, ``epoch`` the number of
post-quantum re-seeds in the root key that produced this chain.  The whole
header is authenticated as associated data (after the session's own
associated data), so none of it can be altered.

Rules that keep a session safe against hostile or damaged input:

* State is committed only after the AEAD tag verifies *and* the replay
  window accepts the sequence number.  Until then every derived key, skipped
  key and DH output lives in local variables; a failed message leaves the
  ratchet exactly as it was.
* At most ``max_skip`` (25,000) message keys are derived for one incoming
  message, and at most ``max_stored`` (2,000) skipped keys are kept (oldest
  evicted first), as libsignal does.
* The DH half of the step (a new sending key pair) happens lazily at the next
  :meth:`DoubleRatchet.encrypt`, so a forged header costs one X25519 and some
  hashing, never a key generation, and randomness is drawn only for
  authenticated steps.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from l2session.codec import Reader, Writer
from l2session.crypto import primitives
from l2session.crypto.kdf import LABEL_PQ_RESEED, LABEL_RATCHET_ROOT, chain_step, kdf
from l2session.crypto.primitives import DhKeyPair
from l2session.crypto.replay import DEFAULT_WINDOW, ReplayWindow
from l2session.crypto.rng import RandomSource
from l2session.errors import (
    AuthenticationFailed,
    ChainExhausted,
    ConfigError,
    CryptoError,
    MalformedMessage,
    MessageTooLarge,
    RekeyPending,
    ReplayDetected,
    TooManySkippedKeys,
)

HEADER: Final = struct.Struct(">32sIIQI")
HEADER_SIZE: Final = HEADER.size  # 52
TAG_SIZE: Final = 16
OVERHEAD: Final = HEADER_SIZE + TAG_SIZE

MAX_SKIP: Final = 25_000
MAX_STORED_SKIPPED: Final = 2_000
DEFAULT_MAX_MESSAGE: Final = 1 << 20  # 1 MiB of plaintext per message
MAX_CHAIN_LENGTH: Final = 0xFFFF_FFFF  # n is a u32
MAX_EPOCH: Final = 0xFFFF_FFFF
RETIRED_KEYS_KEPT: Final = 32

_STATE_VERSION: Final = 1
_EMPTY_KEY: Final = bytes(32)


def _root_step(root_key: bytes, dh_output: bytes) -> tuple[bytes, bytes]:
    """KDF_RK: ``KDF("ratchet root", rk, dh; 64)`` -> (next root key, chain key)."""
    out = kdf(LABEL_RATCHET_ROOT, root_key, dh_output, length=64)
    return out[:32], out[32:]


def _pq_reseed(root_key: bytes, secret: bytes) -> bytes:
    """``KDF("ratchet pq reseed", rk, ss; 32)``: mix an ML-KEM secret in."""
    return kdf(LABEL_PQ_RESEED, root_key, secret)


def _open(key: bytes, nonce: bytes, body: bytes, ad: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, body, ad)
    except InvalidTag:
        raise AuthenticationFailed("ratchet message does not authenticate", reason="aead") from None


class DoubleRatchet:
    """One side of a Double Ratchet conversation.

    Build it with :meth:`for_initiator` / :meth:`for_responder` from a PQXDH
    result (the handshake does that for you), or restore it with
    :meth:`from_bytes`.  Not thread-safe; the session layer owns it.
    """

    __slots__ = (
        "_ad",
        "_ckr",
        "_cks",
        "_dhr",
        "_dhs",
        "_epoch",
        "_max_message",
        "_max_skip",
        "_max_stored",
        "_nr",
        "_ns",
        "_pending",
        "_pn",
        "_recv_epoch",
        "_retired",
        "_rk",
        "_rng",
        "_send_epoch",
        "_send_step_due",
        "_seq",
        "_skipped",
        "_window",
    )

    def __init__(
        self,
        *,
        root_key: bytes,
        own_key: DhKeyPair,
        peer_key: bytes,
        send_chain: bytes | None,
        recv_chain: bytes | None,
        associated_data: bytes,
        rng: RandomSource,
        window_size: int = DEFAULT_WINDOW,
        max_skip: int = MAX_SKIP,
        max_stored: int = MAX_STORED_SKIPPED,
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        if len(root_key) != 32:
            raise ConfigError("root_key must be 32 bytes")
        if not 0 <= max_skip <= MAX_SKIP:
            raise ConfigError(f"max_skip must be in [0, {MAX_SKIP}], got {max_skip}")
        if not 0 <= max_stored <= MAX_STORED_SKIPPED:
            raise ConfigError(f"max_stored must be in [0, {MAX_STORED_SKIPPED}], got {max_stored}")
        if not 0 < max_message <= 0xFFFF_FFFF - OVERHEAD:
            raise ConfigError(f"max_message must be positive and fit 32 bits, got {max_message}")
        self._rk = root_key
        self._dhs = own_key
        self._dhr = peer_key
        self._cks = send_chain
        self._ckr = recv_chain
        self._ns = 0
        self._pn = 0
        self._nr = 0
        self._send_step_due = send_chain is None
        self._seq = 0
        self._epoch = 0
        self._send_epoch = 0
        self._recv_epoch = 0
        self._pending: tuple[int, bytes] | None = None
        self._skipped: OrderedDict[tuple[bytes, int], tuple[bytes, bytes]] = OrderedDict()
        self._retired: deque[bytes] = deque(maxlen=RETIRED_KEYS_KEPT)
        self._window = ReplayWindow(window_size)
        self._ad = bytes(associated_data)
        self._rng = rng
        self._max_skip = max_skip
        self._max_stored = max_stored
        self._max_message = max_message

    # ----------------------------------------------------------------------
    # construction from a handshake

    @classmethod
    def for_responder(
        cls,
        *,
        root_key: bytes,
        chain_key: bytes,
        own_ephemeral: DhKeyPair,
        peer_ephemeral: bytes,
        associated_data: bytes,
        rng: RandomSource,
        window_size: int = DEFAULT_WINDOW,
    ) -> DoubleRatchet:
        """The responder sends first on ``chain_key`` under its handshake
        ephemeral; it receives once the initiator takes its first DH step."""
        return cls(
            root_key=root_key,
            own_key=own_ephemeral,
            peer_key=peer_ephemeral,
            send_chain=chain_key,
            recv_chain=None,
            associated_data=associated_data,
            rng=rng,
            window_size=window_size,
        )

    @classmethod
    def for_initiator(
        cls,
        *,
        root_key: bytes,
        chain_key: bytes,
        own_ephemeral: DhKeyPair,
        peer_ephemeral: bytes,
        associated_data: bytes,
        rng: RandomSource,
        window_size: int = DEFAULT_WINDOW,
    ) -> DoubleRatchet:
        """The initiator receives the responder's first chain on
        ``chain_key`` and takes a DH step before its own first message."""
        return cls(
            root_key=root_key,
            own_key=own_ephemeral,
            peer_key=peer_ephemeral,
            send_chain=None,
            recv_chain=chain_key,
            associated_data=associated_data,
            rng=rng,
            window_size=window_size,
        )

    # ----------------------------------------------------------------------
    # introspection (public values only)

    @property
    def epoch(self) -> int:
        """Post-quantum re-seeds applied to the root key so far."""
        return self._epoch

    @property
    def sending_ratchet_key(self) -> bytes:
        return self._dhs.public

    @property
    def receiving_ratchet_key(self) -> bytes:
        return self._dhr

    @property
    def messages_sent(self) -> int:
        """Packets encrypted so far in this direction (the next ``seq``)."""
        return self._seq

    @property
    def send_chain_length(self) -> int:
        return self._ns

    @property
    def skipped_key_count(self) -> int:
        return len(self._skipped)

    @property
    def reseed_pending(self) -> bool:
        return self._pending is not None

    @property
    def max_message(self) -> int:
        return self._max_message

    def __repr__(self) -> str:
        return (
            f"DoubleRatchet(epoch={self._epoch}, sent={self._seq}, ns={self._ns}, "
            f"nr={self._nr}, skipped={len(self._skipped)})"
        )

    # ----------------------------------------------------------------------
    # post-quantum re-seed

    def register_pq_secret(self, secret: bytes) -> int:
        """Mix ``secret`` (a fresh ML-KEM shared secret both sides hold) into
        the root key at the next DH ratchet step; returns the new epoch.

        Both sides register the same secret.  Whichever DH step comes next in
        the conversation applies it; its messages carry the new epoch, which
        tells the other side to apply it too.  A message of the new epoch that
        arrives before this side registered raises :class:`RekeyPending` and
        changes nothing.  The re-seed is in effect once :attr:`epoch` has
        advanced on both sides: within one round trip of messages.
        """
        if len(secret) != 32:
            raise ConfigError("a post-quantum re-seed secret must be 32 bytes")
        if self._pending is not None:
            raise CryptoError("a post-quantum re-seed is already pending")
        if self._epoch >= MAX_EPOCH:
            raise ChainExhausted("the ratchet epoch counter is exhausted")
        target = self._epoch + 1
        self._pending = (target, bytes(secret))
        return target

    # ----------------------------------------------------------------------
    # sending

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt one message.  Never fails on size within ``max_message``
        except when the chain is exhausted (2**32 messages without a reply)."""
        if len(plaintext) > self._max_message:
            raise MessageTooLarge(
                f"message of {len(plaintext)} bytes exceeds the limit of {self._max_message}"
            )
        if self._send_step_due:
            self._send_step()
        n = self._ns
        if n >= MAX_CHAIN_LENGTH:
            raise ChainExhausted("sending chain exhausted; the peer must reply before more sends")
        assert self._cks is not None
        chain, key, nonce = chain_step(self._cks)
        header = HEADER.pack(self._dhs.public, self._pn, n, self._seq, self._send_epoch)
        body = ChaCha20Poly1305(key).encrypt(nonce, plaintext, self._ad + header)
        self._cks = chain
        self._ns = n + 1
        self._seq += 1
        return header + body

    def _send_step(self) -> None:
        """The sending half of a DH ratchet step (deferred from receipt)."""
        root = self._rk
        pending = self._pending
        if pending is not None and pending[0] == self._epoch + 1:
            root = _pq_reseed(root, pending[1])
            self._epoch = pending[0]
            self._pending = None
        new_key = primitives.x25519_generate(self._rng)
        self._rk, self._cks = _root_step(root, primitives.x25519(new_key, self._dhr))
        self._dhs = new_key
        self._pn = self._ns
        self._ns = 0
        self._send_epoch = self._epoch
        self._send_step_due = False

    # ----------------------------------------------------------------------
    # receiving

    def decrypt(self, message: bytes) -> bytes:
        """Authenticate and decrypt one message, in any order.

        Raises :class:`MalformedMessage`, :class:`AuthenticationFailed`,
        :class:`ReplayDetected`, :class:`TooManySkippedKeys` or
        :class:`RekeyPending`; in every such case the state is unchanged.
        """
        size = len(message)
        if size < OVERHEAD:
            raise MalformedMessage(f"ratchet message of {size} bytes is shorter than its header")
        if size > self._max_message + OVERHEAD:
            raise MalformedMessage(f"ratchet message of {size} bytes exceeds the limit")
        dh, pn, n, seq, epoch = HEADER.unpack_from(message)
        header = message[:HEADER_SIZE]
        body = message[HEADER_SIZE:]
        ad = self._ad + header

        stored = self._skipped.get((dh, n))
        if stored is not None:
            plaintext = _open(stored[0], stored[1], body, ad)
            self._window.check(seq)
            del self._skipped[(dh, n)]
            self._window.commit(seq)
            return plaintext

        if dh == self._dhr:
            return self._decrypt_current_chain(n, seq, epoch, body, ad)
        return self._decrypt_new_chain(dh, pn, n, seq, epoch, body, ad)

    def _decrypt_current_chain(self, n: int, seq: int, epoch: int, body: bytes, ad: bytes) -> bytes:
        chain = self._ckr
        if chain is None:
            raise MalformedMessage("no receiving chain exists yet for this ratchet key")
        if epoch != self._recv_epoch:
            raise AuthenticationFailed("ratchet epoch does not match its chain", reason="aead")
        if n < self._nr:
            raise ReplayDetected(f"message {n} of this chain was already received (or expired)")
        if n - self._nr > self._max_skip:
            raise TooManySkippedKeys(
                f"message {n} skips {n - self._nr} keys; the limit is {self._max_skip}"
            )
        dh = self._dhr
        skipped: list[tuple[tuple[bytes, int], tuple[bytes, bytes]]] = []
        for i in range(self._nr, n):
            chain, key, nonce = chain_step(chain)
            skipped.append(((dh, i), (key, nonce)))
        chain, key, nonce = chain_step(chain)
        plaintext = _open(key, nonce, body, ad)
        self._window.check(seq)
        # Authenticated and fresh: commit.
        self._ckr = chain
        self._nr = n + 1
        self._store_skipped(skipped)
        self._window.commit(seq)
        return plaintext

    def _decrypt_new_chain(
        self, dh: bytes, pn: int, n: int, seq: int, epoch: int, body: bytes, ad: bytes
    ) -> bytes:
        if dh in self._retired:
            raise ReplayDetected("message from a retired ratchet chain (key no longer stored)")
        # Which root key does the sender's step start from?
        root = self._rk
        new_epoch = self._epoch
        pending = self._pending
        if epoch == self._epoch + 1:
            if pending is None or pending[0] != epoch:
                raise RekeyPending(
                    f"message uses post-quantum epoch {epoch}; this side has not registered it"
                )
            root = _pq_reseed(root, pending[1])
            new_epoch = epoch
        elif epoch != self._epoch:
            raise ReplayDetected(f"message of epoch {epoch} cannot follow epoch {self._epoch}")

        old_chain_skips = 0
        if self._ckr is not None:
            if pn < self._nr:
                raise MalformedMessage("previous-chain length is below what was received")
            old_chain_skips = pn - self._nr
        if old_chain_skips + n > self._max_skip:
            raise TooManySkippedKeys(
                f"message skips {old_chain_skips + n} keys; the limit is {self._max_skip}"
            )

        skipped: list[tuple[tuple[bytes, int], tuple[bytes, bytes]]] = []
        if self._ckr is not None:
            old_chain = self._ckr
            old_dh = self._dhr
            for i in range(self._nr, pn):
                old_chain, key, nonce = chain_step(old_chain)
                skipped.append(((old_dh, i), (key, nonce)))

        new_root, chain = _root_step(root, primitives.x25519(self._dhs, dh))
        for i in range(n):
            chain, key, nonce = chain_step(chain)
            skipped.append(((dh, i), (key, nonce)))
        chain, key, nonce = chain_step(chain)
        plaintext = _open(key, nonce, body, ad)
        self._window.check(seq)

        # Authenticated and fresh: commit the whole step.
        self._retired.append(self._dhr)
        self._rk = new_root
        self._dhr = dh
        self._ckr = chain
        self._nr = n + 1
        self._recv_epoch = epoch
        if new_epoch != self._epoch:
            self._epoch = new_epoch
            self._pending = None
        self._send_step_due = True
        self._store_skipped(skipped)
        self._window.commit(seq)
        return plaintext

    def _store_skipped(self, entries: list[tuple[tuple[bytes, int], tuple[bytes, bytes]]]) -> None:
        if not entries:
            return
        limit = self._max_stored
        if limit == 0:
            return
        store = self._skipped
        for ident, value in entries[-limit:]:
            store[ident] = value
        while len(store) > limit:
            store.popitem(last=False)

    # ----------------------------------------------------------------------
    # persistence

    def to_bytes(self) -> bytes:
        """Serialize the full state (it contains secrets: store it protected).

        Persist it *before* sending what :meth:`encrypt` returned: restoring
        an older state and encrypting again would reuse message keys.
        """
        out = Writer().u8(_STATE_VERSION)
        out.fixed(self._rk, 32, "root key").fixed(self._dhs.private_bytes(), 32, "dhs")
        out.fixed(self._dhr, 32, "dhr")
        out.flag(self._cks is not None).fixed(self._cks or _EMPTY_KEY, 32, "cks")
        out.u32(self._ns).u32(self._pn)
        out.flag(self._ckr is not None).fixed(self._ckr or _EMPTY_KEY, 32, "ckr")
        out.u32(self._nr)
        out.u32(self._epoch).u32(self._send_epoch).u32(self._recv_epoch)
        pending = self._pending
        out.flag(pending is not None).u32(pending[0] if pending else 0)
        out.fixed(pending[1] if pending else _EMPTY_KEY, 32, "pending")
        out.flag(self._send_step_due).u64(self._seq)
        out.var16(self._ad, "associated data", max_len=1024)
        out.u32(self._max_skip).u32(self._max_stored).u32(self._max_message)
        self._window.write(out)
        out.u8(len(self._retired))
        for key in self._retired:
            out.fixed(key, 32, "retired key")
        out.u32(len(self._skipped))
        for (dh, n), (key, nonce) in self._skipped.items():
            out.fixed(dh, 32, "skipped dh").u32(n).fixed(key, 32, "skipped key")
            out.fixed(nonce, 12, "skipped nonce")
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, rng: RandomSource) -> DoubleRatchet:
        """Restore a state written by :meth:`to_bytes`."""
        r = Reader(data, "ratchet state")
        version = r.u8("version")
        if version != _STATE_VERSION:
            raise MalformedMessage(f"ratchet state version {version} is not supported")
        root = r.fixed(32, "root key")
        own = primitives.x25519_from_private(r.fixed(32, "dhs"))
        peer = r.fixed(32, "dhr")
        has_cks = r.flag("has cks")
        cks = r.fixed(32, "cks")
        ns, pn = r.u32("ns"), r.u32("pn")
        has_ckr = r.flag("has ckr")
        ckr = r.fixed(32, "ckr")
        nr = r.u32("nr")
        epoch, send_epoch, recv_epoch = r.u32("epoch"), r.u32("send epoch"), r.u32("recv epoch")
        has_pending = r.flag("has pending")
        pending_epoch = r.u32("pending epoch")
        pending_secret = r.fixed(32, "pending secret")
        send_step_due = r.flag("send step due")
        seq = r.u64("seq")
        ad = r.var16("associated data", max_len=1024)
        max_skip, max_stored, max_message = r.u32("max skip"), r.u32("max stored"), r.u32("max msg")
        window = ReplayWindow.read(r)
        retired_count = r.u8("retired count")
        if retired_count > RETIRED_KEYS_KEPT:
            raise MalformedMessage("ratchet state keeps too many retired keys")
        retired = [r.fixed(32, "retired key") for _ in range(retired_count)]
        skipped_count = r.u32("skipped count")
        if skipped_count > MAX_STORED_SKIPPED:
            raise MalformedMessage("ratchet state stores too many skipped keys")
        skipped = []
        for _ in range(skipped_count):
            ident = (r.fixed(32, "skipped dh"), r.u32("skipped n"))
            skipped.append((ident, (r.fixed(32, "skipped key"), r.fixed(12, "skipped nonce"))))
        r.finish()
        if not has_cks and not send_step_due:
            raise MalformedMessage("ratchet state has no sending chain and no step due")
        try:
            state = cls(
                root_key=root,
                own_key=own,
                peer_key=peer,
                send_chain=cks if has_cks else None,
                recv_chain=ckr if has_ckr else None,
                associated_data=ad,
                rng=rng,
                window_size=window.size,
                max_skip=max_skip,
                max_stored=max_stored,
                max_message=max_message,
            )
        except ConfigError as exc:
            raise MalformedMessage(f"ratchet state: {exc}") from None
        state._ns, state._pn, state._nr = ns, pn, nr
        state._epoch, state._send_epoch, state._recv_epoch = epoch, send_epoch, recv_epoch
        state._pending = (pending_epoch, pending_secret) if has_pending else None
        state._send_step_due = send_step_due
        state._seq = seq
        state._window = window
        state._retired.extend(retired)
        state._skipped.update(skipped)
        return state
