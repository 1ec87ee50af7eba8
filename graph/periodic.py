"""The background loop shared by the schedulers (KOL, segmentation) and the campaign sweep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from domain.errors import QuanziError

__all__ = ["every"]

log = logging.getLogger(__name__)

#: failures of a pass that mean "a server is away": logged as a warning, retried next time
OUTAGES = (RedisError, OSError, QuanziError)


async def every(interval: float, stop: asyncio.Event, work: Callable[[], Awaitable[object]], *, what: str) -> None:
    """Run *work* now and then every *interval* seconds until *stop* is set.

    A pass that fails never ends the loop: an outage (Redis, the graph) is a warning, anything
    else is logged with its trace; either way the next pass runs on time.
    """
    while not stop.is_set():
        try:
            await work()
        except OUTAGES as exc:
            log.warning("%s postponed: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
