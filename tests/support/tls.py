"""Certificates made on the spot for tests: a self-signed CA, and certificates it signs.

Everything is PEM. A server certificate names ``127.0.0.1`` and ``localhost`` so that
clients verifying the hostname accept it; Kafka reads the key and chain from one PEM
file (``ssl.keystore.type=PEM``) and wants the key unencrypted PKCS#8.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateFiles", "TestAuthority"]

_VALID = datetime.timedelta(days=2)


@dataclass(frozen=True)
class CertificateFiles:
    cert: Path  # the certificate, then the CA's (a chain)
    key: Path  # its private key, unencrypted PKCS#8
    bundle: Path  # key and chain in one file, as Kafka's PEM keystore reads them


class TestAuthority:
    """A CA whose certificate is written to ``<directory>/ca.pem``."""

    __test__ = False  # a helper, not a test class

    def __init__(self, directory: Path, *, name: str = "Tributary test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
        client: bool = False,
    ) -> CertificateFiles:
        """A certificate for ``hosts`` (a server's) or, with ``client``, for a client named
        ``name``; written to ``<name>.pem``, ``<name>.key`` and ``<name>.bundle.pem``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names and not client:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        chain = cert.public_bytes(serialization.Encoding.PEM) + self._cert.public_bytes(
            serialization.Encoding.PEM
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        files = CertificateFiles(
            cert=self.directory / f"{name}.pem",
            key=self.directory / f"{name}.key",
            bundle=self.directory / f"{name}.bundle.pem",
        )
        files.cert.write_bytes(chain)
        files.key.write_bytes(key_pem)
        files.key.chmod(0o600)
        files.bundle.write_bytes(key_pem + chain)
        files.bundle.chmod(0o600)
        return files
