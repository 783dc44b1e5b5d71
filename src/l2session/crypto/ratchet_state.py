"""A Double Ratchet's complete state as a value, and its versioned encoding.

:meth:`DoubleRatchet.snapshot` returns a :class:`RatchetSnapshot`;
:meth:`DoubleRatchet.restore` rebuilds a ratchet from one.  The encoding here
is what the store persists.  It contains private keys: keep it protected.

Persist a snapshot *before* sending what ``encrypt`` returned: restoring an
older state and encrypting again would reuse message keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from l2session.codec import Reader, Writer
from l2session.crypto.replay import ReplayWindow
from l2session.errors import MalformedMessage

STATE_VERSION: Final = 2
MAX_STORED_SKIPPED: Final = 2_000
RETIRED_KEYS_KEPT: Final = 32
MAX_ASSOCIATED_DATA: Final = 1024
_EMPTY: Final = bytes(32)

#: (sender ratchet key, message number) -> (message key, nonce)
SkippedKeys = tuple[tuple[tuple[bytes, int], tuple[bytes, bytes]], ...]


@dataclass(frozen=True, slots=True)
class PendingReseed:
    """A post-quantum secret registered for ``epoch``.  ``initiate``: applied
    at this side's next DH step; otherwise only when the peer's chain
    announces the epoch."""

    epoch: int
    secret: bytes = field(repr=False)
    initiate: bool


@dataclass(frozen=True, slots=True)
class RatchetSnapshot:
    """Every field of a :class:`~l2session.crypto.ratchet.DoubleRatchet`."""

    root_key: bytes = field(repr=False)
    own_private: bytes = field(repr=False)
    peer_key: bytes
    send_chain: bytes | None = field(repr=False)
    send_header_key: bytes | None = field(repr=False)
    send_count: int
    previous_count: int
    recv_chain: bytes | None = field(repr=False)
    recv_header_key: bytes | None = field(repr=False)
    recv_count: int
    epoch: int
    send_epoch: int
    recv_epoch: int
    pending: PendingReseed | None
    send_step_due: bool
    seq: int
    associated_data: bytes
    max_skip: int
    max_stored: int
    max_message: int
    window: ReplayWindow = field(repr=False, compare=False)
    retired: tuple[bytes, ...]
    skipped: SkippedKeys = field(repr=False)


def _optional_key(out: Writer, key: bytes | None, name: str) -> None:
    out.flag(key is not None).fixed(key or _EMPTY, 32, name)


def _read_optional_key(r: Reader, name: str) -> bytes | None:
    present = r.flag(f"has {name}")
    key = r.fixed(32, name)
    if not present and key != _EMPTY:
        raise MalformedMessage(f"ratchet state: absent {name} is not zero")
    return key if present else None


def encode_snapshot(snap: RatchetSnapshot) -> bytes:
    out = Writer().u8(STATE_VERSION)
    out.fixed(snap.root_key, 32, "root key").fixed(snap.own_private, 32, "own key")
    out.fixed(snap.peer_key, 32, "peer key")
    _optional_key(out, snap.send_chain, "send chain")
    _optional_key(out, snap.send_header_key, "send header key")
    out.u32(snap.send_count).u32(snap.previous_count)
    _optional_key(out, snap.recv_chain, "receive chain")
    _optional_key(out, snap.recv_header_key, "receive header key")
    out.u32(snap.recv_count)
    out.u32(snap.epoch).u32(snap.send_epoch).u32(snap.recv_epoch)
    pending = snap.pending
    out.flag(pending is not None).u32(pending.epoch if pending else 0)
    out.fixed(pending.secret if pending else _EMPTY, 32, "pending secret")
    out.flag(pending.initiate if pending else False)
    out.flag(snap.send_step_due).u64(snap.seq)
    out.var16(snap.associated_data, "associated data", max_len=MAX_ASSOCIATED_DATA)
    out.u32(snap.max_skip).u32(snap.max_stored).u32(snap.max_message)
    snap.window.write(out)
    out.u8(len(snap.retired))
    for key in snap.retired:
        out.fixed(key, 32, "retired key")
    out.u32(len(snap.skipped))
    for (dh, n), (key, nonce) in snap.skipped:
        out.fixed(dh, 32, "skipped dh").u32(n).fixed(key, 32, "skipped key")
        out.fixed(nonce, 12, "skipped nonce")
    return out.getvalue()


def decode_snapshot(data: bytes) -> RatchetSnapshot:
    """Parse an encoded snapshot; structural problems raise
    :class:`MalformedMessage` (semantic ones surface in ``restore``)."""
    r = Reader(data, "ratchet state")
    version = r.u8("version")
    if version != STATE_VERSION:
        raise MalformedMessage(f"ratchet state version {version} is not supported")
    root, own, peer = r.fixed(32, "root key"), r.fixed(32, "own key"), r.fixed(32, "peer key")
    send_chain = _read_optional_key(r, "send chain")
    send_header = _read_optional_key(r, "send header key")
    send_count, previous_count = r.u32("send count"), r.u32("previous count")
    recv_chain = _read_optional_key(r, "receive chain")
    recv_header = _read_optional_key(r, "receive header key")
    recv_count = r.u32("receive count")
    epoch, send_epoch, recv_epoch = r.u32("epoch"), r.u32("send epoch"), r.u32("recv epoch")
    has_pending = r.flag("has pending")
    pending_epoch, pending_secret = r.u32("pending epoch"), r.fixed(32, "pending secret")
    pending_initiate = r.flag("pending initiates")
    if not has_pending and (pending_epoch or pending_secret != _EMPTY or pending_initiate):
        # As for the optional keys: one state, one encoding.
        raise MalformedMessage("ratchet state: absent pending re-seed is not zero")
    pending = (
        PendingReseed(pending_epoch, pending_secret, pending_initiate) if has_pending else None
    )
    send_step_due = r.flag("send step due")
    seq = r.u64("seq")
    ad = r.var16("associated data", max_len=MAX_ASSOCIATED_DATA)
    max_skip, max_stored, max_message = r.u32("max skip"), r.u32("max stored"), r.u32("max msg")
    window = ReplayWindow.read(r)
    retired_count = r.u8("retired count")
    if retired_count > RETIRED_KEYS_KEPT:
        raise MalformedMessage("ratchet state keeps too many retired keys")
    retired = tuple(r.fixed(32, "retired key") for _ in range(retired_count))
    skipped_count = r.u32("skipped count")
    if skipped_count > MAX_STORED_SKIPPED:
        raise MalformedMessage("ratchet state stores too many skipped keys")
    skipped = []
    for _ in range(skipped_count):
        ident = (r.fixed(32, "skipped dh"), r.u32("skipped n"))
        skipped.append((ident, (r.fixed(32, "skipped key"), r.fixed(12, "skipped nonce"))))
    r.finish()
    if len({ident for ident, _ in skipped}) != len(skipped):
        # A ratchet keeps one key per (ratchet key, message number).
        raise MalformedMessage("ratchet state: a skipped message key is stored twice")
    if (send_chain is None) != (send_header is None) or (recv_chain is None) != (
        recv_header is None
    ):
        raise MalformedMessage("ratchet state: a chain without its header key")
    if send_chain is None and not send_step_due:
        raise MalformedMessage("ratchet state has no sending chain and no step due")
    return RatchetSnapshot(
        root_key=root,
        own_private=own,
        peer_key=peer,
        send_chain=send_chain,
        send_header_key=send_header,
        send_count=send_count,
        previous_count=previous_count,
        recv_chain=recv_chain,
        recv_header_key=recv_header,
        recv_count=recv_count,
        epoch=epoch,
        send_epoch=send_epoch,
        recv_epoch=recv_epoch,
        pending=pending,
        send_step_due=send_step_due,
        seq=seq,
        associated_data=ad,
        max_skip=max_skip,
        max_stored=max_stored,
        max_message=max_message,
        window=window,
        retired=retired,
        skipped=tuple(skipped),
    )
