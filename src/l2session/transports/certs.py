"""Throwaway TLS certificates for the QUIC transport.

QUIC cannot run without TLS 1.3, and TLS 1.3 cannot run without a server
certificate.  In l2session the certificate proves nothing: a peer's identity
is its DID, proven by the session's PQXDH handshake inside the QUIC stream,
so every node makes a fresh self-signed certificate when it starts and no
one verifies it (see :mod:`.quic`).  TLS still gives the packets
confidentiality against passive observers and QUIC its keys.

ECDSA P-256 rather than Ed25519: qh3's clients leave EdDSA out of the
signature algorithms they offer by default, P-256 every QUIC stack accepts.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The subject and issuer common name of every generated certificate.
COMMON_NAME: Final = "l2session"
#: How long a generated certificate is valid (nodes make a new one per start;
#: no peer checks the dates, this is only to be a well-formed certificate).
VALIDITY: Final = datetime.timedelta(days=365)
#: Slack before "now" for clocks that disagree.
BACKDATE: Final = datetime.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SelfSignedCertificate:
    """A PEM certificate and its PEM (PKCS#8, unencrypted) private key."""

    certificate_pem: bytes
    private_key_pem: bytes


def generate_self_signed(
    common_name: str = COMMON_NAME,
    *,
    now: datetime.datetime | None = None,
    validity: datetime.timedelta = VALIDITY,
) -> SelfSignedCertificate:
    """A new ECDSA P-256 key and a self-signed X.509 v3 certificate for it.

    ``now`` fixes the validity window (tests); by default the current UTC
    time.  The key never leaves memory: it is not written anywhere.
    """
    if validity <= datetime.timedelta(0):
        raise ValueError("validity must be positive")
    key = ec.generate_private_key(ec.SECP256R1())
    start = (now or datetime.datetime.now(datetime.UTC)) - BACKDATE
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return SelfSignedCertificate(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
