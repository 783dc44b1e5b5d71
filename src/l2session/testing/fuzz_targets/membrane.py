"""Fuzz targets of ``membrane/``: trust statements, the policy file
(TOML), audit records and audit checkpoints.
"""

from __future__ import annotations

from typing import Final

from l2session.core.lifecycle.persistence import ROUTE_MIGRATED, RouteRecord
from l2session.core.link.envelope import AccessRecord
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.errors import InvalidTrustStatement, MalformedMessage, PolicyError
from l2session.membrane.audit import Checkpoint, decode_record, encode_record
from l2session.membrane.policy_file import parse_policy
from l2session.membrane.trust_statement import TrustStatement
from l2session.testing.fuzz_targets._base import (
    _JSON_TOKENS,
    _M,
    NOW,
    FuzzTarget,
    _constant,
    _decoder,
    _require,
    _text_decoder,
    as_text,
)
from l2session.testing.fuzz_targets._fixtures import _keys


def _trust_statement(data: bytes) -> TrustStatement:
    statement = TrustStatement.from_bytes(data)
    statement.verify()
    return statement


def _check_statement(data: bytes, statement: object) -> None:
    assert isinstance(statement, TrustStatement)
    _require(statement.to_bytes() == bytes(data), "a trust statement re-encodes")


def _statement_seeds() -> tuple[bytes, ...]:
    alice, bob = _keys("alice").identity, _keys("bob").identity
    return (
        TrustStatement.sign(alice, bob.did_text, 0.75, NOW).to_bytes(),
        TrustStatement.sign(bob, "did:web:example.org", -1.0, 0.0).to_bytes(),
        TrustStatement.sign(alice, bob.did_text, 0.0, NOW + 1).to_bytes(),
    )


_POLICY_SEED: Final = """\
# Membrane policy of the Berlin chapter's node.
version = 1
expires = 2027-06-30T00:00:00+02:00

[constraints]
min_trust = 0.2
max_units = 500

[groups]
berlin = [
    "did:key:z6MkoGkqLKJdo9UuTQixJrQZrt5PLLQuD9rsGNEbFjp8a7MP",  # anna
    "did:key:z6MksdGaijQZ2MeJ7gCfHoa8T5JBgx8aWQRSWiuZWTiHHEx7",
]
stewards = ["did:key:z6MkkBritvCu9Ca77zJKQn7VWynb9gEsq1SirCyEde6LR4Ci"]
"guests.2027" = []

[[grant]]
id = "public-feed"
peers = ["*"]
resource = "feed://berlin"
actions = ["read", "subscribe"]

[[grant]]
peers = ["group:berlin", "group:stewards"]
resource = "chapter://berlin/proposals/"
action = "write"
member_of = "berlin"

[[grant]]
id = "payments"
peers = ["group:berlin", "did:key:z6MkwZnBntPPrboZWizSsn4WLpND4cUBqauYuAQ7ewQ2P4KU"]
resource = "service://payment"
actions = ["call"]
quota = { units = 100, window = "1h" }
min_trust = 0.5
expires = 2027-03-31T23:59:59Z
"""


#: decode_record's first argument, chosen by the target's first input byte.
_AUDIT_KINDS: Final = ("transition", "access", "route", "unknown")
_AUDIT_SUBJECT: Final = "did:key:z6MkoGkqLKJdo9UuTQixJrQZrt5PLLQuD9rsGNEbFjp8a7MP"


def _audit_record(data: bytes) -> object:
    """``data[0]`` picks the kind, the rest is the JSON body (as text)."""
    if not data:
        raise MalformedMessage("empty")
    kind = _AUDIT_KINDS[data[0] % len(_AUDIT_KINDS)]
    return decode_record(kind, _AUDIT_SUBJECT, 1.5, as_text(data[1:]))


def _check_audit(data: bytes, record: object) -> None:
    encoded = encode_record(record)  # type: ignore[arg-type]
    _require(decode_record(*encoded) == record, "an audit record does not survive re-encoding")


def _audit_seeds() -> tuple[bytes, ...]:
    records = (
        TransitionRecord(
            _AUDIT_SUBJECT,
            State.IDLE,
            State.HANDSHAKE_INITIATED,
            Trigger.INITIATE_HANDSHAKE,
            "x",
            1.5,
        ),
        AccessRecord(_AUDIT_SUBJECT, False, "call", "service://pay", 5, "grant", "no", None, 1.5),
        RouteRecord(
            _AUDIT_SUBJECT, "192.0.2.1:1", "tcp", "192.0.2.2:2", "quic", ROUTE_MIGRATED, 1.5
        ),
    )
    out = []
    for record in records:
        kind, _, _, body = encode_record(record)
        out.append(bytes((_AUDIT_KINDS.index(kind),)) + body.encode())
    return tuple(out)


def _check_checkpoint(data: bytes, point: object) -> None:
    """An accepted checkpoint prints back to what it parses from."""
    assert isinstance(point, Checkpoint)
    _require(point.entry_id >= 1 and len(point.digest) == 32, "a checkpoint out of range")
    _require(Checkpoint.parse(str(point)) == point, "a checkpoint does not round-trip")


_POLICY_TOKENS: Final = (
    b"version = 1",
    b"[[grant]]",
    b"[groups]",
    b"[constraints]",
    b"peers",
    b"resource",
    b"actions",
    b"action",
    b"quota",
    b"units",
    b"window",
    b"min_trust",
    b"max_units",
    b"expires",
    b"member_of",
    b'"group:',
    b'"*"',
    b"2027-01-01T00:00:00Z",
    b"://",
    b'"""',
    b"'",
)
_AUDIT_TOKENS: Final = (
    *_JSON_TOKENS,
    b'"from"',
    b'"to"',
    b'"trigger"',
    b'"reason"',
    b'"units"',
    b'"allowed"',
    b'"grant"',
    b'"cause"',
    b'"migrated"',
    b'"established"',
    b"1e999",
    b"NaN",
)


#: The targets of membrane/.
TARGETS: Final[tuple[FuzzTarget, ...]] = (
    _decoder(
        "trust_statement",
        ("l2session.membrane.trust_statement:TrustStatement.from_bytes",),
        _trust_statement,
        _statement_seeds,
        (MalformedMessage, InvalidTrustStatement),
        verify=_check_statement,
        max_len=2048,
    ),
    _text_decoder(
        "policy_file",
        ("l2session.membrane.policy_file:parse_policy",),
        parse_policy,
        _constant(_POLICY_SEED.encode(), b"version = 1\n"),
        (PolicyError,),
        max_len=8192,
        cost=2,
        tokens=_POLICY_TOKENS,
    ),
    _decoder(
        "audit_record",
        ("l2session.membrane.audit:decode_record",),
        _audit_record,
        _audit_seeds,
        _M,
        verify=_check_audit,
        max_len=2048,
        tokens=_AUDIT_TOKENS,
    ),
    _text_decoder(
        "audit_checkpoint",
        ("l2session.membrane.audit:Checkpoint.parse",),
        Checkpoint.parse,
        _constant(b"#1 " + b"ab" * 32, b"42:" + b"0f" * 32, b"#9223372036854775807 " + b"00" * 32),
        (MalformedMessage,),
        verify=_check_checkpoint,
        max_len=256,
        tokens=(b"#", b":", b" ", b"0x", b"-1"),
    ),
)
