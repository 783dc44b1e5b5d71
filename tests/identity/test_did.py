"""DID syntax (W3C DID Core ABNF) and strict Ed25519 did:key decoding."""

from __future__ import annotations

import contextlib
import hashlib
import re
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from l2session.crypto import primitives
from l2session.errors import InvalidDid, L2SessionError, MalformedMessage, UnsupportedKeyType
from l2session.identity import base58
from l2session.identity.did import (
    MAX_DID_LENGTH,
    Did,
    b64url_decode,
    b64url_encode,
    check_ed25519_public,
    codec_name,
    decode_multibase_key,
    decode_varint,
    did_key_from_ed25519,
    ed25519_from_did_key,
    ed25519_public_to_x25519,
    encode_multibase_key,
    encode_varint,
    x25519_did_key_fragment,
)

SEED0_DID = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
SEED0_PUBLIC = base58.decode("4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS")
P = 2**255 - 19

# --------------------------------------------------------------------------
# Did.parse


@pytest.mark.parametrize(
    "text",
    [
        "did:example:123456789abcdefghi",
        "did:web:example.com",
        "did:web:example.com%3A8443:user:alice",
        "did:x:a",
        "did:x::a",
        "did:x:a::b",
        "did:3:A.B-C_D",
        "did:ex:%aF%00",
        SEED0_DID,
    ],
)
def test_valid_dids_parse_and_round_trip(text: str) -> None:
    did = Did.parse(text)
    assert str(did) == text
    assert Did.parse(str(did)) == did
    assert Did(did.method, did.method_id) == did


def test_parts() -> None:
    did = Did.parse("did:web:example.com:alice")
    assert did.method == "web"
    assert did.method_id == "example.com:alice"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty string is not a DID"),
        ("key:z6Mk", "a DID starts with 'did:'"),
        ("DID:key:z6Mk", "scheme must be lowercase 'did:'"),
        ("Did:key:z6Mk", "scheme must be lowercase 'did:'"),
        ("did:", "no ':' after the method name"),
        ("did:key", "no ':' after the method name"),
        ("did::abc", "method name is empty"),
        ("did:KEY:z6Mk", r"method names are lowercase \(did:key:…\)"),
        ("did:Web:example.com", "method names are lowercase"),
        ("did:we-b:example.com", "not allowed in the DID method name"),
        ("did:key:", "method-specific identifier is empty"),
        ("did:web:example.com:", "ends with ':'"),
        ("did:web:a:", "ends with ':'"),
        ("did:web:exa mple", "character ' ' at position 11"),
        ("did:web:example.com\n", "character '\\\\n'"),
        ("did:web:ex@mple", "character '@'"),
        ("did:web:exämple", "character 'ä'"),
        ("did:web:%", "'%' at position 8 must be followed by two hex digits"),
        ("did:web:%4", "must be followed by two hex digits"),
        ("did:web:%zz", "must be followed by two hex digits"),
        ("did:web:%4g", "must be followed by two hex digits"),
    ],
)
def test_invalid_dids_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidDid, match=reason):
        Did.parse(text)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        (SEED0_DID + "#z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "fragment"),
        ("did:web:example.com/path", "path"),
        ("did:web:example.com?versionId=1", "query"),
        ("did:web:example.com#", "fragment"),
        ("did:web:example.com/a?b#c", "path starting with '/' at position 19"),
        ("did:web:example.com?a/b#c", "query starting with '\\?' at position 19"),
    ],
)
def test_did_urls_are_not_dids(text: str, part: str) -> None:
    with pytest.raises(InvalidDid, match=f"is a DID URL .*{part}.*a DID URL is not a DID"):
        Did.parse(text)


def test_overlong_input_is_refused_before_parsing() -> None:
    longest = "did:x:" + "a" * (MAX_DID_LENGTH - 6)
    assert str(Did.parse(longest)) == longest
    with pytest.raises(InvalidDid, match=f"513 characters long; the limit is {MAX_DID_LENGTH}"):
        Did.parse(longest + "a")
    with pytest.raises(InvalidDid, match="limit"):
        Did("x", "a" * 10_000)


