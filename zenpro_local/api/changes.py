"""Saving a PATCH: the changed columns, the ``updated`` time and an event."""

from __future__ import annotations

import sqlite3
from typing import Callable

from aiohttp import web

from zenpro_local.api.auth import principal
from zenpro_local.api.context import context
from zenpro_local.api.errors import ApiError
from zenpro_local.store import utcnow


def save_changes(
    request: web.Request,
    table: str,
    row: dict,
    changes: dict,
    *,
    object_type: str,
    organization_id: str | None,
    name_taken: Callable[[str], ApiError],
) -> dict:
    """Write ``changes`` to ``row`` in one transaction with an event.

    Returns:
        The row as it is now.

    Raises:
        ApiError: from ``name_taken`` when a unique name is in use already;
            nothing is written then.
    """
    store = context(request).store
    message = "changed " + ", ".join(sorted(changes))
    changes = {**changes, "updated": utcnow()}
    try:
        with store.transaction() as db:
            db[table].update(row["id"], changes)
            store.record_event(
                "updated",
                object_type,
                row["id"],
                actor_id=principal(request).user_id,
                organization_id=organization_id,
                message=message,
            )
    except sqlite3.IntegrityError:
        raise name_taken(changes.get("name", row.get("name", ""))) from None
    return {**row, **changes}
