"""The daemon's certificate authority and the wildcard leaf certificate.

In the ``internal`` TLS mode the daemon is its own CA. It creates an EC P-256
CA once, in ``<data_dir>/tls/``, and reuses it on every later start, so a
client that trusts ``ca.crt`` once keeps trusting the daemon. The CA carries
a name constraint for the base domain, so even a leaked CA key cannot sign a
certificate that clients accept for any other domain.

The CA signs one leaf certificate for ``*.<base_domain>`` and
``<base_domain>``. The wildcard covers every tenant host and the admin host,
so creating, renaming or deleting a tenant never needs a new certificate.

Every leaf gets its own pair of files named after its serial number. Caddy
loads certificates only when its configuration changes, so a new file path is
what makes Caddy pick up a renewed certificate, and the old pair stays on disk
until Caddy has switched (see :meth:`LocalPKI.prune`). Private keys are
written with mode 0600, and every file is written to a temporary file first
and then renamed into place, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

CA_CERTIFICATE_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
LEAF_PREFIX = "leaf-"

CA_LIFETIME = datetime.timedelta(days=3650)
# Fraction of a leaf's lifetime after which it is renewed.
RENEWAL_FRACTION = 2 / 3
# Certificates are valid from a little before their creation, so a client
# whose clock runs slightly behind still accepts a fresh one. A leaf uses at
# most a tenth of its lifetime for this.
CLOCK_SKEW = datetime.timedelta(minutes=5)


class PKIError(Exception):
    """A certificate or key could not be created, read or used."""


@dataclass(frozen=True)
class CertificatePaths:
    """A certificate chain file and its private key file, both PEM."""

    certificate: Path
    key: Path


def check_wildcard_domain(base_domain: str) -> None:
    """Raise ``PKIError`` when no client accepts a wildcard for the domain.

    OpenSSL and browsers reject a wildcard directly below a single label
    (``*.localhost``, ``*.com``), so the base domain needs two labels or more.
    """
    labels = base_domain.split(".")
    if len(labels) < 2 or not all(labels):
        raise PKIError(
            f"Base domain {base_domain!r} is invalid for the internal CA: clients "
            "reject a wildcard certificate below a single label. Use a domain "
            "with at least two labels, such as 'zenpro.localhost'."
        )


class LocalPKI:
    """The daemon's CA and its current leaf certificate, stored in one folder.

    Args:
        tls_dir: Folder for the CA and the leaves; created with mode 0700.
        base_domain: Domain whose wildcard the leaf covers.
        leaf_lifetime: Validity of each leaf certificate.
    """

    def __init__(
        self,
        tls_dir: Path,
        base_domain: str,
        leaf_lifetime: datetime.timedelta = datetime.timedelta(days=90),
    ) -> None:
        check_wildcard_domain(base_domain)
        if leaf_lifetime <= datetime.timedelta(0):
            raise PKIError(f"Leaf lifetime must be positive, got {leaf_lifetime}.")
        self.tls_dir = tls_dir
        self.base_domain = base_domain
        self.leaf_lifetime = leaf_lifetime
        self._ca_certificate: x509.Certificate | None = None
        self._ca_key: ec.EllipticCurvePrivateKey | None = None

    @property
    def leaf_names(self) -> list[str]:
        """DNS names every leaf certificate covers."""
        return [f"*.{self.base_domain}", self.base_domain]

    def ensure(self, now: datetime.datetime | None = None) -> CertificatePaths:
        """Load or create the CA, and create a leaf if none is usable.

        Idempotent: a valid CA and leaf on disk are reused unchanged.

        Returns:
            The paths of the current leaf certificate and key.
        """
        self._load_or_create_ca(now)
        if self.needs_renewal(now):
            return self.renew(now)
        return self.current()

    def ca_pem(self) -> bytes:
        """Return the CA certificate in PEM form, for clients to trust."""
        return self._ca().public_bytes(serialization.Encoding.PEM)

    def current(self) -> CertificatePaths:
        """Return the newest complete leaf.

        Raises:
            PKIError: No leaf exists yet; call :meth:`ensure` first.
        """
        pairs = self._leaf_pairs()
        if not pairs:
            raise PKIError(f"No leaf certificate in {self.tls_dir}.")
        return pairs[-1]

    def leaf_certificate(self) -> x509.Certificate:
        """Return the current leaf certificate, parsed."""
        return x509.load_pem_x509_certificate(self.current().certificate.read_bytes())

    def renewal_time(self) -> datetime.datetime | None:
        """Return when the current leaf is due for renewal, or None without one."""
        try:
            leaf = self.leaf_certificate()
        except (PKIError, OSError, ValueError):
            return None
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        return leaf.not_valid_before_utc + lifetime * RENEWAL_FRACTION

    def needs_renewal(self, now: datetime.datetime | None = None) -> bool:
        """Tell whether the leaf is missing, unusable or past two thirds of its life.

        A leaf is unusable when it does not cover the base domain, when it was
        not signed by the current CA, or when its key file does not match it.
        """
        now = now or _utcnow()
        renew_at = self.renewal_time()
        if renew_at is None or now >= renew_at:
            return True
        return not self._leaf_matches(self.current())

    def renew(self, now: datetime.datetime | None = None) -> CertificatePaths:
        """Issue a new leaf and write it beside the old ones.

        Older leaves stay on disk until :meth:`prune` removes them, so Caddy
        can keep serving the old leaf until it loads the new one.

        Returns:
            The paths of the new leaf certificate and key.
        """
        now = now or _utcnow()
        ca_certificate, ca_key = self._load_or_create_ca(now)
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        certificate = self._sign_leaf(key, serial, ca_certificate, ca_key, now)

        # Names sort by creation time, so the newest pair sorts last.
        stem = f"{LEAF_PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}-{serial:x}"
        paths = CertificatePaths(
            certificate=self.tls_dir / f"{stem}.crt",
            key=self.tls_dir / f"{stem}.key",
        )
        # The key goes first: a certificate file without a key is never current.
        _write_atomic(paths.key, _private_pem(key), mode=0o600)
        chain = certificate.public_bytes(serialization.Encoding.PEM)
        chain += ca_certificate.public_bytes(serialization.Encoding.PEM)
        _write_atomic(paths.certificate, chain, mode=0o644)
        logger.info(
            "Issued leaf certificate %x for %s, valid until %s",
            serial,
            ", ".join(self.leaf_names),
            certificate.not_valid_after_utc.isoformat(),
        )
        return paths

    def prune(self, keep: CertificatePaths) -> list[Path]:
        """Delete every leaf file except ``keep``'s, and stray half-written files.

        Returns:
            The paths removed.
        """
        removed = []
        for path in sorted(self.tls_dir.glob(f"{LEAF_PREFIX}*")):
            if path in (keep.certificate, keep.key):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
        for path in self.tls_dir.glob(".*.tmp"):
            path.unlink(missing_ok=True)
            removed.append(path)
        if removed:
            logger.info("Removed %d old certificate files", len(removed))
        return removed

    def _ca(self) -> x509.Certificate:
        certificate, _ = self._load_or_create_ca(None)
        return certificate

    def _load_or_create_ca(
        self, now: datetime.datetime | None
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self._ca_certificate is not None and self._ca_key is not None:
            return self._ca_certificate, self._ca_key

        self.tls_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tls_dir, 0o700)
        certificate_path = self.tls_dir / CA_CERTIFICATE_FILE
        key_path = self.tls_dir / CA_KEY_FILE
        if certificate_path.exists() and key_path.exists():
            certificate, key = _load_ca(certificate_path, key_path)
            if _permits_domain(certificate, self.base_domain):
                self._ca_certificate, self._ca_key = certificate, key
                return certificate, key
            # A CA constrained to another domain cannot sign for this one.
            logger.warning(
                "CA in %s does not cover base domain %s; creating a new CA, "
                "which clients must trust again",
                self.tls_dir,
                self.base_domain,
            )

        certificate, key = self._create_ca(now or _utcnow())
        _write_atomic(key_path, _private_pem(key), mode=0o600)
        _write_atomic(
            certificate_path,
            certificate.public_bytes(serialization.Encoding.PEM),
            mode=0o644,
        )
        logger.info("Created CA %s in %s", _common_name(certificate), self.tls_dir)
        self._ca_certificate, self._ca_key = certificate, key
        return certificate, key

    def _create_ca(
        self, now: datetime.datetime
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        # A random suffix distinguishes the CAs of several installations in
        # one trust store.
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "zenpro-local"),
                x509.NameAttribute(
                    NameOID.COMMON_NAME, f"zenpro-local CA {secrets.token_hex(3)}"
                ),
            ]
        )
        public_key = key.public_key()
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(self.base_domain)],
            excluded_subtrees=None,
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(constraints, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return certificate, key

    def _sign_leaf(
        self,
        key: ec.EllipticCurvePrivateKey,
        serial: int,
        ca_certificate: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        now: datetime.datetime,
    ) -> x509.Certificate:
        names = [x509.DNSName(name) for name in self.leaf_names]
        public_key = key.public_key()
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, f"*.{self.base_domain}")]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - min(CLOCK_SKEW, self.leaf_lifetime / 10))
            .not_valid_after(now + self.leaf_lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )

    def _leaf_pairs(self) -> list[CertificatePaths]:
        if not self.tls_dir.is_dir():
            return []
        pairs = []
        for certificate in sorted(self.tls_dir.glob(f"{LEAF_PREFIX}*.crt")):
            key = certificate.with_suffix(".key")
            if key.exists():
                pairs.append(CertificatePaths(certificate=certificate, key=key))
        return pairs

    def _leaf_matches(self, paths: CertificatePaths) -> bool:
        try:
            leaf = x509.load_pem_x509_certificate(paths.certificate.read_bytes())
            key = serialization.load_pem_private_key(paths.key.read_bytes(), None)
            names = leaf.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value.get_values_for_type(x509.DNSName)
        except (OSError, ValueError, x509.ExtensionNotFound) as error:
            logger.warning(
                "Leaf certificate %s is unusable: %s", paths.certificate, error
            )
            return False

        ca_certificate = self._ca()
        same_key = _public_der(key.public_key()) == _public_der(leaf.public_key())
        signed_by_ca = leaf.issuer == ca_certificate.subject
        if signed_by_ca:
            try:
                leaf.verify_directly_issued_by(ca_certificate)
            except (InvalidSignature, ValueError, TypeError):
                signed_by_ca = False
        return same_key and signed_by_ca and sorted(names) == sorted(self.leaf_names)


def _load_ca(
    certificate_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except ValueError as error:
        raise PKIError(
            f"CA files in {certificate_path.parent} are unreadable ({error}); "
            "move them away to create a new CA."
        ) from error
    if _public_der(key.public_key()) != _public_der(certificate.public_key()):
        raise PKIError(
            f"CA key {key_path} does not match {certificate_path}; "
            "move both away to create a new CA."
        )
    if key_path.stat().st_mode & 0o077:
        logger.warning("Tightening permissions of %s to 0600", key_path)
        os.chmod(key_path, 0o600)
    return certificate, key


def _permits_domain(ca_certificate: x509.Certificate, base_domain: str) -> bool:
    try:
        constraints = ca_certificate.extensions.get_extension_for_class(
            x509.NameConstraints
        ).value
    except x509.ExtensionNotFound:
        return True
    permitted = constraints.permitted_subtrees or []
    for subtree in permitted:
        if not isinstance(subtree, x509.DNSName):
            continue
        if base_domain == subtree.value or base_domain.endswith("." + subtree.value):
            return True
    return False


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The temporary file is created with ``mode`` from the start, so a private
    key is never readable by others, not even for a moment.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

    # The rename is durable only once the folder itself is synced.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
