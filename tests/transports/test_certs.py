"""The QUIC transport's throwaway self-signed certificates."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from qh3.quic.configuration import QuicConfiguration

from l2session.transports.certs import COMMON_NAME, generate_self_signed


def test_certificate_is_self_signed_p256_and_matches_its_key() -> None:
    generated = generate_self_signed()
    certificate = x509.load_pem_x509_certificate(generated.certificate_pem)
    key = serialization.load_pem_private_key(generated.private_key_pem, password=None)

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    public = certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()
    # Self-signed: issuer is subject, and the signature verifies with its own key.
    assert certificate.issuer == certificate.subject
    assert certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == (
        COMMON_NAME
    )
    certificate.verify_directly_issued_by(certificate)
    assert b"ENCRYPTED" not in generated.private_key_pem


def test_validity_window_covers_now() -> None:
    now = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)
    generated = generate_self_signed(now=now, validity=datetime.timedelta(days=2))
    certificate = x509.load_pem_x509_certificate(generated.certificate_pem)
    assert certificate.not_valid_before_utc < now < certificate.not_valid_after_utc
    assert certificate.not_valid_after_utc - now == datetime.timedelta(days=2)


def test_each_call_makes_a_new_key() -> None:
    first, second = generate_self_signed(), generate_self_signed()
    assert first.private_key_pem != second.private_key_pem
    assert first.certificate_pem != second.certificate_pem


def test_qh3_loads_it() -> None:
    generated = generate_self_signed("node.example")
    configuration = QuicConfiguration(is_client=False)
    configuration.load_cert_chain(generated.certificate_pem, generated.private_key_pem)
    assert configuration.certificate is not None
    assert configuration.private_key is not None
    assert configuration.certificate.self_signed


def test_validity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="validity"):
        generate_self_signed(validity=datetime.timedelta(0))
