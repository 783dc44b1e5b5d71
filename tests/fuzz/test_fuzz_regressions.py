"""Every finding of the fuzzers, as a test with the exact input bytes.

Each test names the target and the fuzzer that found the input, what was
wrong, and asserts the behaviour the fix restored; each also runs the
registry target on the input, so the fuzzers' own check holds it too.
Inputs are written field by field (the byte layout is in the decoder's
module) rather than as one opaque hex string, so that a reader can see
which field is wrong.
"""

from __future__ import annotations

import pytest

from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.envelope import AccessRecord
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.ratchet_state import decode_snapshot
from l2session.crypto.rng import SeededRandom
from l2session.errors import MalformedMessage
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.membrane.audit import decode_record
from l2session.testing.fuzz_targets import BY_NAME

# --------------------------------------------------------------------------
# crypto/ratchet_state.py: a ratchet state (version 2) with no chains, a
# send step due, a 2,048-bit replay window and no skipped keys.


def ratchet_state(
    *,
    pending: bytes = b"\x00" + bytes(4) + bytes(32) + b"\x00",
    max_stored: int = 2000,
    skipped: bytes = bytes(4),
) -> bytes:
    return (
        b"\x02"  # version
        + bytes(96)  # root key, own private key, peer key
        + (b"\x00" + bytes(32)) * 2  # no send chain, no send header key
        + bytes(8)  # send count, previous count
        + (b"\x00" + bytes(32)) * 2  # no receive chain, no receive header key
        + bytes(4)  # receive count
        + bytes(12)  # epoch, send epoch, receive epoch
        + pending  # has pending (u8), epoch (u32), secret (32), initiates (u8)
        + b"\x01"  # send step due
        + bytes(8)  # seq
        + b"\x00\x00"  # associated data: none
        + (1000).to_bytes(4, "big")  # max skip
        + max_stored.to_bytes(4, "big")
        + (60_000).to_bytes(4, "big")  # max message
        + (2048).to_bytes(4, "big")  # window size
        + b"\x00"  # window has no top
        + bytes(8)  # window top
        + bytes(256)  # window bits
        + b"\x00"  # retired keys: none
        + skipped  # skipped count (u32) and entries
    )


#: One skipped key: ratchet key, message number 5, message key, nonce.
SKIPPED_ENTRY = bytes(range(32)) + (5).to_bytes(4, "big") + bytes(32) + bytes(12)


def test_ratchet_state_control_input_is_valid() -> None:
    """The inputs below differ from this valid state in one field only."""
    assert decode_snapshot(ratchet_state()).pending is None
    one = ratchet_state(skipped=(1).to_bytes(4, "big") + SKIPPED_ENTRY)
    assert DoubleRatchet.from_bytes(one, rng=SeededRandom("r")).to_bytes() == one


@pytest.mark.parametrize(
    "pending",
    [
        b"\x00" + (1).to_bytes(4, "big") + bytes(32) + b"\x00",  # epoch 1
        b"\x00" + bytes(4) + b"\x01" + bytes(31) + b"\x00",  # a secret
        b"\x00" + bytes(4) + bytes(32) + b"\x01",  # initiates
    ],
    ids=["epoch", "secret", "initiates"],
)
def test_ratchet_state_absent_pending_reseed_must_be_zero(pending: bytes) -> None:
    """Found by Hypothesis (ratchet_snapshot, ratchet_state): an absent
    pending re-seed with non-zero fields was accepted and re-encoded as
    zeros, so one state had many encodings (absent chain keys were already
    refused unless zero)."""
    data = ratchet_state(pending=pending)
    with pytest.raises(MalformedMessage, match="absent pending re-seed"):
        decode_snapshot(data)
    BY_NAME["ratchet_snapshot"].run(data)
    BY_NAME["ratchet_state"].run(data)