@pytest.mark.parametrize("value", [None, b"did:key:z6Mk", 42, ["did:x:y"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidDid, match="must be a str"):
        Did.parse(value)  # type: ignore[arg-type]


def test_constructor_validates() -> None:
    with pytest.raises(InvalidDid, match="DID URL"):
        Did("key", "abc#frag")
    with pytest.raises(InvalidDid, match="lowercase"):
        Did("KEY", "abc")
    with pytest.raises(InvalidDid, match="empty"):
        Did("key", "")
    with pytest.raises(InvalidDid, match="takes two str"):
        Did("key", 5)  # type: ignore[arg-type]


def test_did_is_an_immutable_hashable_value() -> None:
    did = Did.parse(SEED0_DID)
    with pytest.raises(AttributeError):
        did.method = "web"  # type: ignore[misc]
    assert {did: 1}[Did.parse(SEED0_DID)] == 1


def test_error_messages_bound_hostile_input() -> None:
    with pytest.raises(InvalidDid) as info:
        Did.parse("did:web:" + "a" * 400 + " ")
    assert len(str(info.value)) < 200


# --------------------------------------------------------------------------
# did:key


def _did_key(payload: bytes) -> str:
    return "did:key:z" + base58.encode(payload)


def test_did_key_round_trip() -> None:
    did = did_key_from_ed25519(SEED0_PUBLIC)
    assert str(did) == SEED0_DID
    assert ed25519_from_did_key(did) == SEED0_PUBLIC
    assert ed25519_from_did_key(SEED0_DID) == SEED0_PUBLIC


def test_did_key_needs_method_key() -> None:
    with pytest.raises(InvalidDid, match="is not a did:key"):
        ed25519_from_did_key("did:web:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp")


@pytest.mark.parametrize(
    ("method_id", "reason"),
    [
        ("u7QE", r"multibase prefix must be 'z' \(base58btc\), got 'u' \(base64url\)"),
        ("f" + "ed01" + "00" * 32, r"got 'f' \(base16\)"),
        ("6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "multibase prefix must be 'z'"),
        ("Z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "multibase prefix must be 'z'"),
        ("z", "no data"),
        ("z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW0", "not in the base58btc alphabet"),
        ("1:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp", "version or extra ':'"),
    ],
)
def test_did_key_form_errors(method_id: str, reason: str) -> None:
    with pytest.raises(InvalidDid, match=reason):
        ed25519_from_did_key(Did("key", method_id))


def test_leading_ones_are_extra_zero_bytes_and_refused() -> None:
    # "z1…" is another base58 string: one leading zero byte more, so the
    # varint no longer reads 0xed and the key no longer has 32 bytes.
    with pytest.raises(L2SessionError):
        ed25519_from_did_key("did:key:z1" + SEED0_DID.removeprefix("did:key:z"))
    with pytest.raises(InvalidDid, match="got 33 bytes"):
        ed25519_from_did_key(_did_key(b"\xed\x01" + b"\x00" + SEED0_PUBLIC))


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_wrong_key_length_is_refused(length: int) -> None:
    key = (SEED0_PUBLIC * 3)[:length]
    with pytest.raises(InvalidDid, match=f"got {length} bytes .*expected 34"):
        ed25519_from_did_key(_did_key(b"\xed\x01" + key))


@pytest.mark.parametrize(
    ("did", "name"),
    [
        ("did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F", "0xec (x25519-pub)"),
        ("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme", "0xe7 (secp256k1-pub)"),
        ("did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169", "0x1200 (p256-pub)"),
        (
            "did:key:z82Lm1MpAkeJcix9K8TMiLd5NMAhnwkjjCBeWHXyu3U4oT2MVJJKXkcVBgjGhnLBn2Kaau9",
            "0x1201 (p384-pub)",
        ),
        (
            "did:key:zUC77uxiMKceQoxciSy1xgk3nvP8c8NZXDnaY1xsXZaU5UmsZdnwStUke8Ca8zAdPX3MQTHEM"
            "hDTCgfdGU7UrY4RRdVhqZp8FaAaoaXFEVp2ZAM7oj3P45BuTCfc3t9FEGBAEQY",
            "0xeb (bls12_381-g2-pub)",
        ),
        (_did_key(encode_varint(0x1205) + b"\x30" * 270), "0x1205 (rsa-pub)"),
        (_did_key(encode_varint(0x1300) + b"\x01" * 32), "0x1300 (ed25519-priv)"),
    ],
)
def test_other_key_types_are_unsupported_and_named(did: str, name: str) -> None:
    pattern = rf"uses multicodec {re.escape(name)}; .*need Ed25519 \(0xed\)"
    with pytest.raises(UnsupportedKeyType, match=pattern):
        ed25519_from_did_key(did)


def test_a_private_key_in_a_did_key_is_called_out() -> None:
    with pytest.raises(UnsupportedKeyType, match="is a private key"):
        ed25519_from_did_key(_did_key(encode_varint(0x1300) + b"\x01" * 32))


def test_unknown_codec_is_named_by_its_hex_value() -> None:
    with pytest.raises(UnsupportedKeyType, match=r"0x4242 \(unknown\)"):
        ed25519_from_did_key(_did_key(encode_varint(0x4242) + SEED0_PUBLIC))


@pytest.mark.parametrize("prefix", [b"\xed\x81\x00", b"\xed\x81\x80\x00", b"\xed\x81\x80\x80\x00"])
def test_non_minimal_varint_is_refused(prefix: bytes) -> None:
    # Each prefix decodes to 0xed, padded with zero groups.
    with pytest.raises(InvalidDid, match="not minimal"):
        ed25519_from_did_key(_did_key(prefix + SEED0_PUBLIC))


def test_truncated_varint_is_refused() -> None:
    with pytest.raises(InvalidDid, match="truncated"):
        ed25519_from_did_key(_did_key(b"\xed"))


def test_overlong_varint_is_refused() -> None:
    with pytest.raises(InvalidDid, match="longer than 9 bytes"):
        ed25519_from_did_key(_did_key(b"\xff" * 10 + SEED0_PUBLIC))


def _not_a_point() -> bytes:
    for y in range(2, 100):
        candidate = y.to_bytes(32, "little")
        try:
            check_ed25519_public(candidate)
        except MalformedMessage as exc:
            if "not a point" in str(exc):
                return candidate
    raise AssertionError("no invalid encoding found")  # pragma: no cover


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (_not_a_point(), "not a point of the curve"),
        ((1).to_bytes(32, "little"), "small-order"),  # the neutral element
        ((P - 1).to_bytes(32, "little"), "small-order"),  # order 2
        ((0).to_bytes(32, "little"), "small-order"),  # order 4
        ((P + 1).to_bytes(32, "little"), "not a point"),  # non-canonical y = 1
        (((1 << 255) | 1).to_bytes(32, "little"), "not a point"),  # x = 0 with sign bit
    ],
)
def test_invalid_points_are_refused(key: bytes, reason: str) -> None:
    # OpenSSL alone accepts all of these: the point check is ours (in primitives).
    with pytest.raises(MalformedMessage, match=reason):
        primitives.ed25519_public_key(key)
    with pytest.raises(InvalidDid, match=reason):
        ed25519_from_did_key(_did_key(b"\xed\x01" + key))
    with pytest.raises(MalformedMessage, match=reason):
        did_key_from_ed25519(key)
    with pytest.raises(MalformedMessage, match=reason):
        ed25519_public_to_x25519(key)


def test_did_key_from_wrong_length_key() -> None:
    with pytest.raises(MalformedMessage, match="32 bytes"):
        did_key_from_ed25519(b"\x01" * 31)


def test_ed25519_from_did_key_rejects_other_input_types() -> None:
    with pytest.raises(InvalidDid, match="expected a Did or str"):
        ed25519_from_did_key(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Encoding helpers


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (0x7F, b"\x7f"), (0x80, b"\x80\x01"), (0xED, b"\xed\x01"),
     (0xEC, b"\xec\x01"), (0x1200, b"\x80\x24"), (0x1205, b"\x85\x24")],
)  # fmt: skip
def test_varint_known_answers(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded + b"rest") == (value, len(encoded))


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded) == (value, len(encoded))


