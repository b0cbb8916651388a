"""Certificate sources: the files Caddy loads in each TLS mode.

Caddy always loads certificates from files (``tls.certificates.load_files``),
never from PEM text in its configuration, so no private key ends up in
Caddy's configuration or in its autosave file.
"""

from __future__ import annotations

import abc
import datetime
import hashlib
import logging
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from zenpro_local.pki import CertificatePaths, LocalPKI
from zenpro_local.proxy.errors import ProxyError
from zenpro_local.proxy.settings import ProxySettings, TLSMode

logger = logging.getLogger(__name__)


class CertificateSource(abc.ABC):
    """The certificate files Caddy loads, and when they change."""

    # True when a change keeps the same file paths, so Caddy must be made to
    # reload although its configuration stays the same.
    reload_in_place = False

    @abc.abstractmethod
    def prepare(self) -> CertificatePaths | None:
        """Make the files ready and return them; None when Caddy obtains its own."""

    @abc.abstractmethod
    def current(self) -> CertificatePaths | None:
        """Return the files Caddy should load now."""

    def due(self, now: datetime.datetime | None = None) -> bool:
        """Tell whether :meth:`renew` has something to do."""
        return False

    def renew(self) -> CertificatePaths | None:
        """Produce the next files and return them."""
        return self.current()

    def committed(self, paths: CertificatePaths | None) -> None:
        """Record that Caddy serves ``paths``; older files may go."""

    def ssl_context(self) -> ssl.SSLContext | None:
        """Return a client context that verifies the served certificate.

        None means the served certificate cannot be verified from here, and
        probes are skipped.
        """
        return None

    def ca_pem(self) -> bytes | None:
        """Return the PEM of the CA that clients should trust, if the daemon has one."""
        return None


class InternalCertificates(CertificateSource):
    """A wildcard leaf from the daemon's own CA, renewed at two thirds of its life."""

    def __init__(self, pki: LocalPKI) -> None:
        self.pki = pki

    def prepare(self) -> CertificatePaths:
        return self.pki.ensure()

    def current(self) -> CertificatePaths:
        return self.pki.current()

    def due(self, now: datetime.datetime | None = None) -> bool:
        return self.pki.needs_renewal(now)

    def renew(self) -> CertificatePaths:
        return self.pki.renew()

    def committed(self, paths: CertificatePaths | None) -> None:
        if paths is not None:
            self.pki.prune(keep=paths)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pki.ca_pem().decode())

    def ca_pem(self) -> bytes:
        return self.pki.ca_pem()


class FileCertificates(CertificateSource):
    """An operator's certificate and key files, reloaded when their content changes."""

    reload_in_place = True

    def __init__(self, paths: CertificatePaths) -> None:
        self.paths = paths
        self._fingerprint = ""

    def prepare(self) -> CertificatePaths:
        self._check()
        self._fingerprint = self._read_fingerprint()
        return self.paths

    def current(self) -> CertificatePaths:
        return self.paths

    def due(self, now: datetime.datetime | None = None) -> bool:
        return self._read_fingerprint() != self._fingerprint

    def renew(self) -> CertificatePaths:
        self._check()
        self._fingerprint = self._read_fingerprint()
        logger.info(
            "Certificate files %s changed; reloading them", self.paths.certificate
        )
        return self.paths

    def ssl_context(self) -> ssl.SSLContext:
        # The system's trust store, plus the operator's chain itself, so a
        # certificate from a private CA verifies too.
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(self.paths.certificate))
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context

    def _check(self) -> None:
        try:
            certificate = x509.load_pem_x509_certificate(
                self.paths.certificate.read_bytes()
            )
            key = serialization.load_pem_private_key(self.paths.key.read_bytes(), None)
        except (OSError, ValueError, TypeError) as error:
            raise ProxyError(
                f"Certificate {self.paths.certificate} or key {self.paths.key} is "
                f"unreadable: {error}"
            ) from None
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if key.public_key().public_bytes(
            der, public
        ) != certificate.public_key().public_bytes(der, public):
            raise ProxyError(
                f"Key {self.paths.key} does not belong to certificate "
                f"{self.paths.certificate}."
            )

    def _read_fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in (self.paths.certificate, self.paths.key):
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"missing")
        return digest.hexdigest()


class AcmeCertificates(CertificateSource):
    """Caddy obtains and renews certificates itself from an ACME CA."""

    def prepare(self) -> None:
        return None

    def current(self) -> None:
        return None


def certificate_source(settings: ProxySettings) -> CertificateSource:
    """Return the certificate source for ``settings.tls_mode``."""
    if settings.tls_mode is TLSMode.INTERNAL:
        pki = LocalPKI(
            settings.tls_dir, settings.base_domain, settings.certificate_lifetime
        )
        return InternalCertificates(pki)
    if settings.tls_mode is TLSMode.FILES:
        paths = CertificatePaths(settings.certificate_file, settings.key_file)
        return FileCertificates(paths)
    return AcmeCertificates()
