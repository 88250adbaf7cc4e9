"""A private certificate authority and the certificates of MQTT over TLS (``cryptography``).

``stack up`` makes one for its Mosquitto, and ``twin-stream certs make DIR --host NAME`` makes
one for docker compose or a real broker. Everything lives in one folder, laid out so that each
party can be given exactly the subfolder it needs::

    DIR/ca/ca.crt, ca.key                  the CA; ca.key signs every certificate: keep it private
    DIR/server/server.crt, server.key,     the broker's certificate and key, and the CA
               ca.crt                      (to check client certificates against)
    DIR/public/ca.crt                      all a client needs to verify the broker
    DIR/clients/NAME/client.crt,           one client certificate (optional: per device, or
                     client.key, ca.crt    the bridge's), for a broker that requires them

Making it again keeps what is still good: the CA, a server certificate that covers the same
host names and is not about to expire, and client certificates. Keys are EC P-256, certificates
SHA-256; every key file is readable by its owner only.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     files = server_files(Path(d), ["broker.example.org", "127.0.0.1"])
...     sorted(p.name for p in (Path(d) / "server").iterdir())
['ca.crt', 'server.crt', 'server.key']
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from twin_stream.errors import ConfigError

__all__ = [
    "CA_DAYS",
    "CertificateAuthority",
    "LEAF_DAYS",
    "TlsFiles",
    "client_files",
    "ensure_ca",
    "server_files",
    "write_pair",
]

#: How long the CA and the certificates it signs are valid (397 days: what browsers and Apple
#: accept for a leaf; the same rule keeps a forgotten certificate from living for years).
CA_DAYS: Final = 3650
LEAF_DAYS: Final = 397
#: A certificate that expires sooner than this is issued again when the folder is made again.
RENEW_BEFORE: Final = dt.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    """One party's TLS files: the CA to verify the other side with, its certificate and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "twin-stream"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """A DNS name or an IP address for each host: clients match the host they dial."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def write_pair(
    cert_path: Path, cert: x509.Certificate, key_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    """Write a certificate (PEM) and its key (PEM, PKCS#8, unencrypted, mode 0600)."""
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created owner-only: the key is never readable by others, not even for a moment.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(
        cls, name: str = "twin-stream private CA", *, days: int = CA_DAYS
    ) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        """The CA in these two PEM files (a ConfigError if they cannot be read)."""
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(f"cannot load the CA {cert_path}, {key_path}: {e}") from e
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{key_path}: not an EC private key")
        return cls(cert, key)

    def issue(
        self,
        common_name: str,
        *,
        hosts: Sequence[str] = (),
        client: bool = False,
        days: int = LEAF_DAYS,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A new key and its certificate: a server's for ``hosts`` (each a DNS name or an IP
        address), or a client's (``client=True``). ``not_before``/``not_after`` override the
        validity (a test makes an expired certificate with them)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        start = not_before or now - dt.timedelta(minutes=5)
        end = not_after or now + dt.timedelta(days=days)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        ca_public = self.key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_subject_alt_names(hosts)), critical=False
            )
        return builder.sign(self.key, hashes.SHA256()), key

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def ensure_ca(root: Path) -> CertificateAuthority:
    """The CA under ``root/ca``, made if there is none (or it is about to expire)."""
    cert_path, key_path = root / "ca" / "ca.crt", root / "ca" / "ca.key"
    if cert_path.exists() and key_path.exists():
        ca = CertificateAuthority.load(cert_path, key_path)
        if ca.cert.not_valid_after_utc - _now() > RENEW_BEFORE:
            return ca
    ca = CertificateAuthority.create()
    write_pair(cert_path, ca.cert, key_path, ca.key)
    return ca


def _still_good(cert_path: Path, ca: CertificateAuthority, hosts: Sequence[str]) -> bool:
    """Whether the certificate at ``cert_path`` was issued by ``ca``, is valid for a while yet
    and (if ``hosts``) covers exactly those hosts."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.issuer != ca.cert.subject or cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return False
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if not hosts:
        return True
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(names) == set(_subject_alt_names(hosts))


def server_files(root: Path, hosts: Sequence[str], *, days: int = LEAF_DAYS) -> TlsFiles:
    """The broker's files under ``root/server`` for ``hosts`` (and ``root/public/ca.crt`` for
    its clients), made or kept as the module says."""
    if not hosts:
        raise ConfigError("a server certificate needs at least one host name")
    ca = ensure_ca(root)
    folder = root / "server"
    files = TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    if not (files.key_file.exists() and _still_good(files.cert_file, ca, hosts)):
        cert, key = ca.issue(hosts[0], hosts=hosts, days=days)
        write_pair(files.cert_file, cert, files.key_file, key)
    files.ca_file.write_bytes(ca.pem())
    (root / "public").mkdir(parents=True, exist_ok=True)
    (root / "public" / "ca.crt").write_bytes(ca.pem())
    return files


def client_files(root: Path, name: str, *, days: int = LEAF_DAYS) -> TlsFiles:
    """A client certificate for ``name`` (a device id, or the bridge) under
    ``root/clients/NAME``, made or kept as the module says."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"not a usable client name for a certificate: {name!r}")
    ca = ensure_ca(root)
    folder = root / "clients" / name
    files = TlsFiles(folder / "ca.crt", folder / "client.crt", folder / "client.key")
    if not (files.key_file.exists() and _still_good(files.cert_file, ca, ())):
        cert, key = ca.issue(name, client=True, days=days)
        write_pair(files.cert_file, cert, files.key_file, key)
    files.ca_file.write_bytes(ca.pem())
    return files
