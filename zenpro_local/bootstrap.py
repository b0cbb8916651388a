"""First start: the administrator user and its API key in a token file."""

from __future__ import annotations

import logging
from pathlib import Path

from zenpro_local.api import models, users
from zenpro_local.secretbox import write_private_file
from zenpro_local.store import Store

logger = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"
TOKEN_FILE = "admin-token"


def ensure_admin(store: Store, data_dir: Path) -> None:
    """Create the ``admin`` superuser and its token file on first start.

    The key is written to ``<data_dir>/admin-token`` with mode 0600; only
    the file's path is logged. Later starts change nothing, even when the
    file was deleted: create a new key through the API instead.
    """
    if store.query_one("SELECT 1 FROM users LIMIT 1") is not None:
        return
    with store.transaction():
        user = users.create_user_row(
            store,
            models.UserCreate(username=ADMIN_USERNAME, is_superuser=True),
            actor_id=None,
        )
        created = users.insert_api_key(store, user["id"], "created at first start", None)
        path = data_dir / TOKEN_FILE
        write_private_file(path, (created["key"] + "\n").encode())
    logger.info("Created user %r; its API key is in %s", ADMIN_USERNAME, path)