def test_ratchet_state_refuses_a_skipped_key_stored_twice() -> None:
    """Found by hand while reducing the finding above (not by a fuzzer: two
    identical 36-byte entries are out of its reach so far): two entries for
    one (ratchet key, message number) were accepted, one silently dropped
    on restore, so the state re-encoded to other bytes."""
    data = ratchet_state(skipped=(2).to_bytes(4, "big") + SKIPPED_ENTRY * 2)
    with pytest.raises(MalformedMessage, match="stored twice"):
        decode_snapshot(data)
    BY_NAME["ratchet_state"].run(data)


def test_ratchet_state_refuses_more_skipped_keys_than_its_limit() -> None:
    """Found by hand with the previous one: a state holding more skipped
    keys than its own ``max_stored`` was restored over its limit."""
    data = ratchet_state(max_stored=0, skipped=(1).to_bytes(4, "big") + SKIPPED_ENTRY)
    assert decode_snapshot(data).max_stored == 0  # structurally fine
    with pytest.raises(MalformedMessage, match="exceed its max_stored"):
        DoubleRatchet.from_bytes(data, rng=SeededRandom("r"))
    BY_NAME["ratchet_state"].run(data)


# --------------------------------------------------------------------------
# core/lifecycle/resumption.py: StoredSession.from_bytes


def stored_session(pq_keyed_at_ms: int) -> bytes:
    return (
        b"\x01"  # version
        + b"\x00\x0ddid:example:a"  # local DID
        + b"\x00\x0ddid:example:b"  # peer DID
        + bytes(96)  # peer signing key, resumption secret, lineage
        + pq_keyed_at_ms.to_bytes(8, "big")
        + (1_800_000_000_000).to_bytes(8, "big")  # issued at (ms)
        + bytes(16)  # out stream, in stream
    )


def test_stored_session_control_input_round_trips() -> None:
    data = stored_session(1_799_999_000_000)
    assert StoredSession.from_bytes(data).to_bytes() == data


@pytest.mark.parametrize("ms", [2**64 - 1, 2**53 + 1, 2**50])
def test_stored_session_refuses_times_it_cannot_write_back(ms: int) -> None:
    """Found by Hypothesis (stored_session): a time of 2**64-1 ms decoded,
    then ``to_bytes`` (saving the next ticket) raised ``struct.error``; one
    of 2**53+1 ms re-encoded as another number (float rounding)."""
    data = stored_session(ms)
    with pytest.raises(MalformedMessage, match="out of range"):
        StoredSession.from_bytes(data)
    BY_NAME["stored_session"].run(data)


# --------------------------------------------------------------------------
# identity/prekeys.py: PrekeyStore.from_bytes, for the identity of the
# all-zero Ed25519 seed and X25519 key, with no signed prekey set.

OWNER = Identity.from_secrets(bytes(32), bytes(32))
OWNER_KEY = bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")
OWNER_DID = b"did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
#: X25519 public key of the private key 00 01 02 .. 1f.
ONE_TIME_PUBLIC = bytes.fromhex("8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f")


def one_time_prekey(prekey_id: int) -> bytes:
    """A one-time prekey record and its private key (signature not checked
    when a store is restored)."""
    return (
        b"\x01"  # record version
        + len(OWNER_DID).to_bytes(2, "big")
        + OWNER_DID
        + prekey_id.to_bytes(4, "big")
        + ONE_TIME_PUBLIC
        + bytes(64)  # signature
        + bytes(range(32))  # private key
    )


def prekey_store(last_id: int, current: int, *one_time_ids: int) -> bytes:
    return (
        b"\x01"  # version
        + OWNER_KEY
        + last_id.to_bytes(4, "big")
        + current.to_bytes(4, "big")
        + b"\x00\x00"  # no signed prekey sets
        + len(one_time_ids).to_bytes(2, "big")
        + b"".join(one_time_prekey(i) for i in one_time_ids)
    )


