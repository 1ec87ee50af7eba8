"""Where the servers are: configured ones, or the embedded stack under a data folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from api.settings import Settings
from graph.embedded import EmbeddedStack

__all__ = ["Endpoints", "endpoints"]


@dataclass(frozen=True)
class Endpoints:
    graph_uri: str
    graph_user: str
    graph_password: str
    graph_database: str | None
    redis_url: str
    embedded: bool


@contextlib.contextmanager
def endpoints(settings: Settings, *, data_dir: Path | None = None, persistent: bool = True) -> Iterator[Endpoints]:
    """Yield server addresses, starting embedded servers for whatever is not configured."""
    need_graph = settings.neo4j_uri is None
    need_redis = settings.redis_url is None
    if not (need_graph or need_redis):
        yield Endpoints(
            graph_uri=str(settings.neo4j_uri), graph_user=settings.neo4j_user,
            graph_password=settings.neo4j_password.get_secret_value(), graph_database=settings.neo4j_database,
            redis_url=str(settings.redis_url), embedded=False,
        )
        return
    password = settings.embedded_password.get_secret_value()
    stack = EmbeddedStack(
        (data_dir or settings.data_dir).resolve(), password, persistent=persistent,
        start_graph=need_graph, start_redis=need_redis,
    )
    with stack:
        graph_uri = stack.graph.uri if stack.graph else str(settings.neo4j_uri)
        yield Endpoints(
            graph_uri=graph_uri,
            graph_user="root" if stack.graph else settings.neo4j_user,
            graph_password=password if stack.graph else settings.neo4j_password.get_secret_value(),
            graph_database="quanzi" if stack.graph else settings.neo4j_database,
            redis_url=stack.redis.url if stack.redis else str(settings.redis_url),
            embedded=True,
        )
