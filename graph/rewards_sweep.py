"""The background sweep of campaign mechanics: expired group-buys fail, expired points lots are written off.

Run by the server's lifespan every ``scheduler_interval`` seconds (0 turns background jobs off,
as in the tests, which call :func:`sweep_once` or the repositories' ``sweep`` directly). Each
pass handles at most ``limit`` due items per kind and loops while a pass was full. Several API
processes may sweep at once: every item is failed or written off in its own conditional
transaction, so a second sweeper finds nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging

from domain.ports import Repositories
from graph.periodic import every

__all__ = ["sweep_campaigns", "sweep_once"]

log = logging.getLogger(__name__)


async def sweep_once(repos: Repositories, *, tenant: str | None = None, limit: int = 500) -> tuple[int, int]:
    """One pass: (group-buys failed, points entries written)."""
    failed = await repos.group_buys.sweep(tenant=tenant, limit=limit)
    expired = await repos.points.sweep(tenant=tenant, limit=limit)
    return failed, expired


async def sweep_campaigns(repos: Repositories, stop: asyncio.Event, *, interval: float) -> None:
    async def once() -> None:
        failed, expired = await sweep_once(repos)
        if failed or expired:
            log.info("campaign sweep: %d group-buys failed, %d points entries written off", failed, expired)

    await every(interval, stop, once, what="campaign sweep")
