"""The Membrane commands: ``audit verify``, ``audit tail``, ``audit
checkpoint`` (cli/audit_checkpoint.py), ``policy check`` and ``trust``.

They read the node's store (``--home``) directly, so they work whether or
not the node runs (SQLite readers do not block the node's writer).  Exit
codes: 0 for success (an intact log, an allowed request), 1 for an error
or a failed check (a tampered log, a head that differs from ``--expect``),
3 for a request the policy denies, so that scripts can tell a denial from
a broken command.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TextIO

from l2session.cli import audit_checkpoint
from l2session.cli.commands import STORE_NAME, add_home, fail, home_of, passphrase_of
from l2session.core.link.envelope import Request
from l2session.errors import ConfigError, MalformedMessage, StoreNotFound
from l2session.identity.did import Did
from l2session.membrane.audit import KINDS, AuditEntry
from l2session.membrane.membrane import Membrane, describe_trust
from l2session.membrane.policy import format_time
from l2session.membrane.trust import TrustGraph
from l2session.membrane.trust_statement import TrustStatement
from l2session.runtime.policyfile import load_policy, load_trust, next_issue_time
from l2session.store.sqlite import SqliteStore

#: The trust root of ``policy check`` without a store or ``--as``: a name no
#: statement can be about, so every DID scores neutral.
NO_ROOT = "did:key:z6MkunknownNodeWithoutAStore"
#: Exit code of ``policy check`` for a denied request.
DENIED = 3
#: A statement file is one ``TrustStatement.to_bytes()`` (about 250 bytes).
MAX_STATEMENT_FILE = 4096


def _store(args: argparse.Namespace) -> SqliteStore:
    path = home_of(args) / STORE_NAME
    if not path.exists():
        raise StoreNotFound(
            f"{path} does not exist. Fix: create the node's store with 'l2session init"
            f"{'' if args.home is None else f' --home {args.home}'}', or pass the right --home"
        )
    return SqliteStore.open(path)


# ----------------------------------------------------------------------
# audit


def audit_verify(args: argparse.Namespace, out: TextIO) -> int:
    with _store(args) as store:
        report = store.verify_audit()
    head = f"#{report.head_id} {report.head.hex()}"
    if not report.ok:
        out.write(
            f"audit log TAMPERED: {report.problem}. The {report.count} entries before it "
            f"verify (up to #{report.head_id}); nothing from #{report.first_bad} on is proven.\n"
        )
        return 1
    out.write(f"audit log intact: {report.count} entries\nhead: {head}\n")
    if args.expect is not None:
        with _store(args) as store:
            return audit_checkpoint.check_expected(store, report, args.expect, args.signature, out)
    if args.signature is not None:
        raise ConfigError("--signature checks a checkpoint: pass it with --expect '#ID HEX'")
    return 0


def audit_sign_checkpoint(args: argparse.Namespace, out: TextIO) -> int:
    with _store(args) as store:
        return audit_checkpoint.checkpoint(store, passphrase_of(args), out)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def audit_tail(args: argparse.Namespace, out: TextIO) -> int:
    if args.count < 0:
        raise ConfigError(f"-n must be >= 0, got {args.count}")
    with _store(args) as store:
        entries = store.audit_log()
    if args.kind:
        entries = [e for e in entries if e.kind == args.kind]
    # entries[-n:] is all of them when there are fewer than n (a start of
    # len - n would go negative and count from the end).
    entries = entries[-args.count :] if args.count else []
    for entry in entries:
        if args.json:
            out.write(json.dumps(_as_json(entry), sort_keys=True) + "\n")
        else:
            out.write(f"{_when(entry.at)} {entry.describe()}\n")
    return 0


def _as_json(entry: AuditEntry) -> dict[str, object]:
    line: dict[str, object] = {
        "id": entry.id,
        "at": entry.at,
        "kind": entry.kind,
        "subject": entry.subject,
        "digest": entry.digest.hex(),
    }
    try:
        line["record"] = json.loads(entry.body)
    except ValueError:
        line["body"] = entry.body  # not JSON: shown as stored (verify names it)
    return line


# ----------------------------------------------------------------------
# policy check


def policy_check(args: argparse.Namespace, out: TextIO) -> int:
    Did.parse(args.did)  # a peer is a DID: "not-a-did" is an error, not a verdict
    policy = load_policy(args.policy)
    request = Request.parse(args.capability)
    now = time.time() if args.at is None else args.at
    graph = _trust_graph(args, now)
    membrane = Membrane(policy, graph)
    report = membrane.explain(args.did, request, now)
    out.write(f"policy {policy.source}: may {args.did} {request}?\n")
    for number, step in enumerate(report.steps, 1):
        mark = "ok " if step.passed else "NO "
        out.write(f"  {number:2}. {mark} {step.check}: {step.detail}\n")
    verdict = "ALLOWED" if report.allowed else "DENIED"
    out.write(f"{verdict}: {report.reason}\n")
    return 0 if report.allowed else DENIED


def _trust_graph(args: argparse.Namespace, now: float) -> TrustGraph:
    """The node's trust graph (rooted at its DID), or an empty one rooted
    at ``--as`` when there is no store: every DID is then neutral."""
    path = home_of(args) / STORE_NAME
    if not path.exists():
        return TrustGraph(args.root or NO_ROOT)
    with SqliteStore.open(path) as store:
        try:
            root = store.load_identity(passphrase_of(args)).did_text
        except StoreNotFound:
            root = args.root or NO_ROOT
        return load_trust(store, root, now)


# ----------------------------------------------------------------------
# trust


def trust_set(args: argparse.Namespace, out: TextIO) -> int:
    try:
        weight = float(args.weight)
    except ValueError:
        raise ConfigError(f"weight {args.weight!r} is not a number in -1..1") from None
    now = time.time()
    with _store(args) as store:
        identity = store.load_identity(passphrase_of(args))
        graph = load_trust(store, identity.did_text, now)
        statement = TrustStatement.sign(
            identity, args.did, weight, next_issue_time(graph, identity.did_text, args.did, now)
        )
        graph.add(statement, now)
        store.put_trust(statement.issuer, statement.subject, statement.to_bytes())
        store.commit()
        verb = "revoked" if statement.is_revocation else f"set to {statement.weight:+.3f}"
        out.write(
            f"trust in {args.did} {verb}; its score is now {graph.score(args.did, now):.3f} "
            "(a running node uses it after SIGHUP or a restart)\n"
        )
    return 0


def trust_show(args: argparse.Namespace, out: TextIO) -> int:
    now = time.time()
    with _store(args) as store:
        root = store.load_identity(passphrase_of(args)).did_text
        graph = load_trust(store, root, now)
    if args.did is None:
        out.write(f"trust graph of {root}: {graph.node_count} DIDs, {len(graph)} edges\n")
        for st in graph.edges_of(root):
            out.write(f"  {st.subject} {st.weight:+.3f} (since {format_time(st.issued_at)})\n")
        return 0
    explanation = graph.explain(args.did, now)
    out.write(f"{args.did}: {describe_trust(explanation)}\n")
    return 0


def import_statement(args: argparse.Namespace, out: TextIO) -> int:
    """``trust import FILE``: a statement another DID signed (binary)."""
    try:
        with Path(args.file).open("rb") as file:
            data = file.read(MAX_STATEMENT_FILE + 1)
    except OSError as exc:
        return fail(f"{args.file}: cannot read it: {exc.strerror}")
    if len(data) > MAX_STATEMENT_FILE:
        return fail(f"{args.file}: larger than a trust statement can be ({MAX_STATEMENT_FILE} B)")
    try:
        statement = TrustStatement.from_bytes(data)
    except MalformedMessage as exc:
        return fail(f"{args.file}: not a trust statement ({exc})")
    now = time.time()
    with _store(args) as store:
        root = store.load_identity(passphrase_of(args)).did_text
        graph = load_trust(store, root, now)
        changed = graph.add(statement, now)
        if changed:
            store.put_trust(statement.issuer, statement.subject, statement.to_bytes())
            store.commit()
    out.write(
        f"{'added' if changed else 'already held'}: {statement.issuer} -> "
        f"{statement.subject} {statement.weight:+.3f}\n"
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="the node's hash-chained audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    p = audit_sub.add_parser("verify", help="check every entry of the chain; name the first bad")
    add_home(p)
    p.add_argument(
        "--expect",
        metavar="'#ID HEX'",
        help="a checkpoint kept earlier: entry ID must still have digest HEX",
    )
    p.add_argument(
        "--signature", metavar="HEX", help="the checkpoint's signature, checked against the DID"
    )
    p.set_defaults(handler=audit_verify)
    p = audit_sub.add_parser(
        "checkpoint", help="print the head as '#ID HEX', signed with the node's DID key"
    )
    add_home(p)
    p.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in $VAR")
    p.set_defaults(handler=audit_sign_checkpoint)
    p = audit_sub.add_parser("tail", help="the most recent entries")
    add_home(p)
    p.add_argument("-n", dest="count", type=int, default=20, help="how many (default 20)")
    p.add_argument("--kind", choices=KINDS, help="only this kind")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=audit_tail)

    policy = commands.add_parser("policy", help="capability policies (the Membrane)")
    policy_sub = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    p = policy_sub.add_parser("check", help="explain, step by step, what POLICY decides")
    add_home(p)
    p.add_argument("policy", help="the policy file (TOML)")
    p.add_argument("did", help="the peer asking")
    p.add_argument("capability", help="'ACTION RESOURCE [UNITS]', e.g. 'call service://payment 5'")
    p.add_argument("--at", type=float, default=None, metavar="UNIX_TIME", help="decide as of then")
    p.add_argument("--as", dest="root", metavar="DID", help="trust root when there is no store")
    p.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in $VAR")
    p.set_defaults(handler=policy_check)

    trust = commands.add_parser("trust", help="the QVL trust graph (signed, weighted edges)")
    trust_sub = trust.add_subparsers(dest="trust_command", metavar="SUBCOMMAND", required=True)
    p = trust_sub.add_parser(
        "set", help="sign and store this node's trust in DID (-1..1; 0 revokes)"
    )
    add_home(p)
    p.add_argument("did")
    p.add_argument("weight")
    p.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in $VAR")
    p.set_defaults(handler=trust_set)
    p = trust_sub.add_parser("show", help="the graph, or one DID's score and strongest paths")
    add_home(p)
    p.add_argument("did", nargs="?")
    p.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in $VAR")
    p.set_defaults(handler=trust_show)
    p = trust_sub.add_parser("import", help="add a statement another DID signed (a file)")
    add_home(p)
    p.add_argument("file")
    p.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in $VAR")
    p.set_defaults(handler=import_statement)
