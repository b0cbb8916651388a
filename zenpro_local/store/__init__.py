"""The daemon's state database: schema, migrations and access."""

from zenpro_local.store.db import Store, new_id, utcnow

__all__ = ["Store", "new_id", "utcnow"]