def test_prekey_store_control_input_round_trips() -> None:
    assert OWNER.signing_public == OWNER_KEY
    assert OWNER.did_text.encode() == OWNER_DID
    data = prekey_store(1, 0, 1)
    store = PrekeyStore.from_bytes(data, OWNER)
    assert store.one_time_count == 1
    assert store.to_bytes() == data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        # last id 0: the next key would be given id 1 again
        (prekey_store(0, 0, 1), "outside"),
        (prekey_store(2, 0, 1, 1), "repeated"),
        (prekey_store(1, 0, 0), "outside"),
    ],
    ids=["id-above-last-id", "id-twice", "id-zero"],
)
def test_prekey_store_refuses_ids_it_would_reuse(data: bytes, problem: str) -> None:
    """The prekey_store round-trip check failed under Hypothesis (a long
    run); reducing it showed stores whose keys' ids were repeated, zero, or
    above the "last id" accepted: the next allocation would then publish a
    second key under an id initiators already hold, and a repeated record
    was silently dropped."""
    with pytest.raises(MalformedMessage, match=problem):
        PrekeyStore.from_bytes(data, OWNER)
    BY_NAME["prekey_store"].run(data)


def test_prekey_store_refuses_a_current_set_it_does_not_hold() -> None:
    """Found with the previous one: "current set 7" without that set was
    read as "no current set" and written back as 0 (the round trip that
    failed)."""
    data = prekey_store(7, 7, 1)
    with pytest.raises(MalformedMessage, match="current set 7"):
        PrekeyStore.from_bytes(data, OWNER)
    BY_NAME["prekey_store"].run(data)


# --------------------------------------------------------------------------
# membrane/audit.py: decode_record

#: The audit_record target's input is the kind's index (1: "access"), then
#: the body.  Found by atheris in 3 s (-dict gave it "1e999"); the body
#: decoded to ``units = inf`` and ``int(inf)`` raised OverflowError.
ATHERIS_AUDIT_CRASH = (
    b'\x01{"action":"all","allowed":false,"grant":null,"reason":"no",'
    b'"resource":"service","step":"grant","units":51e999}'
)


def test_audit_body_with_an_infinite_number_is_malformed() -> None:
    body = ATHERIS_AUDIT_CRASH[1:].decode()
    with pytest.raises(MalformedMessage, match="units is not an integer"):
        decode_record("access", "did:example:a", 1.0, body)
    BY_NAME["audit_record"].run(ATHERIS_AUDIT_CRASH)


def test_audit_body_nested_too_deeply_is_malformed() -> None:
    """Found reading decode_record after the crash above: ``json.loads``
    raises RecursionError on deep nesting, which was not caught."""
    body = "[" * 100_000 + "]" * 100_000
    with pytest.raises(MalformedMessage, match="audit entry body"):
        decode_record("transition", "did:example:a", 1.0, body)
    BY_NAME["audit_record"].run(b"\x00" + body.encode())


@pytest.mark.parametrize(
    ("field", "value"),
    [("allowed", '"no"'), ("units", "5.0"), ("units", "true"), ("reason", '{"a":1}')],
)
def test_audit_body_fields_have_the_types_encode_record_writes(field: str, value: str) -> None:
    """Found reading decode_record after the atheris crash (not by a
    fuzzer): ``bool("no")``, ``int(5.0)`` and ``str({...})`` turned wrongly
    typed fields into a record, one whose encoding is another body."""
    fields = {
        "action": '"call"',
        "allowed": "true",
        "grant": "null",
        "reason": '"ok"',
        "resource": '"service://pay"',
        "step": '"allowed"',
        "units": "1",
    }
    body = "{" + ",".join(f'"{k}":{fields[k]}' for k in sorted(fields)) + "}"
    assert isinstance(decode_record("access", "did:example:a", 1.0, body), AccessRecord)
    fields[field] = value
    body = "{" + ",".join(f'"{k}":{fields[k]}' for k in sorted(fields)) + "}"
    with pytest.raises(MalformedMessage, match="audit entry body"):
        decode_record("access", "did:example:a", 1.0, body)
    BY_NAME["audit_record"].run(b"\x01" + body.encode())
