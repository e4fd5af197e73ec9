"""The workspace's own PKI: a CA, node certificates for mutual TLS, Ed25519 signing keys.

``werkplaats pki init DIR`` creates the CA (ECDSA P-256, self-signed);
``werkplaats pki issue NODE`` issues a certificate for one node (hub, a datastation, an
engine, a client) with the node name as common name and subject alternative name,
usable as TLS server and client certificate. Every link checks the peer's certificate
against this CA only, so a certificate from another CA is refused.

Approvals and audit entries are signed with separate Ed25519 keys
(``werkplaats pki signing-key``): an organisation's signing key never doubles as a TLS key.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..exceptions import WerkplaatsError


class PKIError(WerkplaatsError):
    """A certificate or key is missing, foreign, expired or unreadable."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, path: Path) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)


def _self_signed(key: ec.EllipticCurvePrivateKey, name: str, days: int) -> x509.CertificateBuilder:
    """Start a self-signed certificate for name that is its own trust anchor (a CA of path length 0)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    )


def init_ca(directory: str | Path, *, name: str = "werkplaats workspace CA", days: int = 3650) -> Path:
    """Create ca.key and ca.crt in directory (refuses to overwrite an existing CA)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if (d / "ca.key").exists():
        msg = f"{d / 'ca.key'} exists: this directory already holds a CA"
        raise PKIError(msg)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _self_signed(key, name, days)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key, d / "ca.key")
    (d / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return d / "ca.crt"


def issue(
    directory: str | Path,
    node: str,
    *,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    days: int = 365,
    valid_from: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """Issue DIR/NODE.crt and DIR/NODE.key, signed by the CA in DIR; return their paths."""
    d = Path(directory)
    if not (d / "ca.key").exists():
        msg = f"no CA in {d}: run `werkplaats pki init {d}` first"
        raise PKIError(msg)
    if not node or "/" in node or node.startswith("."):
        msg = f"invalid node name {node!r}"
        raise PKIError(msg)
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.DNSName(node)]
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    start = valid_from or (_now() - dt.timedelta(minutes=5))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_key(key, d / f"{node}.key")
    (d / f"{node}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return d / f"{node}.crt", d / f"{node}.key"


@dataclass(frozen=True)
class TLSFiles:
    """A node's TLS material: the workspace CA, its certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def check(self, node: str | None = None) -> x509.Certificate:
        """Refuse to start with a missing, foreign or expired certificate; return the node's certificate."""
        for what, p in (("CA certificate", self.ca), ("certificate", self.cert), ("key", self.key)):
            if not Path(p).is_file():
                msg = f"TLS {what} {str(p)!r} does not exist; issue one with `werkplaats pki issue`"
                raise PKIError(msg)
        ca = x509.load_pem_x509_certificate(Path(self.ca).read_bytes())
        cert = x509.load_pem_x509_certificate(Path(self.cert).read_bytes())
        if cert.issuer != ca.subject:
            msg = f"certificate {str(self.cert)!r} was not issued by the workspace CA {str(self.ca)!r}"
            raise PKIError(msg)
        ca_key = ca.public_key()
        try:
            if not isinstance(ca_key, ec.EllipticCurvePublicKey) or cert.signature_hash_algorithm is None:
                raise InvalidSignature
            ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        except InvalidSignature:
            msg = f"certificate {str(self.cert)!r} does not carry a valid signature of the workspace CA"
            raise PKIError(msg) from None
        now = _now()
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            msg = (
                f"certificate {str(self.cert)!r} is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} "
                f"to {cert.not_valid_after_utc:%Y-%m-%d}); issue a new one with `werkplaats pki issue`"
            )
            raise PKIError(msg)
        if node is not None and common_name(cert) != node:
            msg = f"certificate {str(self.cert)!r} is for {common_name(cert)!r}, not for this node {node!r}"
            raise PKIError(msg)
        return cert

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context that requires a client certificate from the workspace CA."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A TLS client context that presents this node's certificate and trusts only the workspace CA."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def common_name(cert: x509.Certificate) -> str:
    """Return a certificate's common name."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


# -- pins: a node's public key, whatever certificate carries it ---------------------------------


class PinError(PKIError):
    """A peer presented a key other than the one pinned for it."""


def spki_sha256(cert: x509.Certificate | bytes) -> str:
    """Return the SHA-256 of a certificate's public key (its DER SubjectPublicKeyInfo), hex: what nodes pin.

    NB: the key, not the subject: whoever holds the workspace CA can issue another "engine0",
    but not with engine0's key.
    """
    c = cert if isinstance(cert, x509.Certificate) else x509.load_der_x509_certificate(cert)
    spki = c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashes.Hash(hashes.SHA256())
    h.update(spki)
    return h.finalize().hex()


def fingerprint(path: str | Path) -> str:
    """Return the SPKI SHA-256 fingerprint of the certificate in a PEM file."""
    p = Path(path)
    if not p.is_file():
        msg = f"certificate {str(p)!r} does not exist"
        raise PKIError(msg)
    try:
        return spki_sha256(x509.load_pem_x509_certificate(p.read_bytes()))
    except ValueError:
        msg = f"{str(p)!r} is not a PEM certificate"
        raise PKIError(msg) from None


def pinned_context(tls: TLSFiles, pin: str, peer: str) -> ssl.SSLContext:
    """A client context like `TLSFiles.client_context` that also refuses a peer whose key is not `pin`.

    The check runs on the live connection, right after the handshake and before a byte of the
    request is written (`SSLContext.sslsocket_class`, which httpx's socket backend uses).
    """
    ctx = tls.client_context()

    class PinnedSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            der = self.getpeercert(binary_form=True)
            got = spki_sha256(der) if der else ""
            if got != pin:
                self.close()  # NB: before anything is sent
                msg = f"{peer} presented key {got[:16]}…, not its pinned key {pin[:16]}…"
                raise PinError(msg)

    ctx.sslsocket_class = PinnedSocket
    return ctx


def link_certificate(directory: str | Path, name: str, *, hosts: tuple[str, ...] = ("127.0.0.1",),
                     days: int = 3650) -> tuple[Path, Path]:  # fmt: skip
    """Create DIR/NAME.crt and DIR/NAME.key: a self-signed certificate for an engine's MPC links.

    Not issued by the workspace CA: the peers trust exactly this certificate (their trust bundle).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if (d / f"{name}.key").exists():
        msg = f"{d / f'{name}.key'} exists; refusing to overwrite a link key"
        raise PKIError(msg)
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [x509.DNSName(name)]
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    cert = (
        # NB: its own trust anchor, so OpenSSL (brpc) accepts it from a CA file holding just it
        _self_signed(key, name, days)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key, d / f"{name}.key")
    (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return d / f"{name}.crt", d / f"{name}.key"


# -- signing keys (Ed25519) ----------------------------------------------------------------


def new_signing_key(path: str | Path) -> str:
    """Create an Ed25519 signing key at path; return its public key (base64)."""
    p = Path(path)
    if p.exists():
        msg = f"{p} exists; refusing to overwrite a signing key"
        raise PKIError(msg)
    p.parent.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    _write_key(key, p)
    return public_key_b64(key)


def load_signing_key(path: str | Path) -> ed25519.Ed25519PrivateKey:
    """Load an Ed25519 signing key, with a clear error if it is missing or of another kind."""
    p = Path(path)
    if not p.is_file():
        msg = f"signing key {str(p)!r} does not exist; create one with `werkplaats pki signing-key`"
        raise PKIError(msg)
    key = serialization.load_pem_private_key(p.read_bytes(), None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        msg = f"{str(p)!r} is not an Ed25519 signing key"
        raise PKIError(msg)
    return key


def public_key_b64(key: ed25519.Ed25519PrivateKey) -> str:
    """The raw public key, base64."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign(key: ed25519.Ed25519PrivateKey, message: bytes) -> str:
    """Sign message; return the signature as base64."""
    return base64.b64encode(key.sign(message)).decode()


@functools.lru_cache(maxsize=65_536)  # NB: pure; a node's log page re-checks its whole chain, only new entries cost
def verify(public_b64: str, message: bytes, signature_b64: str) -> bool:
    """Return whether signature is a valid Ed25519 signature of message by the public key."""
    try:
        pub = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
        pub.verify(base64.b64decode(signature_b64), message)
    except (InvalidSignature, ValueError):
        return False
    return True
