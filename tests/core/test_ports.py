"""Tenant server ports: taken and listening ports are skipped, anywhere in the range."""

from __future__ import annotations

import random
import socket

import pytest

from zenpro_local.store import Store, new_id, utcnow
from zenpro_local.tenants import ports


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "state.db")
    yield store
    store.close()


def _record_tenant(store: Store, port: int) -> None:
    now = utcnow()
    organization_id = new_id()
    store.db["organizations"].insert(
        {"id": organization_id, "name": f"o{port}", "created": now, "updated": now}
    )
    store.db["tenants"].insert(
        {
            "id": new_id(),
            "organization_id": organization_id,
            "name": f"t{port}",
            "status": "available",
            "zenml_version": "0.98.0",
            "port": port,
            "created": now,
            "updated": now,
        }
    )


def _free_run(length: int) -> int:
    """Return the first of ``length`` consecutive ports that nothing listens on."""
    for _ in range(100):
        start = random.randrange(40_000, 60_000)
        if all(ports.is_bindable(port) for port in range(start, start + length)):
            return start
    raise AssertionError(f"no {length} consecutive free ports found")


def test_only_free_port_returned(store):
    first = _free_run(3)
    _record_tenant(store, first)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", first + 2))
        listener.listen()
        # Of first, first + 1 and first + 2, only first + 1 is free.
        choices = {ports.allocate(store, range(first, first + 3)) for _ in range(30)}

    assert choices == {first + 1}


def test_whole_range_used(store):
    first = _free_run(4)
    chosen = {ports.allocate(store, range(first, first + 4)) for _ in range(200)}

    assert len(chosen) > 1
    assert chosen <= set(range(first, first + 4))


def test_full_range_names_setting(store):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        with pytest.raises(ports.NoFreePortError, match="tenants.port_range"):
            ports.allocate(store, range(busy, busy + 1))
