"""The emulator's certificate authority and the server certificates it signs.

RDS Proxy presents a certificate signed by an Amazon root CA, and function
code trusts that root (the Lambda runtime ships it). Here one CA, made once
per machine, stands for the Amazon root: its key and certificate are cached
under ``localstack/.run/ca/`` (``$AWSRULES_RUN_DIR/ca`` when that is set), so
every emulator process and every test signs with the same CA and a client
needs a single bundle, ``ca_bundle_path()``, as its trust store
(``SSL_CERT_FILE``). Server certificates are cheap (ECDSA P-256) and are made
in memory, once per hostname and process.

    ca_pem() -> bytes                       the CA certificate, PEM
    ca_bundle_path() -> str                 a file holding it
    server_context(hostname) -> SSLContext  TLS 1.2+, cert for `hostname`
"""

import datetime
import fcntl
import ipaddress
import os
import ssl
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "Emulated Amazon RDS Root CA"
_CA_YEARS = 20
_SERVER_DAYS = 398  # the longest that browsers and some TLS stacks accept

_lock = threading.Lock()
_ca = None  # (private key, certificate), loaded or made once per process
_contexts: dict = {}  # hostname -> ssl.SSLContext


def ca_dir() -> Path:
    """localstack/.run/ca, or $AWSRULES_RUN_DIR/ca (as dbservers.py's run dir)."""
    run_dir = os.environ.get("AWSRULES_RUN_DIR") or Path(__file__).resolve().parents[2] / ".run"
    return Path(run_dir) / "ca"


def ca_bundle_path() -> str:
    _load_or_make_ca()
    return str(ca_dir() / "ca.pem")


def ca_pem() -> bytes:
    _, cert = _load_or_make_ca()
    return cert.public_bytes(serialization.Encoding.PEM)


def server_context(hostname: str) -> ssl.SSLContext:
    """A server-side context whose certificate names `hostname` (SAN DNS, or
    SAN IP for an address) and is signed by the CA."""
    with _lock:
        context = _contexts.get(hostname)
    if context is not None:
        return context
    key, cert = _server_certificate(hostname)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only; the key never outlives this call on disk.
    with tempfile.NamedTemporaryFile(suffix=".pem") as chain:
        os.chmod(chain.name, 0o600)
        chain.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        chain.write(cert.public_bytes(serialization.Encoding.PEM))
        chain.flush()
        context.load_cert_chain(chain.name)
    with _lock:
        return _contexts.setdefault(hostname, context)


def _load_or_make_ca():
    global _ca
    with _lock:
        if _ca is None:
            _ca = _load_or_make_ca_files(ca_dir())
        return _ca


def _load_or_make_ca_files(folder: Path):
    """Under an exclusive file lock, so that processes started together agree
    on one CA: the first makes it, the others read it."""
    folder.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = folder / "ca.key", folder / "ca.pem"
    with open(folder / ".lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if key_path.exists() and cert_path.exists():
                try:
                    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
                    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                    if cert.public_key() == key.public_key() and _still_valid(cert):
                        return key, cert
                except ValueError:
                    pass  # damaged or half-written by an old run: make a new CA
            key, cert = _make_ca()
            _write_atomically(key_path, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()), mode=0o600)
            _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
            return key, cert
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _still_valid(cert) -> bool:
    # A CA close to its end would make server certificates outlive it.
    return cert.not_valid_after_utc > _now() + datetime.timedelta(days=_SERVER_DAYS + 30)


def _write_atomically(path: Path, data: bytes, mode: int):
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)  # the umask may have narrowed it
    os.replace(tmp, path)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rds-proxy-runbook emulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
    ])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(days=1))
        .not_valid_after(_now() + datetime.timedelta(days=365 * _CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True,
            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_certificate(hostname: str):
    ca_key, ca_cert = _load_or_make_ca()
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt_name = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        alt_name = x509.DNSName(hostname)
    public = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(days=1))
        .not_valid_after(_now() + datetime.timedelta(days=_SERVER_DAYS - 2))
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
