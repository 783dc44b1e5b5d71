"""The Double Ratchet (Signal's algorithm, with a post-quantum re-seed).

Each message is encrypted with its own key from a symmetric chain (forward
secrecy per message); each time the conversation changes direction both sides
take a Diffie-Hellman step that mixes a fresh X25519 agreement into the root
key (post-compromise security).  A post-quantum re-seed mixes a fresh ML-KEM
shared secret into the root key at a DH step, which is how in-session key
rotation restores post-quantum strength.

The message format (header, header tag, AEAD body) and the key steps are
in :mod:`l2session.crypto.ratchet_message` (docs/CRYPTO.md §5); this module
is the state machine over them.

Rules that keep a session safe against hostile or damaged input:

* State is committed only after the header tag, the AEAD tag *and* the replay
  window all accept the message.  Until then every derived key, skipped key
  and DH output lives in local variables; a refused message leaves the
  ratchet exactly as it was.  The same holds for sending: the DH half of a
  step is computed completely before anything is assigned.
* At most ``max_skip`` (25,000) message keys are derived for one incoming
  message, and at most ``max_stored`` (2,000) skipped keys are kept (oldest
  evicted first), as libsignal does.
* The DH half of a step happens lazily at the next :meth:`DoubleRatchet.encrypt`,
  so randomness is drawn only for authenticated steps.  The caller may
  *defer* it (``encrypt(..., defer_step=True)``) and keep sending on the
  current chain: the session layer takes sending steps sparsely (at most a
  few per second, core/link/channel.py), because a step per turn of a ping-pong
  costs two X25519 agreements and a key generation per side.  A deferred
  step stays due; the peer sees nothing but a longer chain.
* :meth:`DoubleRatchet.prepare_step` draws the next key pair and its
  agreement ahead of the step (off the critical path); the step uses them
  only if the peer key is still the one they were computed against.

Some refusals happen before authentication and may be caused by forged input:
``MalformedMessage``, ``ReplayDetected`` (old counter or retired chain) and
``RekeyPending``.  Callers must not treat them as evidence about the peer.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from l2session.crypto import primitives
from l2session.crypto.kdf import chain_step
from l2session.crypto.primitives import DhKeyPair
from l2session.crypto.ratchet_message import (
    BODY_OFFSET,
    HEADER,
    HEADER_SIZE,
    HEADER_TAG_SIZE,
    OVERHEAD,
    TAG_SIZE,
    SkippedKeys,
    check_header,
    header_key,
    header_tag,
    open_body,
    pq_reseed,
    root_step,
)
from l2session.crypto.ratchet_state import (
    MAX_ASSOCIATED_DATA,
    MAX_STORED_SKIPPED,
    RETIRED_KEYS_KEPT,
    PendingReseed,
    RatchetSnapshot,
    decode_snapshot,
    encode_snapshot,
)
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

MAX_SKIP: Final = 25_000
DEFAULT_MAX_MESSAGE: Final = 1 << 20  # 1 MiB of plaintext per message
MAX_CHAIN_LENGTH: Final = 0xFFFF_FFFF  # n is a u32
MAX_EPOCH: Final = 0xFFFF_FFFF


class DoubleRatchet:
    """One side of a Double Ratchet conversation.

    Build it with :meth:`for_initiator` / :meth:`for_responder` from a PQXDH
    result (the handshake does that for you), or :meth:`from_bytes`.  Not
    thread-safe; the session layer owns it.
    """

    __slots__ = (
        "_ad",
        "_ckr",
        "_cks",
        "_dhr",
        "_dhs",
        "_epoch",
        "_hkr",
        "_hks",
        "_max_message",
        "_max_skip",
        "_max_stored",
        "_nr",
        "_ns",
        "_pending",
        "_pn",
        "_prepared",
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
        if len(associated_data) > MAX_ASSOCIATED_DATA:
            raise ConfigError(f"associated_data may be at most {MAX_ASSOCIATED_DATA} bytes")
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
        self._hks = header_key(send_chain) if send_chain is not None else None
        self._ckr = recv_chain
        self._hkr = header_key(recv_chain) if recv_chain is not None else None
        self._ns = 0
        self._pn = 0
        self._nr = 0
        self._send_step_due = send_chain is None
        self._seq = 0
        self._epoch = 0
        self._send_epoch = 0
        self._recv_epoch = 0
        self._pending: PendingReseed | None = None
        # (key pair, the peer key it was agreed with, the agreement): a
        # step drawn ahead by prepare_step().  Not part of the snapshot.
        self._prepared: tuple[DhKeyPair, bytes, bytes] | None = None
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
    def send_step_due(self) -> bool:
        """Whether the next :meth:`encrypt` would take a sending DH step
        (the peer has stepped since this side's last step)."""
        return self._send_step_due

    @property
    def send_step_required(self) -> bool:
        """Whether the next :meth:`encrypt` must step even if asked to
        defer: there is no sending chain yet, or a re-seed this side
        started waits for the step that applies it."""
        if not self._send_step_due:
            return False
        pending = self._pending
        return self._cks is None or (
            pending is not None and pending.initiate and pending.epoch == self._epoch + 1
        )

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

    def start_pq_reseed(self, secret: bytes) -> int:
        """Register ``secret`` to be mixed into the root key at this side's
        next DH step; that step's messages announce the new epoch.  Returns
        the epoch the re-seed creates.

        Use it on the side that *decapsulated* (it learns the secret last).
        The side that encapsulated must use :meth:`expect_pq_reseed` before it
        sends the ciphertext: if both sides started, the encapsulator's very
        reply carrying the ciphertext could already need the secret.
        """
        return self._register(secret, initiate=True)

    def expect_pq_reseed(self, secret: bytes) -> int:
        """Register ``secret`` to be applied only when the peer's chain
        announces the new epoch (never at this side's own steps)."""
        return self._register(secret, initiate=False)

    def cancel_pq_reseed(self) -> None:
        """Forget a registered re-seed that no DH step has applied yet (for
        example when a rotation times out)."""
        self._pending = None

    def _register(self, secret: bytes, *, initiate: bool) -> int:
        if len(secret) != 32:
            raise ConfigError("a post-quantum re-seed secret must be 32 bytes")
        if self._pending is not None:
            raise CryptoError("a post-quantum re-seed is already pending")
        if self._epoch >= MAX_EPOCH:
            raise ChainExhausted("the ratchet epoch counter is exhausted")
        self._pending = PendingReseed(self._epoch + 1, bytes(secret), initiate)
        return self._epoch + 1

    # ----------------------------------------------------------------------
    # sending

    def encrypt(self, plaintext: bytes, *, defer_step: bool = False) -> bytes:
        """Encrypt one message (at most ``max_message`` bytes).

        With ``defer_step`` a due sending DH step is postponed (it stays
        due) and the message goes on the current sending chain, unless
        :attr:`send_step_required`.
        """
        if len(plaintext) > self._max_message:
            raise MessageTooLarge(
                f"message of {len(plaintext)} bytes exceeds the limit of {self._max_message}"
            )
        if self._send_step_due and (not defer_step or self.send_step_required):
            self._send_step()
        n = self._ns
        if n >= MAX_CHAIN_LENGTH:
            raise ChainExhausted("sending chain exhausted; the peer must reply before more sends")
        assert self._cks is not None
        assert self._hks is not None
        chain, key, nonce = chain_step(self._cks)
        header = HEADER.pack(self._dhs.public, self._pn, n, self._seq, self._send_epoch)
        authenticated = header + header_tag(self._hks, header)
        body = ChaCha20Poly1305(key).encrypt(nonce, plaintext, self._ad + authenticated)
        self._cks = chain
        self._ns = n + 1
        self._seq += 1
        return authenticated + body

    def _send_step(self) -> None:
        """The sending half of a DH ratchet step, computed completely before
        any field changes (a failure here leaves the state as it was)."""
        root = self._rk
        epoch = self._epoch
        pending = self._pending
        applies = pending is not None and pending.initiate and pending.epoch == epoch + 1
        if applies:
            assert pending is not None
            root = pq_reseed(root, pending.secret)
            epoch = pending.epoch
        prepared = self._prepared
        if prepared is not None and prepared[1] == self._dhr:
            new_key, agreement = prepared[0], prepared[2]
        else:
            new_key = primitives.x25519_generate(self._rng)
            agreement = primitives.x25519(new_key, self._dhr)
        new_root, chain = root_step(root, agreement)
        hks = header_key(chain)
        # Commit.
        self._prepared = None
        if applies:
            self._pending = None
        self._epoch = epoch
        self._rk, self._cks, self._hks = new_root, chain, hks
        self._dhs = new_key
        self._pn = self._ns
        self._ns = 0
        self._send_epoch = epoch
        self._send_step_due = False

    def prepare_step(self) -> bool:
        """Draw the next sending key pair and its agreement with the peer's
        current key now, so the due step costs only hashes.  Does nothing
        (returns False) unless a step is due and none is prepared yet.

        A prepared key is secret state like the current one: call this only
        when the step will be taken at the next send, or a compromise in
        between also exposes the key the step is meant to heal with.
        """
        if not self._send_step_due:
            return False
        prepared = self._prepared
        if prepared is not None and prepared[1] == self._dhr:
            return False
        key = primitives.x25519_generate(self._rng)
        try:
            agreement = primitives.x25519(key, self._dhr)
        except MalformedMessage:
            return False  # the step itself reports it, in its place
        self._prepared = (key, self._dhr, agreement)
        return True

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
        tag = message[HEADER_SIZE:BODY_OFFSET]
        body = message[BODY_OFFSET:]
        # The AEAD covers header and tag: every byte of a message is
        # authenticated on every path, including stored skipped keys.
        ad = self._ad + message[:BODY_OFFSET]

        stored = self._skipped.get((dh, n))
        if stored is not None:
            plaintext = open_body(stored[0], stored[1], body, ad)
            self._window.check(seq)
            del self._skipped[(dh, n)]
            self._window.commit(seq)
            return plaintext

        if dh == self._dhr:
            return self._decrypt_current_chain(header, tag, n, seq, epoch, body, ad)
        return self._decrypt_new_chain(header, tag, dh, pn, n, seq, epoch, body, ad)

    def _decrypt_current_chain(
        self, header: bytes, tag: bytes, n: int, seq: int, epoch: int, body: bytes, ad: bytes
    ) -> bytes:
        chain, hkr = self._ckr, self._hkr
        if chain is None or hkr is None:
            raise MalformedMessage("no receiving chain exists yet for this ratchet key")
        if n < self._nr:
            raise ReplayDetected(f"message {n} of this chain was already received (or expired)")
        check_header(hkr, header, tag)
        if epoch != self._recv_epoch:
            raise AuthenticationFailed("ratchet epoch does not match its chain", reason="header")
        if n - self._nr > self._max_skip:
            raise TooManySkippedKeys(
                f"message {n} skips {n - self._nr} keys; the limit is {self._max_skip}"
            )
        dh = self._dhr
        skipped: SkippedKeys = []
        for i in range(self._nr, n):
            chain, key, nonce = chain_step(chain)
            skipped.append(((dh, i), (key, nonce)))
        chain, key, nonce = chain_step(chain)
        plaintext = open_body(key, nonce, body, ad)
        self._window.check(seq)
        # Authenticated and fresh: commit.
        self._ckr = chain
        self._nr = n + 1
        self._store_skipped(skipped)
        self._window.commit(seq)
        return plaintext

    def _decrypt_new_chain(
        self,
        header: bytes,
        tag: bytes,
        dh: bytes,
        pn: int,
        n: int,
        seq: int,
        epoch: int,
        body: bytes,
        ad: bytes,
    ) -> bytes:
        if dh in self._retired:
            raise ReplayDetected("message from a retired ratchet chain (key no longer stored)")
        root = self._rk
        pending = self._pending
        if epoch == self._epoch + 1:
            if pending is None or pending.epoch != epoch:
                raise RekeyPending(
                    f"message uses post-quantum epoch {epoch}; this side has not registered it"
                )
            root = pq_reseed(root, pending.secret)
        elif epoch != self._epoch:
            raise ReplayDetected(f"message of epoch {epoch} cannot follow epoch {self._epoch}")

        new_root, chain = root_step(root, primitives.x25519(self._dhs, dh))
        hkr = header_key(chain)
        check_header(hkr, header, tag)

        old_chain_skips = 0
        if self._ckr is not None:
            if pn < self._nr:
                raise MalformedMessage("previous-chain length is below what was received")
            old_chain_skips = pn - self._nr
        if old_chain_skips + n > self._max_skip:
            raise TooManySkippedKeys(
                f"message skips {old_chain_skips + n} keys; the limit is {self._max_skip}"
            )
        skipped: SkippedKeys = []
        if self._ckr is not None:
            old_chain, old_dh = self._ckr, self._dhr
            for i in range(self._nr, pn):
                old_chain, key, nonce = chain_step(old_chain)
                skipped.append(((old_dh, i), (key, nonce)))
        for i in range(n):
            chain, key, nonce = chain_step(chain)
            skipped.append(((dh, i), (key, nonce)))
        chain, key, nonce = chain_step(chain)
        plaintext = open_body(key, nonce, body, ad)
        self._window.check(seq)

        # Authenticated and fresh: commit the whole step.
        self._retired.append(self._dhr)
        self._rk = new_root
        self._dhr = dh
        self._ckr, self._hkr = chain, hkr
        self._nr = n + 1
        self._recv_epoch = epoch
        if epoch != self._epoch:
            self._epoch = epoch
            self._pending = None
        self._send_step_due = True
        self._store_skipped(skipped)
        self._window.commit(seq)
        return plaintext

    def _store_skipped(self, entries: SkippedKeys) -> None:
        limit = self._max_stored
        if not entries or limit == 0:
            return
        store = self._skipped
        for ident, value in entries[-limit:]:
            store[ident] = value
        while len(store) > limit:
            store.popitem(last=False)

    # ----------------------------------------------------------------------
    # persistence

    def snapshot(self) -> RatchetSnapshot:
        """Every field as an immutable value (contains secrets)."""
        return RatchetSnapshot(
            root_key=self._rk,
            own_private=self._dhs.private_bytes(),
            peer_key=self._dhr,
            send_chain=self._cks,
            send_header_key=self._hks,
            send_count=self._ns,
            previous_count=self._pn,
            recv_chain=self._ckr,
            recv_header_key=self._hkr,
            recv_count=self._nr,
            epoch=self._epoch,
            send_epoch=self._send_epoch,
            recv_epoch=self._recv_epoch,
            pending=self._pending,
            send_step_due=self._send_step_due,
            seq=self._seq,
            associated_data=self._ad,
            max_skip=self._max_skip,
            max_stored=self._max_stored,
            max_message=self._max_message,
            window=self._window.copy(),
            retired=tuple(self._retired),
            skipped=tuple(self._skipped.items()),
        )

    @classmethod
    def restore(cls, snap: RatchetSnapshot, *, rng: RandomSource) -> DoubleRatchet:
        """Rebuild a ratchet from :meth:`snapshot` (or :func:`decode_snapshot`)."""
        try:
            ratchet = cls(
                root_key=snap.root_key,
                own_key=primitives.x25519_from_private(snap.own_private),
                peer_key=snap.peer_key,
                send_chain=None,
                recv_chain=None,
                associated_data=snap.associated_data,
                rng=rng,
                window_size=snap.window.size,
                max_skip=snap.max_skip,
                max_stored=snap.max_stored,
                max_message=snap.max_message,
            )
        except ConfigError as exc:
            raise MalformedMessage(f"ratchet state: {exc}") from None
        if len(snap.skipped) > snap.max_stored:
            raise MalformedMessage(
                f"ratchet state: {len(snap.skipped)} skipped keys exceed its max_stored "
                f"{snap.max_stored}"
            )
        ratchet._cks, ratchet._hks = snap.send_chain, snap.send_header_key
        ratchet._ckr, ratchet._hkr = snap.recv_chain, snap.recv_header_key
        ratchet._ns, ratchet._pn, ratchet._nr = (
            snap.send_count,
            snap.previous_count,
            snap.recv_count,
        )
        ratchet._epoch, ratchet._send_epoch = snap.epoch, snap.send_epoch
        ratchet._recv_epoch = snap.recv_epoch
        ratchet._pending = snap.pending
        ratchet._send_step_due = snap.send_step_due
        ratchet._seq = snap.seq
        ratchet._window = snap.window.copy()
        ratchet._retired.extend(snap.retired)
        ratchet._skipped.update(snap.skipped)
        return ratchet

    def to_bytes(self) -> bytes:
        """The versioned encoding of :meth:`snapshot` (see ``ratchet_state``)."""
        return encode_snapshot(self.snapshot())

    @classmethod
    def from_bytes(cls, data: bytes, *, rng: RandomSource) -> DoubleRatchet:
        """Restore a state written by :meth:`to_bytes`."""
        return cls.restore(decode_snapshot(data), rng=rng)


__all__ = [
    "BODY_OFFSET",
    "DEFAULT_MAX_MESSAGE",
    "HEADER",
    "HEADER_SIZE",
    "HEADER_TAG_SIZE",
    "MAX_CHAIN_LENGTH",
    "MAX_EPOCH",
    "MAX_SKIP",
    "MAX_STORED_SKIPPED",
    "OVERHEAD",
    "TAG_SIZE",
    "DoubleRatchet",
    "header_key",
]
