"""The identity key-file format: round trips and strict refusal of bad files."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    ConfigError,
    KeyFileError,
    KeyFileFormatError,
    PassphraseRequired,
    WrongPassphrase,
)
from l2session.identity.identity import Identity
from l2session.identity.keyfile import (
    FORMAT,
    MAX_KEYFILE_SIZE,
    VERSION,
    decode_identity,
    encode_identity,
)

FAST_N = 2**10
PASSPHRASE = "correct horse battery staple"
SOURCE = "/home/alice/.local/share/l2session/identity.json"


def alice() -> Identity:
    return Identity.generate(SeededRandom("alice"))


def bob() -> Identity:
    return Identity.generate(SeededRandom("bob"))


def encoded(passphrase: str | None = PASSPHRASE, identity: Identity | None = None) -> bytes:
    return encode_identity(
        identity or alice(), passphrase=passphrase, rng=SeededRandom("salt"), scrypt_n=FAST_N
    )


def same_identity(a: Identity, b: Identity) -> bool:
    return (
        a.did == b.did
        and a.signing.seed() == b.signing.seed()
        and a.agreement.private_bytes() == b.agreement.private_bytes()
    )


def edited(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(data)
    edit(doc)
    return json.dumps(doc).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secrets_of(identity: Identity) -> list[str]:
    """Renderings of the secret keys that must never appear in messages."""
    out = []
    for raw in (identity.signing.seed(), identity.agreement.private_bytes()):
        out += [raw.hex(), b64(raw), repr(raw)]
    return out


# --------------------------------------------------------------------------
# Round trips


def test_roundtrip_unencrypted() -> None:
    data = encoded(None)
    doc = json.loads(data)
    assert doc == {
        "format": FORMAT,
        "version": VERSION,
        "did": str(alice().did),
        "protection": "none",
        "secret": doc["secret"],
    }
    assert len(base64.b64decode(doc["secret"])) == 64
    assert same_identity(decode_identity(data, passphrase=None), alice())


def test_roundtrip_encrypted() -> None:
    data = encoded()
    doc = json.loads(data)
    assert set(doc) == {"format", "version", "did", "protection", "kdf", "nonce", "secret"}
    assert doc["protection"] == "passphrase"
    assert doc["kdf"]["name"] == "scrypt"
    assert (doc["kdf"]["n"], doc["kdf"]["r"], doc["kdf"]["p"]) == (FAST_N, 8, 1)
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert len(base64.b64decode(doc["nonce"])) == 12
    text = data.decode()
    assert not any(s in text for s in secrets_of(alice()))
    assert same_identity(decode_identity(data, passphrase=PASSPHRASE), alice())


def test_roundtrip_with_default_scrypt_cost() -> None:
    data = encode_identity(alice(), passphrase=PASSPHRASE, rng=SeededRandom("salt"))
    assert json.loads(data)["kdf"]["n"] == 2**15
    assert same_identity(decode_identity(data, passphrase=PASSPHRASE), alice())


def test_roundtrip_non_did_key_identity() -> None:
    web = Identity.generate(SeededRandom("web"), did="did:web:example.org")
    for passphrase in (None, PASSPHRASE):
        back = decode_identity(encoded(passphrase, web), passphrase=passphrase)
        assert same_identity(back, web)


def test_encoding_is_deterministic_given_the_rng() -> None:
    assert encoded() == encoded()
    other = encode_identity(
        alice(), passphrase=PASSPHRASE, rng=SeededRandom("other"), scrypt_n=FAST_N
    )
    assert other != encoded()


def test_passphrase_is_nfc_normalised() -> None:
    composed, decomposed = "caf\u00e9 cr\u00e8me", "cafe\u0301 cre\u0300me"
    data = encoded(composed)
    assert same_identity(decode_identity(data, passphrase=decomposed), alice())


def test_empty_passphrase_treated_as_none_for_unencrypted_file() -> None:
    assert same_identity(decode_identity(encoded(None), passphrase=""), alice())


# --------------------------------------------------------------------------
# Passphrase problems


def test_wrong_passphrase() -> None:
    with pytest.raises(WrongPassphrase, match="wrong passphrase") as info:
        decode_identity(encoded(), passphrase="Tr0ub4dor&3", source=SOURCE)
    assert SOURCE in str(info.value)


@pytest.mark.parametrize("passphrase", [None, ""])
def test_missing_passphrase(passphrase: str | None) -> None:
    with pytest.raises(PassphraseRequired, match="encrypted") as info:
        decode_identity(encoded(), passphrase=passphrase, source=SOURCE)
    assert SOURCE in str(info.value)


def test_passphrase_for_unencrypted_file_is_refused() -> None:
    with pytest.raises(KeyFileError, match="not encrypted"):
        decode_identity(encoded(None), passphrase=PASSPHRASE, source=SOURCE)


def test_empty_passphrase_refused_when_encoding() -> None:
    with pytest.raises(ConfigError, match="empty"):
        encode_identity(alice(), passphrase="", rng=SeededRandom("x"), scrypt_n=FAST_N)


@pytest.mark.parametrize(
    ("n", "r", "p"),
    [
        (2**9, 8, 1),
        (2**21, 1, 1),
        (3000, 8, 1),
        (2**10, 0, 1),
        (2**10, 33, 1),
        (2**10, 8, 0),
        (2**10, 8, 17),
        (2**20, 32, 1),
    ],
)
def test_out_of_range_scrypt_parameters_refused_when_encoding(n: int, r: int, p: int) -> None:
    with pytest.raises(ConfigError, match="scrypt"):
        encode_identity(
            alice(),
            passphrase=PASSPHRASE,
            rng=SeededRandom("x"),
            scrypt_n=n,
            scrypt_r=r,
            scrypt_p=p,
        )


# --------------------------------------------------------------------------
# Tampering: the associated data covers every public field


def _set_kdf(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["kdf"][name] = value

    return edit


def _flip_secret_bit(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["secret"]))
    raw[5] ^= 1
    doc["secret"] = b64(bytes(raw))


def _swap_did(doc: dict[str, Any]) -> None:
    doc["did"] = str(bob().did)


@pytest.mark.parametrize(
    "edit",
    [
        _flip_secret_bit,
        _swap_did,
        _set_kdf("n", 2**11),
        _set_kdf("r", 7),
        _set_kdf("p", 2),
        _set_kdf("salt", b64(bytes(16))),
        lambda doc: doc.update(nonce=b64(bytes(12))),
    ],
    ids=["ciphertext", "did", "kdf-n", "kdf-r", "kdf-p", "kdf-salt", "nonce"],
)
def test_tampered_encrypted_file_fails_decryption(edit: Callable[[dict[str, Any]], None]) -> None:
    with pytest.raises(WrongPassphrase, match="modified"):
        decode_identity(edited(encoded(), edit), passphrase=PASSPHRASE, source=SOURCE)


def test_swapped_did_in_unencrypted_file_is_caught_for_did_key() -> None:
    data = edited(encoded(None), _swap_did)
    with pytest.raises(KeyFileFormatError) as info:
        decode_identity(data, passphrase=None, source=SOURCE)
    assert SOURCE in str(info.value)


# --------------------------------------------------------------------------
# Malformed files


def _fmt_error(data: bytes, match: str, passphrase: str | None = PASSPHRASE) -> str:
    with pytest.raises(KeyFileFormatError, match=match) as info:
        decode_identity(data, passphrase=passphrase, source=SOURCE)
    message = str(info.value)
    assert message.startswith(SOURCE)
    assert not any(s in message for s in secrets_of(alice()))
    return message


@pytest.mark.parametrize("cut", [0, 1, 10, 100, -2])
def test_truncated_json(cut: int) -> None:
    data = encoded()
    _fmt_error(data[:cut] if cut else b"", "not valid JSON")


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01binary",
        b"hello",
        b"{",
        b"[1, 2]",
        b'"text"',
        b"42",
        b"null",
        "{}".encode("utf-16"),
    ],
)
def test_not_a_key_file(data: bytes) -> None:
    _fmt_error(data, "not an l2session identity file")


def test_not_utf8() -> None:
    _fmt_error(b'{"format": "\xff"}', "not UTF-8")


def test_oversized_input() -> None:
    _fmt_error(b" " * (MAX_KEYFILE_SIZE + 1), "too large")


@pytest.mark.parametrize("value", ["l2session-identity-v2", "ssh-key", 1, None])
def test_wrong_format_string(value: Any) -> None:
    _fmt_error(edited(encoded(), lambda d: d.update(format=value)), "not an l2session identity")


def test_missing_format() -> None:
    _fmt_error(edited(encoded(), lambda d: d.pop("format")), "format is missing")


def test_newer_version() -> None:
    def newer(doc: dict[str, Any]) -> None:
        doc["version"] = 2
        doc["argon2"] = {"m": 1}  # a newer version may add fields we do not know

    message = _fmt_error(edited(encoded(), newer), "newer l2session")
    assert "upgrade" in message


@pytest.mark.parametrize("value", [0, -1, "1", 1.0, True, None, [1]])
def test_bad_version(value: Any) -> None:
    _fmt_error(edited(encoded(), lambda d: d.update(version=value)), "bad version")


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE])
def test_unknown_top_level_field(passphrase: str | None) -> None:
    data = edited(encoded(passphrase), lambda d: d.update(comment="hi"))
    _fmt_error(data, "unknown field 'comment'", passphrase)


def test_kdf_fields_in_unencrypted_file_are_unknown() -> None:
    data = edited(encoded(None), lambda d: d.update(nonce=b64(bytes(12))))
    _fmt_error(data, "unknown field 'nonce'", None)


def test_unknown_kdf_field() -> None:
    _fmt_error(edited(encoded(), _set_kdf("maxmem", 1)), "unknown field 'kdf.maxmem'")


@pytest.mark.parametrize("name", ["did", "secret", "protection", "kdf", "nonce"])
def test_missing_field(name: str) -> None:
    _fmt_error(edited(encoded(), lambda d: d.pop(name)), name)


def test_duplicate_field() -> None:
    text = encoded(None).decode().replace('"version": 1,', '"version": 1, "version": 1,')
    _fmt_error(text.encode(), "appears twice", None)


def test_json_constants_refused() -> None:
    text = encoded().decode().replace('"p": 1', '"p": NaN')
    _fmt_error(text.encode(), "not valid JSON")


@pytest.mark.parametrize("value", ["rot13", None, 1, "None"])
def test_unknown_protection(value: Any) -> None:
    _fmt_error(edited(encoded(), lambda d: d.update(protection=value)), "protection must be")


@pytest.mark.parametrize("value", [None, 5, "", "not a did", "did:", "x" * 5000])
def test_bad_did(value: Any) -> None:
    _fmt_error(edited(encoded(None), lambda d: d.update(did=value)), "invalid identity file", None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("secret", "!!!notbase64!!!"),
        ("secret", "QUJD"[:3]),  # missing padding
        ("secret", "QR=="),  # non-canonical: the unused bits are not zero
        ("secret", "QQ==\n"),
        ("secret", "Q Q=="),
        ("secret", "QUJD\u00e9"),
        ("secret", 12),
        ("nonce", "AAAA-_AA"),  # URL-safe alphabet
    ],
)
def test_bad_base64(field: str, value: Any) -> None:
    match = "must be a string" if not isinstance(value, str) else "not valid base64"
    _fmt_error(edited(encoded(), lambda d: d.update({field: value})), match)


@pytest.mark.parametrize("size", [0, 63, 65, 80])
def test_wrong_secret_length_unencrypted(size: int) -> None:
    data = edited(encoded(None), lambda d: d.update(secret=b64(bytes(size))))
    _fmt_error(data, "secret must be 64 bytes", None)


@pytest.mark.parametrize("size", [64, 79, 81])
def test_wrong_ciphertext_length(size: int) -> None:
    data = edited(encoded(), lambda d: d.update(secret=b64(bytes(size))))
    _fmt_error(data, "secret must be 80 bytes")


@pytest.mark.parametrize("size", [0, 8, 11, 13, 24])
def test_wrong_nonce_length(size: int) -> None:
    _fmt_error(edited(encoded(), lambda d: d.update(nonce=b64(bytes(size)))), "nonce must be 12")


@pytest.mark.parametrize("size", [0, 15, 65])
def test_wrong_salt_length(size: int) -> None:
    _fmt_error(edited(encoded(), _set_kdf("salt", b64(bytes(size)))), "salt must be 16 to 64")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 2**40),
        ("n", 2**1000),
        ("n", 10**4000),
        ("n", 2**21),
        ("n", 2**9),
        ("n", 0),
        ("n", -(2**15)),
        ("n", 2**15 + 1),
        ("r", 0),
        ("r", 33),
        ("r", 2**31),
        ("p", 0),
        ("p", 17),
        ("n", 2.0**15),
        ("r", "8"),
        ("p", True),
    ],
)
def test_absurd_scrypt_parameters(name: str, value: Any) -> None:
    message = _fmt_error(edited(encoded(), _set_kdf(name, value)), "kdf|scrypt")
    assert len(message) < 400


def test_scrypt_memory_and_work_are_bounded_together() -> None:
    def costly(doc: dict[str, Any]) -> None:
        doc["kdf"].update(n=2**20, r=32, p=16)  # each within its own bound: 4 GiB

    _fmt_error(edited(encoded(), costly), "MiB")

    def slow(doc: dict[str, Any]) -> None:
        doc["kdf"].update(n=2**18, r=8, p=16)  # 256 MiB, 16 times over

    _fmt_error(edited(encoded(), slow), "cost")


def test_unsupported_kdf() -> None:
    _fmt_error(edited(encoded(), _set_kdf("name", "argon2id")), "unsupported kdf")
    _fmt_error(edited(encoded(), lambda d: d.update(kdf="scrypt")), "kdf must be an object")


def test_malformed_encrypted_file_reported_before_asking_for_passphrase() -> None:
    data = edited(encoded(), lambda d: d.update(nonce="bad"))
    _fmt_error(data, "nonce", None)


def test_repr_shows_no_secret() -> None:
    identity = decode_identity(encoded(), passphrase=PASSPHRASE)
    assert not any(s in repr(identity) for s in secrets_of(identity))


# --------------------------------------------------------------------------
# Fuzzing: hostile bytes only ever raise KeyFileError


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), passphrase=st.sampled_from([None, "", PASSPHRASE]))
def test_arbitrary_bytes_raise_only_key_file_errors(data: bytes, passphrase: str | None) -> None:
    with pytest.raises(KeyFileError):
        decode_identity(data, passphrase=passphrase)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)

_FIELDS = ["format", "version", "did", "protection", "kdf", "nonce", "secret"]
_KDF_FIELDS = ["name", "n", "r", "p", "salt"]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    encrypted=st.booleans(),
    top=st.dictionaries(st.sampled_from(_FIELDS), _json_values, max_size=3),
    kdf=st.dictionaries(st.sampled_from(_KDF_FIELDS), _json_values, max_size=2),
    drop=st.lists(st.sampled_from(_FIELDS), max_size=2),
    passphrase=st.sampled_from([None, PASSPHRASE, "wrong"]),
)
def test_mutated_files_raise_only_key_file_errors(
    encrypted: bool,
    top: dict[str, Any],
    kdf: dict[str, Any],
    drop: list[str],
    passphrase: str | None,
) -> None:
    doc = json.loads(encoded(PASSPHRASE if encrypted else None))
    if encrypted:
        doc["kdf"].update(kdf)
    doc.update(top)
    for name in drop:
        doc.pop(name, None)
    data = json.dumps(doc).encode()
    try:
        identity = decode_identity(data, passphrase=passphrase)
    except KeyFileError as exc:
        message = str(exc)
    else:  # only edits that change nothing of substance are accepted
        assert identity.signing.seed() == alice().signing.seed()
        assert identity.agreement.private_bytes() == alice().agreement.private_bytes()
        return
    assert not any(s in message for s in secrets_of(alice()))


@settings(max_examples=200, deadline=None)
@given(value=_json_values)
def test_arbitrary_json_raises_only_key_file_errors(value: Any) -> None:
    with pytest.raises(KeyFileError):
        decode_identity(json.dumps(value).encode(), passphrase=PASSPHRASE)


@settings(max_examples=200, deadline=None)
@given(
    suffix=st.text(max_size=80)
    | st.text(
        alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
        min_size=1,
        max_size=60,
    ).map(lambda s: "z" + s)
)
def test_hostile_did_key_raises_only_key_file_errors(suffix: str) -> None:
    data = edited(encoded(None), lambda d: d.update(did="did:key:" + suffix))
    with pytest.raises(KeyFileError):
        decode_identity(data, passphrase=None)
