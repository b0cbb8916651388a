"""Password hashing does not stall the daemon's other requests.

scrypt takes tens of milliseconds of CPU per password. Any user may change
its own password as often as it likes, so the hash must be made off the
event loop, or a loop of password changes would delay every request.
"""

from __future__ import annotations

import asyncio
import time

from tests.core.helpers import create_user

PASSWORD_CHANGES = 4
READS = 5


async def test_password_changes_do_not_block_reads(daemon):
    user = await create_user(daemon, "erin")

    async def change_password() -> float:
        response = await daemon.call(
            "PATCH",
            "/api/v1/users/me",
            token=user.token,
            json={"password": "a long enough password"},
        )
        assert response.status == 200, response.body
        return time.monotonic()

    changes = [asyncio.create_task(change_password()) for _ in range(PASSWORD_CHANGES)]
    await asyncio.sleep(0)
    for _ in range(READS):
        response = await daemon.call("GET", "/api/v1/users/me", token=user.token)
        assert response.status == 200, response.body
    reads_done = time.monotonic()
    changes_done = await asyncio.gather(*changes)

    # Four hashes take well over the time of five small reads, unless each
    # hash blocks the event loop and the reads wait for it.
    assert reads_done < max(changes_done)
