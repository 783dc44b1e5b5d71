"""``audit checkpoint`` and ``audit verify --expect '#ID HEX'``.

A hash chain alone cannot show a rewrite by someone who can write the file:
they can recompute every digest from any entry on.  And on a running node
the head moves, so comparing heads cannot tell an honest log that grew from
a rewritten one.  A *checkpoint* fixes a point instead: ``audit checkpoint``
prints the newest entry's ``#ID HEX``, signed with the node's DID key, for
the operator to keep *outside* the database (a ticket, a log server, a
peer).  Later ``audit verify --expect '#ID HEX'`` checks that entry ID still
has exactly that digest and that the whole chain verifies through it and
beyond -- so everything up to the checkpoint is as it was, and the entries
after it extend it.  docs/MEMBRANE.md §4.3 says what is and is not detected.
"""

from __future__ import annotations

from typing import TextIO

from l2session.crypto import primitives
from l2session.errors import AuthenticationFailed, ConfigError, MalformedMessage
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.membrane.audit import AuditReport, Checkpoint, checkpoint_message
from l2session.store.sqlite import SqliteStore


def checkpoint(store: SqliteStore, passphrase: str | None, out: TextIO) -> int:
    """Verify the chain, then print its head as a signed checkpoint."""
    report = store.verify_audit()
    if not report.ok:
        out.write(
            f"audit log TAMPERED: {report.problem}; no checkpoint of a broken chain. "
            f"The last good entry is #{report.head_id}.\n"
        )
        return 1
    if report.count == 0:
        out.write("the audit log is empty: nothing to checkpoint yet\n")
        return 1
    identity = store.load_identity(passphrase)
    point = Checkpoint(report.head_id, report.head)
    signature = primitives.ed25519_sign(
        identity.signing, checkpoint_message(identity.did_text, point)
    )
    out.write(
        f"{point}\n"
        f"signature: {signature.hex()}\n"
        f"signed by: {identity.did_text}\n"
        "Keep these lines outside this database; check later with:\n"
        f"  l2session audit verify --expect '{point}' --signature {signature.hex()}\n"
    )
    return 0


def check_expected(
    store: SqliteStore,
    report: AuditReport,
    expect: str,
    signature: str | None,
    out: TextIO,
) -> int:
    """``--expect``: a checkpoint ``#ID HEX`` (or a bare head digest, as
    before checkpoints existed), checked against an intact ``report``."""
    text = expect.strip()
    if not text.startswith("#") and ":" not in text:
        if text.lower() == report.head.hex():
            out.write("head matches the expected one\n")
            return 0
        out.write(
            f"but the head differs from the expected {expect}: entries were added, removed "
            "from the end, or the log was rewritten (a checkpoint '#ID HEX' tells them apart)\n"
        )
        return 1
    try:
        point = Checkpoint.parse(text)
    except MalformedMessage as error:
        raise ConfigError(str(error)) from None
    if signature is not None:
        _check_signature(store, point, signature)
        out.write("the checkpoint's signature by this node's DID verifies\n")
    if point.entry_id > report.head_id:
        out.write(
            f"CHECKPOINT LOST: entry #{point.entry_id} no longer exists (the log ends at "
            f"#{report.head_id}): entries were removed from the end, or the log was rewritten\n"
        )
        return 1
    if not point.matches(store.audit_digest(point.entry_id)):
        out.write(
            f"CHECKPOINT BROKEN: entry #{point.entry_id} no longer has the digest "
            f"{point.digest.hex()}: the log was rewritten at or before #{point.entry_id}\n"
        )
        return 1
    beyond = report.head_id - point.entry_id
    out.write(
        f"checkpoint {point} holds: the chain verifies through it and {beyond} "
        f"entr{'y' if beyond == 1 else 'ies'} beyond\n"
    )
    return 0


def _check_signature(store: SqliteStore, point: Checkpoint, signature: str) -> None:
    did = store.stored_did()
    if did is None:
        raise ConfigError("this store holds no identity: a checkpoint signature cannot be checked")
    try:
        raw = bytes.fromhex(signature.strip())
    except ValueError:
        raise ConfigError(f"--signature {signature!r} is not hex") from None
    public = resolve_signing_key(default_resolver(), did)
    try:
        primitives.ed25519_verify(
            public, raw, checkpoint_message(did, point), what="audit checkpoint"
        )
    except AuthenticationFailed as error:
        raise ConfigError(
            f"the checkpoint's signature does not verify for {did}: it was not made by "
            f"this node for {point} ({error})"
        ) from None