def test_varint_range() -> None:
    with pytest.raises(MalformedMessage):
        encode_varint(-1)
    with pytest.raises(MalformedMessage):
        encode_varint(2**63)


def test_multibase_key_round_trip_and_errors() -> None:
    text = encode_multibase_key(0xEC, b"\x09" * 32)
    assert text.startswith("z6LS")
    assert decode_multibase_key(text) == (0xEC, b"\x09" * 32)
    assert x25519_did_key_fragment(b"\x09" * 32) == text
    with pytest.raises(MalformedMessage, match="empty"):
        decode_multibase_key("")
    with pytest.raises(MalformedMessage, match="must be a str"):
        decode_multibase_key(None)  # type: ignore[arg-type]
    with pytest.raises(MalformedMessage, match="limit"):
        decode_multibase_key("z" + "2" * 5000)
    with pytest.raises(MalformedMessage, match="32 bytes"):
        x25519_did_key_fragment(b"\x09" * 31)
    assert codec_name(0xED) == "0xed (ed25519-pub)"


def test_b64url() -> None:
    assert b64url_encode(b"\xfb\xff") == "-_8"
    assert b64url_decode("-_8") == b"\xfb\xff"
    for bad, reason in [("-_8=", "no '='"), ("a", "impossible"), ("-_9", "not canonical"),
                        ("a+b/", "only A-Z")]:  # fmt: skip
        with pytest.raises(MalformedMessage, match=reason):
            b64url_decode(bad)


