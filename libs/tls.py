"""TLS and mutual TLS between Concord's services, when certificates are configured.

``tls_cert_file``/``tls_key_file``/``tls_ca_file`` name this process's certificate, its key and the
CA that signs every service's certificate: servers then listen with TLS and require a client
certificate from that CA, and channels present this process's certificate and check the peer's.
``tls_dev_certificates`` makes a development CA and one certificate (for 127.0.0.1, localhost and
the service names docker-compose uses) at first start in ``<data_dir>/keys/tls/`` (keys 0600), for
``make demo TLS=1`` and the tests. Unset, services speak plaintext gRPC on loopback (the embedded
default), and the signed service identity (libs/service_auth.py) still authenticates every call.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from libs.settings import Settings

SERVICE_NAMES = ("localhost", "registry", "connection", "mapping", "sync", "audit", "gateway", "adapters")


@dataclass(frozen=True)
class Material:
    certificate: bytes
    key: bytes
    ca: bytes

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.certificate)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.certificate
        )


_material: Material | None = None


def install(settings: Settings) -> None:
    """Loads this process's certificates when configured; afterwards servers and channels use them."""
    global _material
    _material = material_for(settings)


def installed() -> Material | None:
    return _material


def material_for(settings: Settings) -> Material | None:
    if settings.tls_cert_file and settings.tls_key_file and settings.tls_ca_file:
        return Material(
            Path(settings.tls_cert_file).read_bytes(),
            Path(settings.tls_key_file).read_bytes(),
            Path(settings.tls_ca_file).read_bytes(),
        )
    if settings.tls_dev_certificates:
        return development_certificates(settings.data_dir / "keys" / "tls")
    return None


def development_certificates(folder: Path) -> Material:
    """A CA and a service certificate signed by it, made once (first start) and reused."""
    paths = {name: folder / f"{name}.pem" for name in ("ca", "ca-key", "service", "service-key")}
    if not all(path.exists() for path in paths.values()):
        # Made in a folder of its own and renamed into place: of several processes starting
        # together, one set wins whole.
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        staging.mkdir(mode=0o700, exist_ok=True)
        for name, data, private in _make_certificates():
            _write(staging / f"{name}.pem", data, private)
        try:
            staging.rename(folder)
        except OSError:
            shutil.rmtree(staging)
    return Material(paths["service"].read_bytes(), paths["service-key"].read_bytes(), paths["ca"].read_bytes())


def _make_certificates() -> list[tuple[str, bytes, bool]]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Concord development CA")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, days=3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(*_usage(cert_sign=True)), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(name) for name in SERVICE_NAMES] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "concord-service")])
    service = (
        _builder(subject, ca_name, key.public_key(), now)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(*_usage(cert_sign=False)), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return [
        ("ca", ca.public_bytes(serialization.Encoding.PEM), False),
        ("ca-key", _pem_key(ca_key), True),
        ("service-key", _pem_key(key), True),
        ("service", service.public_bytes(serialization.Encoding.PEM), False),
    ]


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    days: int = 825,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _usage(cert_sign: bool) -> tuple[bool, ...]:
    # digital_signature, content_commitment, key_encipherment, data_encipherment, key_agreement,
    # key_cert_sign, crl_sign, encipher_only, decipher_only
    return (not cert_sign, False, False, False, not cert_sign, cert_sign, cert_sign, False, False)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
