"""The daemon's CA and wildcard leaf certificates, on real files."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from zenpro_local.pki import LocalPKI, PKIError

DOMAIN = "zp.localhost"
UTC = datetime.timezone.utc


def make_pki(tmp_path: Path, lifetime=datetime.timedelta(days=90), domain=DOMAIN):
    return LocalPKI(tmp_path / "tls", domain, lifetime)


def handshake(paths, ca_pem: bytes, server_hostname: str) -> None:
    """Serve ``paths`` on a loopback socket and connect to it with Python's ssl."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(paths.certificate, paths.key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            server_context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        client_context = ssl.create_default_context(cadata=ca_pem.decode())
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as raw:
            client_context.wrap_socket(raw, server_hostname=server_hostname).close()
    finally:
        thread.join(timeout=5)
        listener.close()


def test_ensure_creates_ca_and_leaf(tmp_path):
    pki = make_pki(tmp_path)

    paths = pki.ensure()

    assert (tmp_path / "tls" / "ca.crt").exists()
    assert paths.certificate.exists()
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "tls" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert paths.key.stat().st_mode & 0o777 == 0o600


def test_ensure_reuses_ca_and_leaf(tmp_path):
    first = make_pki(tmp_path)
    paths = first.ensure()

    second = make_pki(tmp_path)

    assert second.ensure() == paths
    assert second.ca_pem() == first.ca_pem()


def test_leaf_verifies_for_tenant_and_base_hosts(tmp_path):
    pki = make_pki(tmp_path)
    paths = pki.ensure()

    handshake(paths, pki.ca_pem(), f"t1.{DOMAIN}")
    handshake(paths, pki.ca_pem(), f"admin.{DOMAIN}")
    handshake(paths, pki.ca_pem(), DOMAIN)


def test_leaf_rejected_for_other_host(tmp_path):
    pki = make_pki(tmp_path)
    paths = pki.ensure()

    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(paths, pki.ca_pem(), "t1.example.com")


def test_ca_constrained_to_base_domain(tmp_path):
    pki = make_pki(tmp_path)
    pki.ensure()
    ca = x509.load_pem_x509_certificate(pki.ca_pem())

    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)

    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName(DOMAIN)]


def test_ca_for_other_domain_replaced(tmp_path):
    old = make_pki(tmp_path, domain="old.localhost")
    old.ensure()

    new = make_pki(tmp_path, domain=DOMAIN)
    paths = new.ensure()

    assert new.ca_pem() != old.ca_pem()
    handshake(paths, new.ca_pem(), f"t1.{DOMAIN}")


def test_single_label_domain_rejected(tmp_path):
    with pytest.raises(PKIError, match="at least two labels"):
        LocalPKI(tmp_path / "tls", "localhost")


def test_renewal_due_at_two_thirds(tmp_path):
    pki = make_pki(tmp_path, lifetime=datetime.timedelta(days=90))
    pki.ensure()
    leaf = pki.leaf_certificate()
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    renew_at = leaf.not_valid_before_utc + lifetime * 2 / 3

    assert not pki.needs_renewal(renew_at - datetime.timedelta(seconds=1))
    assert pki.needs_renewal(renew_at)
    assert pki.renewal_time() == renew_at


def test_short_lifetime_not_due_at_once(tmp_path):
    pki = make_pki(tmp_path, lifetime=datetime.timedelta(seconds=60))
    pki.ensure()

    now = datetime.datetime.now(UTC)
    assert not pki.needs_renewal(now)
    assert pki.needs_renewal(now + datetime.timedelta(seconds=45))


def test_renew_writes_new_pair_and_keeps_old(tmp_path):
    pki = make_pki(tmp_path)
    old = pki.ensure()

    new = pki.renew()

    assert new != old
    assert pki.current() == new
    assert old.certificate.exists()
    assert (
        pki.leaf_certificate().serial_number
        != x509.load_pem_x509_certificate(old.certificate.read_bytes()).serial_number
    )


def test_prune_removes_old_pairs(tmp_path):
    pki = make_pki(tmp_path)
    old = pki.ensure()
    new = pki.renew()

    removed = pki.prune(keep=new)

    assert sorted(removed) == sorted([old.certificate, old.key])
    assert new.certificate.exists()
    assert new.key.exists()


def test_leaf_with_wrong_key_needs_renewal(tmp_path):
    pki = make_pki(tmp_path)
    paths = pki.ensure()
    other = make_pki(tmp_path / "other").ensure()
    os.replace(other.key, paths.key)

    assert pki.needs_renewal()
    assert pki.ensure() != paths


def test_mismatched_ca_files_raise(tmp_path):
    pki = make_pki(tmp_path)
    pki.ensure()
    other = make_pki(tmp_path / "other")
    other.ensure()
    os.replace(tmp_path / "other" / "tls" / "ca.key", tmp_path / "tls" / "ca.key")

    with pytest.raises(PKIError, match="does not match"):
        make_pki(tmp_path).ensure()


def test_no_temporary_files_left(tmp_path):
    pki = make_pki(tmp_path)
    pki.ensure()
    pki.renew()

    assert list((tmp_path / "tls").glob(".*")) == []


def test_leaf_chain_includes_ca(tmp_path):
    pki = make_pki(tmp_path)
    paths = pki.ensure()

    chain = x509.load_pem_x509_certificates(paths.certificate.read_bytes())

    assert len(chain) == 2
    assert chain[1].public_bytes(serialization.Encoding.PEM) == pki.ca_pem()
