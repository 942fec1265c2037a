"""The venue's small certificate authority: the broker's server certificate and one client certificate per
gate, arbiter and dashboard (`gate provision`, docs/operations.md).

What a caller may rely on:

* Keys are ECDSA P-256, written as unencrypted PKCS#8 PEM with mode 0600
  (created with it, never widened); certificates are PEM.
* Certificates are valid from `NOT_BEFORE` (a fixed date in the past, not
  "now"): a Raspberry Pi has no real-time clock and may boot with an old
  time, and a certificate that is "not yet valid" would keep it off the
  broker until NTP answers.
* A client certificate's common name is the MQTT user name (the broker takes it as the user name:
  ``use_identity_as_username``); the server certificate names every host the clients use (plus
  localhost).
* `Authority.crl` signs a revocation list (PEM) of the serial numbers given, valid from `NOT_BEFORE`
  until CRL_YEARS from now: the broker refuses those certificates (``crlfile``), and an expired list
  would refuse every client, so it is made to outlive the certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gate.files import write_file

NOT_BEFORE = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
CA_YEARS, LEAF_YEARS = 25, 10
CRL_YEARS = LEAF_YEARS + 1
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Authority:
    """A CA key and its self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls, name: str) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (_builder(subject, subject, key.public_key(), CA_YEARS)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    @classmethod
    def load(cls, key_file: Path, cert_file: Path) -> Authority:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file}: not an EC private key")
        return cls(key, x509.load_pem_x509_certificate(cert_file.read_bytes()))

    def save(self, key_file: Path, cert_file: Path) -> None:
        write_private(key_file, key_pem(self.key))
        write_public(cert_file, cert_pem(self.cert))

    def issue(self, common_name: str, *, server_names: Iterable[str] = ()) -> tuple[bytes, bytes]:
        """A new key and a certificate for it: (key PEM, cert PEM).  With server_names: a server certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        names = list(server_names)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (_builder(subject, self.cert.subject, key.public_key(), LEAF_YEARS)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False, key_agreement=True,
                                                key_cert_sign=False, crl_sign=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]),
                                            critical=False)
        return key_pem(key), cert_pem(builder.sign(self.key, hashes.SHA256()))

    def crl(self, revoked: Iterable[tuple[int, dt.datetime]]) -> bytes:
        """A CRL (PEM) revoking each (serial number, when)."""
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject).last_update(NOT_BEFORE)
                   .next_update(dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * CRL_YEARS)))
        for serial, when in sorted(revoked):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def signed(self, cert_file: Path) -> bool:
        """True if `cert_file` exists and was issued by this CA (same issuer name and a valid signature)."""
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            cert.verify_directly_issued_by(self.cert)
        except (OSError, ValueError, TypeError, InvalidSignature):
            return False
        return True


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             years: int) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(NOT_BEFORE)
            .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * years)))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def revoked_serials(crl_file: Path) -> dict[int, dt.datetime]:
    """Serial number -> revocation date of a CRL file ({} if there is none yet)."""
    if not crl_file.exists():
        return {}
    crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    return {r.serial_number: r.revocation_date_utc for r in crl}


def serial_number(cert_file: Path) -> int:
    return int(x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number)


def common_name(cert_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def server_names(cert_file: Path) -> set[str]:
    """The DNS names and IP addresses a server certificate is valid for."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))}


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> bool:
    """Write atomically with mode 0600, never through a symlink (gate/files.py); False (and nothing
    written) if the file already holds `data`."""
    return write_file(path, data, 0o600)


def write_public(path: Path, data: bytes) -> bool:
    return write_file(path, data, 0o644)
