"""Primitive wrappers: validation, typed errors, determinism, ML-KEM interop."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kyber_py.ml_kem import ML_KEM_768

from l2session.crypto import primitives
from l2session.crypto.rng import SeededRandom
from l2session.errors import AuthenticationFailed, L2SessionError, MalformedMessage
from l2session.testing.kem import deterministic_encapsulate

# --------------------------------------------------------------------------
# An independent Edwards25519 implementation, only to derive the small-order
# points from first principles: [L]P for points P lands in the 8-torsion.

P = 2**255 - 19
D = (-121665 * pow(121666, -1, P)) % P
L = 2**252 + 27742317777372353535851937790883648493
Point = tuple[int, int]


def add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P,
    )


def multiply(k: int, point: Point) -> Point:
    result: Point = (0, 1)
    while k:
        if k & 1:
            result = add(result, point)
        point = add(point, point)
        k >>= 1
    return result


def decode(encoded: bytes) -> Point | None:
    value = int.from_bytes(encoded, "little")
    y = value & ((1 << 255) - 1)
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    if (x * x - x2) % P:
        return None
    if x & 1 != value >> 255:
        x = P - x
    return x, y


def test_small_order_set_is_exactly_the_eight_torsion() -> None:
    # Arbitrary curve points (random encodings, not keys: those lie in the
    # prime-order subgroup) have random torsion components; [L]P is that part.
    rng = SeededRandom("torsion")
    torsion: set[Point] = set()
    tries = 0
    while len(torsion) < 8 and tries < 200:
        tries += 1
        point = decode(rng.random_bytes(32))
        if point is not None:
            torsion.add(multiply(L, point))
    assert len(torsion) == 8
    assert all(multiply(8, t) == (0, 1) for t in torsion)
    assert {y for _, y in torsion} == primitives.SMALL_ORDER_Y
    for x, y in torsion:
        encoded = (y | ((x & 1) << 255)).to_bytes(32, "little")
        with pytest.raises(MalformedMessage, match="small-order"):
            primitives.ed25519_public_key(encoded)


def test_generated_keys_are_accepted_and_sign() -> None:
    pair = primitives.ed25519_generate(SeededRandom(1))
    signature = primitives.ed25519_sign(pair, b"message")
    primitives.ed25519_verify(pair.public, signature, b"message", what="test")
    with pytest.raises(AuthenticationFailed, match="does not verify") as info:
        primitives.ed25519_verify(pair.public, signature, b"other", what="test")
    assert info.value.reason == "invalid_signature"


@pytest.mark.parametrize("size", [0, 63, 65])
def test_signature_of_wrong_size_is_refused(size: int) -> None:
    pair = primitives.ed25519_generate(SeededRandom(2))
    with pytest.raises(AuthenticationFailed, match="wrong size"):
        primitives.ed25519_verify(pair.public, bytes(size), b"m", what="test")


def test_verify_with_an_invalid_key_is_an_authentication_failure() -> None:
    with pytest.raises(AuthenticationFailed, match="small-order"):
        primitives.ed25519_verify((1).to_bytes(32, "little"), bytes(64), b"m", what="test")


def test_non_canonical_y_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="non-canonical"):
        primitives.ed25519_public_key((P + 2).to_bytes(32, "little"))


@given(st.binary(min_size=0, max_size=40))
def test_any_bytes_as_ed25519_key_give_a_key_or_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        primitives.ed25519_public_key(data)


def test_x25519_agreement_is_symmetric_and_refuses_small_order() -> None:
    rng = SeededRandom(3)
    a, b = primitives.x25519_generate(rng), primitives.x25519_generate(rng)
    assert primitives.x25519(a, b.public) == primitives.x25519(b, a.public)
    with pytest.raises(MalformedMessage, match="small order"):
        primitives.x25519(a, bytes(32))
    with pytest.raises(MalformedMessage, match="32 bytes"):
        primitives.x25519(a, bytes(31))


def test_key_generation_is_deterministic_under_a_seed() -> None:
    first, second = SeededRandom("k"), SeededRandom("k")
    assert primitives.x25519_generate(first).public == primitives.x25519_generate(second).public
    assert primitives.mlkem_generate(first).public == primitives.mlkem_generate(second).public
    assert primitives.ed25519_generate(first).public == primitives.ed25519_generate(second).public


def test_secrets_stay_out_of_repr() -> None:
    pair = primitives.x25519_generate(SeededRandom(4))
    assert pair.private_bytes().hex() not in repr(pair)
    kem = primitives.mlkem_generate(SeededRandom(4))
    assert kem.seed().hex()[:16] not in repr(kem)


def test_mlkem_roundtrip_and_size_checks() -> None:
    kem = primitives.mlkem_generate(SeededRandom(5))
    secret, ciphertext = primitives.mlkem_encapsulate(kem.public, SeededRandom(6))
    assert primitives.mlkem_decapsulate(kem, ciphertext) == secret
    with pytest.raises(MalformedMessage, match="ciphertext"):
        primitives.mlkem_decapsulate(kem, ciphertext[:-1])
    with pytest.raises(MalformedMessage, match="public key"):
        primitives.mlkem_encapsulate(kem.public[:-1], SeededRandom(6))
    # Coefficients >= q fail the FIPS 203 modulus check.
    with pytest.raises(MalformedMessage, match="FIPS 203"):
        primitives.mlkem_encapsulate(b"\xff" * 1184, SeededRandom(6))
    with pytest.raises(MalformedMessage, match="FIPS 203"):
        primitives.mlkem_public_key(b"\xff" * 1184)
    primitives.mlkem_public_key(kem.public)


def test_wrong_ciphertext_yields_an_unshared_secret() -> None:
    """Implicit rejection: no error, but a secret the sender does not hold."""
    kem = primitives.mlkem_generate(SeededRandom(7))
    secret, ciphertext = primitives.mlkem_encapsulate(kem.public, SeededRandom(8))
    damaged = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    assert primitives.mlkem_decapsulate(kem, damaged) != secret


def test_openssl_and_fips203_reference_agree() -> None:
    """Key generation from the same seed and encapsulation interoperate
    between OpenSSL and the FIPS 203 reference used for the vectors."""
    rng = SeededRandom("interop")
    for _ in range(3):
        seed = rng.random_bytes(64)
        ours = primitives.mlkem_from_seed(seed)
        reference_ek, _ = ML_KEM_768._keygen_internal(seed[:32], seed[32:])
        assert bytes(reference_ek) == ours.public
        secret, ciphertext = deterministic_encapsulate(ours.public, rng)
        assert primitives.mlkem_decapsulate(ours, ciphertext) == secret


def test_deterministic_encapsulation_is_deterministic() -> None:
    kem = primitives.mlkem_generate(SeededRandom(9))
    assert deterministic_encapsulate(kem.public, SeededRandom(1)) == deterministic_encapsulate(
        kem.public, SeededRandom(1)
    )
    with pytest.raises(MalformedMessage):
        deterministic_encapsulate(b"\xff" * 1184, SeededRandom(1))


def test_ct_equal() -> None:
    assert primitives.ct_equal(b"abc", b"abc")
    assert not primitives.ct_equal(b"abc", b"abd")
    assert not primitives.ct_equal(b"abc", b"ab")


@pytest.mark.parametrize(
    "call",
    [
        lambda: primitives.x25519_from_private(bytes(31)),
        lambda: primitives.ed25519_from_seed(bytes(33)),
        lambda: primitives.mlkem_from_seed(bytes(63)),
    ],
)
def test_wrong_secret_sizes_are_typed_errors(call: object) -> None:
    with pytest.raises(L2SessionError):
        call()  # type: ignore[operator]
