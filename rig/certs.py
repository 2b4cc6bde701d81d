"""Certificates privrig makes for itself: the simulated devices' PKI, and the self-made
client certificate the active TLS check offers to prove a server refuses strangers.

Every key is EC P-256 (RSA 2048 where a legacy TLS stack needs it), every signature SHA-256, written as PEM with the key file mode
0600. A certificate that already exists on disk is reused, never overwritten.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def issue(cert_path: Path, key_path: Path, common_name: str, issuer: tuple[Path, Path] | None = None, ca: bool = False,
          usage: x509.ObjectIdentifier | None = None, days: int = 30, key_type: str = "ec") -> tuple[Path, Path]:
    """A certificate for ``common_name`` at ``cert_path`` (key at ``key_path``), signed by
    ``issuer`` (its certificate and key files) or self-signed; made once. ``key_type`` is
    ``ec`` (P-256) or ``rsa2048`` (for a legacy TLS stack's static-RSA suites)."""
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(65537, 2048) if key_type == "rsa2048" else ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    if issuer is None:
        issuer_name, signer = name, key
    else:
        issuer_name = x509.load_pem_x509_certificate(issuer[0].read_bytes()).subject
        signer = serialization.load_pem_private_key(issuer[1].read_bytes(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    # a negative ``days`` makes a certificate that expired that many days ago (valid for a year before)
    before = now - (datetime.timedelta(days=400) if days < 0 else datetime.timedelta(minutes=5))
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(before)
               .not_valid_after(now + datetime.timedelta(days=days)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def self_signed(directory: Path, common_name: str, days: int = 30) -> tuple[Path, Path]:
    """A self-signed certificate and key in ``directory`` (``<cn>-cert.pem``, ``<cn>-key.pem``)."""
    return issue(directory / f"{common_name}-cert.pem", directory / f"{common_name}-key.pem", common_name, days=days)
