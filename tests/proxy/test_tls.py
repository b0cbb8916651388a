"""Certificates Caddy serves: from the daemon's CA, from files, and renewal."""

from __future__ import annotations

import asyncio
import datetime
import shutil
import ssl

import pytest
from cryptography import x509

from zenpro_local.pki import LocalPKI
from zenpro_local.proxy import Route, TLSMode

from .conftest import BASE_DOMAIN, HTTPSClient

pytestmark = [pytest.mark.caddy, pytest.mark.timeout(120)]


def host(name: str) -> str:
    return f"{name}.{BASE_DOMAIN}"


def is_connection_reset(error: BaseException) -> bool:
    """Tell whether ``error`` is, or wraps, a connection reset by the peer."""
    while error is not None:
        if isinstance(error, ConnectionResetError):
            return True
        error = getattr(error, "os_error", None) or error.__cause__
    return False


def key_bodies(paths) -> list[str]:
    """Return the base64 lines of each private key file."""
    bodies = []
    for path in paths:
        lines = path.read_text().splitlines()
        bodies.append("".join(line for line in lines if not line.startswith("-----")))
    return bodies


async def test_private_keys_absent_from_caddy_config(make_proxy, upstreams):
    one = await upstreams("one")
    proxy = await make_proxy()
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    await proxy.renew_certificate(
        now=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    )

    config, _ = await proxy.admin.get("/config/")
    config_text = str(config)
    autosave_text = proxy.process.autosave_path.read_text()
    keys = [proxy.certificate.key, proxy.settings.tls_dir / "ca.key"]

    for text in (config_text, autosave_text):
        assert "PRIVATE KEY" not in text
        for body in key_bodies(keys):
            assert body[:40] not in text
            assert body[-40:] not in text
    assert str(proxy.certificate.key) in autosave_text


async def test_key_files_private(make_proxy):
    proxy = await make_proxy()

    tls_dir = proxy.settings.tls_dir
    assert tls_dir.stat().st_mode & 0o777 == 0o700
    assert (tls_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert proxy.certificate.key.stat().st_mode & 0o777 == 0o600


async def test_served_certificate_is_wildcard_leaf(make_proxy, client_for):
    proxy = await make_proxy()
    await proxy.set_route(Route.unavailable("t1", host("one"), "stopped"))
    await proxy.wait_synced()

    served = await client_for(proxy).served_certificate(host("one"))

    leaf = x509.load_der_x509_certificate(served)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sorted(names.value.get_values_for_type(x509.DNSName)) == [
        f"*.{BASE_DOMAIN}",
        BASE_DOMAIN,
    ]


async def test_client_without_ca_rejects_certificate(make_proxy):
    proxy = await make_proxy()
    client = HTTPSClient(proxy.settings.https_port, ssl.create_default_context())
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.served_certificate(f"admin.{BASE_DOMAIN}")
    finally:
        await client.close()


async def test_renewal_serves_new_certificate_without_failures(
    make_proxy, upstreams, client_for
):
    one = await upstreams("one")
    # A lifetime of one minute: renewal is due after 40 seconds.
    proxy = await make_proxy(certificate_lifetime_days=60 / 86400)
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    client = client_for(proxy)
    old_leaf = proxy.certificate
    old_served = await client.served_certificate(host("one"))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert not await proxy.renew_certificate(now=now)

    failures: list[BaseException] = []
    served: set[bytes] = set()
    stop = asyncio.Event()

    async def request_once() -> None:
        reply = await client.get(host("one"), "/")
        assert reply.status == 200, reply
        served.add(await client.served_certificate(host("one")))

    async def request_retrying_a_reset() -> None:
        # NOTE: a reload swaps Caddy's listener, and a connection still in
        # the old listener's accept queue is reset. HTTP clients retry an
        # idempotent request once on such a reset (RFC 9112, section 9.3.1),
        # so this does the same; a second failure counts.
        try:
            await request_once()
        except OSError as error:
            if not is_connection_reset(error):
                raise
            await request_once()

    async def request_in_a_loop() -> int:
        count = 0
        while not stop.is_set() and count < 2000:
            try:
                await request_retrying_a_reset()
            except (AssertionError, OSError) as error:
                failures.append(error)
            count += 1
        return count

    loop_task = asyncio.create_task(request_in_a_loop())
    renewed = await proxy.renew_certificate(now=now + datetime.timedelta(seconds=45))
    new_served = await client.served_certificate(host("one"))
    # Keep requesting briefly with the new certificate in place.
    for _ in range(5):
        await client.get(host("one"), "/")
    stop.set()
    requests = await loop_task

    assert renewed
    assert failures == []
    assert requests > 0
    assert new_served != old_served
    assert proxy.certificate != old_leaf
    assert not old_leaf.certificate.exists()
    assert not old_leaf.key.exists()
    new_leaf = x509.load_der_x509_certificate(new_served)
    assert (
        new_leaf.serial_number
        == proxy.certificates.pki.leaf_certificate().serial_number
    )


async def test_files_mode_serves_and_reloads_files(data_dir, make_proxy, upstreams):
    one = await upstreams("one")
    issuer = LocalPKI(data_dir / "operator-ca", BASE_DOMAIN)
    first = issuer.ensure()
    certificate_file = data_dir / "operator" / "tls.crt"
    key_file = data_dir / "operator" / "tls.key"
    certificate_file.parent.mkdir()
    shutil.copy(first.certificate, certificate_file)
    shutil.copy(first.key, key_file)

    proxy = await make_proxy(
        tls_mode=TLSMode.FILES, certificate_file=certificate_file, key_file=key_file
    )
    await proxy.set_route(Route.available("t1", host("one"), one.address))
    await proxy.wait_synced()
    context = ssl.create_default_context(cadata=issuer.ca_pem().decode())
    client = HTTPSClient(proxy.settings.https_port, context)
    try:
        assert proxy.ca_pem() is None
        assert (await client.get(host("one"))).status == 200
        assert not await proxy.renew_certificate()

        second = issuer.renew()
        shutil.copy(second.certificate, certificate_file)
        shutil.copy(second.key, key_file)
        assert await proxy.renew_certificate()

        served = x509.load_der_x509_certificate(
            await client.served_certificate(host("one"))
        )
    finally:
        await client.close()
    assert served.serial_number == issuer.leaf_certificate().serial_number
    config, _ = await proxy.admin.get("/config/apps/tls/certificates/load_files")
    assert config[0]["certificate"] == str(certificate_file)
    assert config[0]["key"] == str(key_file)
