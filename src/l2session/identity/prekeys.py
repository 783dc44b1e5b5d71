"""A node's private prekeys: generation, rotation, the one-time pool.

:class:`PrekeyPolicy` is the configuration (signed-prekey lifetime and
overlap, one-time pool size and refill threshold).  :class:`PrekeyStore`
holds the private keys behind the published :class:`PrekeyBundle`, answers
the responder side of PQXDH (it satisfies ``crypto.pqxdh.ResponderPrekeys``)
and, when :meth:`PrekeyStore.maintain` is called with the current time,
rotates and refills according to the policy.

Rotation keeps every handshake that used a published bundle working: a
signed prekey set stays *current* (handed out) for ``signed_prekey_lifetime``;
its record is valid, and its private keys kept, for ``signed_prekey_overlap``
longer, so an initiator holding the previous bundle can still complete.
One-time prekeys are deleted the moment a handshake authenticates with one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from l2session.codec import Reader, Writer
from l2session.crypto import primitives
from l2session.crypto.pqxdh import OneTimePrekeySecret, SignedPrekeySecrets
from l2session.crypto.prekey_records import OneTimePrekey, SignedPrekeySet, to_millis
from l2session.crypto.primitives import ED25519_PUBLIC_KEY_SIZE
from l2session.crypto.rng import RandomSource
from l2session.errors import ConfigError, MalformedMessage, PrekeyExpired, PrekeyNotFound
from l2session.identity.bundle import MAX_BUNDLE_ONE_TIME_PREKEYS, PrekeyBundle
from l2session.identity.identity import Identity

DAY: Final = 86_400.0
_STATE_VERSION: Final = 1
_MAX_ID: Final = 0xFFFF_FFFF
_MAX_KEPT_SETS: Final = 64


@dataclass(frozen=True, slots=True)
class PrekeyPolicy:
    """How prekeys rotate.  Times are seconds.

    ``signed_prekey_lifetime``
        how long a signed prekey set is the one handed out (default 7 days);
    ``signed_prekey_overlap``
        how long it stays valid after it was replaced (default 2 days);
    ``one_time_pool_size``
        how many one-time prekeys to publish (default 100, at most 1,000);
    ``one_time_refill_threshold``
        refill the pool when fewer than this many remain (default 25);
    ``maintenance_interval``
        how often a running node checks (default 1 hour, 1 s to 1 day): the
        longest a drained one-time pool stays below its threshold.  Rotation
        and pruning are due at exact times and are scheduled for them.
    """

    signed_prekey_lifetime: float = 7 * DAY
    signed_prekey_overlap: float = 2 * DAY
    one_time_pool_size: int = 100
    one_time_refill_threshold: int = 25
    maintenance_interval: float = 3600.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not 60.0 <= self.signed_prekey_lifetime <= 365 * DAY:
            raise ConfigError(
                f"{name}.signed_prekey_lifetime must be between 60 s and 365 days, "
                f"got {self.signed_prekey_lifetime!r}"
            )
        if not 0.0 <= self.signed_prekey_overlap <= self.signed_prekey_lifetime:
            raise ConfigError(
                f"{name}.signed_prekey_overlap must be between 0 and signed_prekey_lifetime "
                f"({self.signed_prekey_lifetime!r}), got {self.signed_prekey_overlap!r}"
            )
        if not 0 <= self.one_time_pool_size <= MAX_BUNDLE_ONE_TIME_PREKEYS:
            raise ConfigError(
                f"{name}.one_time_pool_size must be between 0 and "
                f"{MAX_BUNDLE_ONE_TIME_PREKEYS}, got {self.one_time_pool_size!r}"
            )
        if not 0 <= self.one_time_refill_threshold <= self.one_time_pool_size:
            raise ConfigError(
                f"{name}.one_time_refill_threshold must be between 0 and one_time_pool_size "
                f"({self.one_time_pool_size}), got {self.one_time_refill_threshold!r}"
            )
        if not 1.0 <= self.maintenance_interval <= DAY:
            raise ConfigError(
                f"{name}.maintenance_interval must be between 1 s and 1 day, "
                f"got {self.maintenance_interval!r}"
            )


class PrekeyStore:
    """The private side of a node's prekeys (see the module docstring)."""

    __slots__ = (
        "_current",
        "_fresh",
        "_generation",
        "_identity",
        "_next_id",
        "_one_time",
        "_policy",
        "_sets",
    )

    def __init__(self, identity: Identity, policy: PrekeyPolicy | None = None) -> None:
        self._identity = identity
        #: Bumped by every change of the private state (see ``generation``).
        self._generation = 0
        self._policy = policy or PrekeyPolicy()
        self._sets: OrderedDict[int, SignedPrekeySecrets] = OrderedDict()
        self._current: int | None = None
        self._one_time: OrderedDict[int, OneTimePrekeySecret] = OrderedDict()
        #: Ids of one-time prekeys not yet handed out (oldest first): a
        #: bundle answer takes one and no other answer gets it again.
        self._fresh: OrderedDict[int, None] = OrderedDict()
        self._next_id = 1

    @classmethod
    def create(
        cls,
        identity: Identity,
        *,
        rng: RandomSource,
        now: float,
        policy: PrekeyPolicy | None = None,
    ) -> PrekeyStore:
        """A store with a fresh signed prekey set and a full one-time pool."""
        store = cls(identity, policy)
        store.maintain(rng=rng, now=now)
        return store

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def policy(self) -> PrekeyPolicy:
        return self._policy

    @property
    def one_time_count(self) -> int:
        return len(self._one_time)

    @property
    def one_time_available(self) -> int:
        """One-time prekeys not handed out yet (what refilling watches)."""
        return len(self._fresh)

    @property
    def signed_set_ids(self) -> tuple[int, ...]:
        """Ids of the signed prekey sets still held (current one last)."""
        return tuple(self._sets)

    def _allocate_id(self) -> int:
        if self._next_id > _MAX_ID:
            raise ConfigError("prekey ids exhausted; create a new identity")
        prekey_id = self._next_id
        self._next_id += 1
        return prekey_id

    # ----------------------------------------------------------------------
    # maintenance

    def maintain(self, *, rng: RandomSource, now: float) -> bool:
        """Rotate, prune and refill as the policy says.  Returns ``True`` when
        the public bundle changed and should be republished."""
        changed = False
        policy = self._policy
        now_ms = to_millis(now)
        for set_id in [i for i, s in self._sets.items() if s.record.expires_ms <= now_ms]:
            del self._sets[set_id]
            changed = True
        current = self._sets.get(self._current) if self._current is not None else None
        if current is None or now_ms >= current.record.created_ms + int(
            policy.signed_prekey_lifetime * 1000
        ):
            self._rotate_signed(rng, now_ms)
            changed = True
        if len(self._fresh) < policy.one_time_refill_threshold or (
            not self._fresh and policy.one_time_pool_size
        ):
            while len(self._fresh) < policy.one_time_pool_size:
                self._add_one_time(rng)
            changed = True
        while len(self._sets) > _MAX_KEPT_SETS:
            self._sets.popitem(last=False)
        if changed:
            self._generation += 1
        return changed

    def next_maintenance(self, now: float) -> float:
        """When :meth:`maintain` has work next: the current set's rotation,
        the earliest expiry of a held set, or one ``maintenance_interval``
        from ``now`` (the pool check), whichever comes first."""
        due = now + self._policy.maintenance_interval
        current = self._sets.get(self._current) if self._current is not None else None
        if current is not None:
            rotate_ms = current.record.created_ms + int(self._policy.signed_prekey_lifetime * 1000)
            due = min(due, (rotate_ms + 1) / 1000.0)
        for secrets in self._sets.values():
            due = min(due, (secrets.record.expires_ms + 1) / 1000.0)
        return max(due, now)

    def _rotate_signed(self, rng: RandomSource, now_ms: int) -> None:
        identity = self._identity
        signed_prekey = primitives.x25519_generate(rng)
        pq_prekey = primitives.mlkem_generate(rng)
        lifetime_ms = int(
            (self._policy.signed_prekey_lifetime + self._policy.signed_prekey_overlap) * 1000
        )
        record = SignedPrekeySet.create(
            owner_did=identity.did_text,
            signing=identity.signing,
            identity_dh=identity.agreement_public,
            prekey_id=self._allocate_id(),
            signed_prekey=signed_prekey.public,
            pq_prekey=pq_prekey.public,
            created_ms=now_ms,
            expires_ms=now_ms + lifetime_ms,
        )
        self._sets[record.prekey_id] = SignedPrekeySecrets(record, signed_prekey, pq_prekey)
        self._current = record.prekey_id

    def _add_one_time(self, rng: RandomSource) -> None:
        key = primitives.x25519_generate(rng)
        record = OneTimePrekey.create(
            owner_did=self._identity.did_text,
            signing=self._identity.signing,
            prekey_id=self._allocate_id(),
            public=key.public,
        )
        one_time = self._one_time
        while len(one_time) >= MAX_BUNDLE_ONE_TIME_PREKEYS:
            # Keys handed out long ago and never used (their initiator gave
            # up) make room; an INIT naming one then gets PREKEY_GONE.
            oldest = next(i for i in one_time if i not in self._fresh)
            del one_time[oldest]
        one_time[record.prekey_id] = OneTimePrekeySecret(record, key)
        self._fresh[record.prekey_id] = None

    # ----------------------------------------------------------------------
    # publishing

    def bundle(self) -> PrekeyBundle:
        """The public bundle: current signed set and every unused one-time key."""
        if self._current is None or self._current not in self._sets:
            raise PrekeyNotFound("no signed prekey set yet; call maintain() first")
        return PrekeyBundle(
            did=self._identity.did,
            signing_key=self._identity.signing_public,
            signed_prekeys=self._sets[self._current].record,
            one_time_prekeys=tuple(s.record for s in self._one_time.values()),
        )

    def hand_out(self) -> OneTimePrekey | None:
        """A one-time prekey for one bundle answer, never handed out before
        (None once every one is: the bundle then goes without, which
        PQXDH allows).  The key stays usable until an INIT consumes it;
        what was handed out is kept in memory only, so after a restart a
        key may be handed out once more, and the second INIT naming it is
        answered PREKEY_GONE (docs/PROTOCOL.md §3.11)."""
        fresh = self._fresh
        while fresh:
            prekey_id, _ = fresh.popitem(last=False)
            secret = self._one_time.get(prekey_id)
            if secret is not None:
                return secret.record
        return None

    # ----------------------------------------------------------------------
    # crypto.pqxdh.ResponderPrekeys

    def signed_prekeys(self, prekey_id: int, now: float) -> SignedPrekeySecrets:
        secrets = self._sets.get(prekey_id)
        if secrets is None:
            raise PrekeyNotFound(
                f"signed prekey set {prekey_id} is unknown or rotated out; "
                "the initiator must fetch a fresh bundle"
            )
        if to_millis(now) >= secrets.record.expires_ms:
            raise PrekeyExpired(f"signed prekey set {prekey_id} has expired")
        return secrets

    def one_time_prekey(self, prekey_id: int) -> OneTimePrekeySecret:
        secret = self._one_time.get(prekey_id)
        if secret is None:
            raise PrekeyNotFound(f"one-time prekey {prekey_id} is unknown or was already used")
        return secret

    def consume_one_time_prekey(self, prekey_id: int) -> None:
        self._fresh.pop(prekey_id, None)
        if self._one_time.pop(prekey_id, None) is None:
            raise PrekeyNotFound(f"one-time prekey {prekey_id} is unknown or was already used")
        self._generation += 1

    @property
    def generation(self) -> int:
        """A counter bumped by every change of the private state (a spent
        one-time prekey, a rotation, a refill).  The session manager
        compares it at every commit, so a change made anywhere is in the
        store, behind the durability barrier, before the next packet leaves:
        a spent one-time prekey never comes back after a crash or power cut,
        whichever code spent it."""
        return self._generation

    # ----------------------------------------------------------------------
    # persistence (contains private keys: store it protected)

    def to_bytes(self) -> bytes:
        out = Writer().u8(_STATE_VERSION)
        out.fixed(self._identity.signing_public, ED25519_PUBLIC_KEY_SIZE, "owner key")
        out.u32(self._next_id - 1).u32(self._current or 0)
        out.u16(len(self._sets))
        for secrets in self._sets.values():
            out.raw(secrets.record.encode())
            out.fixed(secrets.signed_prekey.private_bytes(), 32, "signed prekey")
            out.fixed(secrets.pq_prekey.seed(), 64, "pq prekey seed")
        out.u16(len(self._one_time))
        for secret in self._one_time.values():
            out.raw(secret.record.encode()).fixed(secret.key.private_bytes(), 32, "one-time key")
        return out.getvalue()

    @classmethod
    def from_bytes(
        cls, data: bytes, identity: Identity, policy: PrekeyPolicy | None = None
    ) -> PrekeyStore:
        """Restore a store written by :meth:`to_bytes` for ``identity``.

        Besides the structure, the ids are checked as :meth:`to_bytes` writes
        them: each key's id is unique, between 1 and the last id allocated
        (else the next allocation would reuse a published id for another
        key), and the current set is one of the sets (or 0: none yet).
        """
        r = Reader(data, "prekey store")
        version = r.u8("version")
        if version != _STATE_VERSION:
            raise MalformedMessage(f"prekey store version {version} is not supported")
        owner_key = r.fixed(ED25519_PUBLIC_KEY_SIZE, "owner key")
        if owner_key != identity.signing_public:
            raise MalformedMessage("prekey store belongs to another identity")
        store = cls(identity, policy)
        last_id = r.u32("last id")
        store._next_id = last_id + 1
        current = r.u32("current set")
        seen: set[int] = set()

        def check_id(prekey_id: int) -> None:
            if not 1 <= prekey_id <= last_id or prekey_id in seen:
                raise MalformedMessage(
                    f"prekey store: id {prekey_id} is repeated or outside [1, {last_id}]"
                )
            seen.add(prekey_id)

        for _ in range(r.u16("signed set count")):
            record = SignedPrekeySet.read(r)
            check_id(record.prekey_id)
            signed_prekey = primitives.x25519_from_private(r.fixed(32, "signed prekey"))
            pq_prekey = primitives.mlkem_from_seed(r.fixed(64, "pq prekey seed"))
            if (
                signed_prekey.public != record.signed_prekey
                or pq_prekey.public != record.pq_prekey
                or record.owner_did != identity.did_text
            ):
                raise MalformedMessage("prekey store: a signed prekey does not match its record")
            store._sets[record.prekey_id] = SignedPrekeySecrets(record, signed_prekey, pq_prekey)
        one_time_count = r.u16("one-time count")
        if one_time_count > MAX_BUNDLE_ONE_TIME_PREKEYS:
            raise MalformedMessage(f"prekey store holds {one_time_count} one-time prekeys")
        for _ in range(one_time_count):
            one_time = OneTimePrekey.read(r)
            check_id(one_time.prekey_id)
            key = primitives.x25519_from_private(r.fixed(32, "one-time key"))
            if key.public != one_time.public or one_time.owner_did != identity.did_text:
                raise MalformedMessage("prekey store: a one-time prekey does not match its record")
            store._one_time[one_time.prekey_id] = OneTimePrekeySecret(one_time, key)
            store._fresh[one_time.prekey_id] = None
        r.finish()
        if current and current not in store._sets:
            raise MalformedMessage(f"prekey store: the current set {current} is not stored")
        store._current = current or None
        return store