# --------------------------------------------------------------------------
# Properties

_ID_ALPHABET = string.ascii_letters + string.digits + ".-_"
_idchar = st.one_of(
    st.sampled_from(_ID_ALPHABET),
    st.tuples(st.sampled_from(string.hexdigits), st.sampled_from(string.hexdigits)).map(
        lambda pair: "%" + "".join(pair)
    ),
)
_segment = st.lists(_idchar, max_size=8).map("".join)
_method_id = st.tuples(st.lists(_segment, max_size=3), st.lists(_idchar, min_size=1, max_size=12))
valid_dids = st.builds(
    lambda method, parts: Did(method, ":".join([*parts[0], "".join(parts[1])])),
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8),
    _method_id,
)


@given(valid_dids)
def test_parse_of_str_round_trips(did: Did) -> None:
    assert Did.parse(str(did)) == did


@given(st.one_of(st.text(max_size=80), st.text(max_size=80).map(lambda s: "did:" + s)))
def test_arbitrary_text_parses_or_raises_invalid_did(text: str) -> None:
    try:
        did = Did.parse(text)
    except InvalidDid:
        return
    assert str(did) == text
    assert Did.parse(str(did)) == did


@given(st.binary(min_size=32, max_size=32))
def test_did_key_round_trip_for_arbitrary_keys(key: bytes) -> None:
    try:
        did = did_key_from_ed25519(key)
    except MalformedMessage:
        assume(False)
        return
    assert ed25519_from_did_key(str(did)) == key
    assert Did.parse(str(did)) == did


@given(st.text(alphabet=base58.ALPHABET + "0Il:", max_size=60))
def test_arbitrary_did_key_text_raises_only_typed_errors(method_id: str) -> None:
    with contextlib.suppress(InvalidDid, UnsupportedKeyType):
        ed25519_from_did_key("did:key:z" + method_id)


def test_x25519_map_matches_openssl_for_a_real_key() -> None:
    seed = bytes(range(32))
    public = primitives.ed25519_from_seed(seed).public
    scalar = bytearray(hashlib.sha512(seed).digest()[:32])
    assert primitives.x25519_from_private(bytes(scalar)).public == ed25519_public_to_x25519(public)
