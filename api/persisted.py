"""Persisted queries: automatic (APQ, sha256) and a safelist for production apps.

Modes (``QUANZI_PERSISTED_QUERIES``):

``apq`` (default)
    Apollo's automatic persisted queries. A client sends
    ``extensions.persistedQuery = {"version": 1, "sha256Hash": h}`` without the query; an
    unknown hash gets ``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``) and
    the client resends the query with its hash, which is then remembered in Redis for
    ``apq_ttl_seconds``. Full queries without a hash run as usual. Redis down means
    "not found": clients fall back to sending the query.
``safelist``
    Only the operations of a manifest (``QUANZI_SAFELIST_PATH``, Apollo's
    ``persisted-query-manifest`` JSON: ``{"operations": [{"id": sha256, "body": ...}]}``)
    run, by hash or by their exact text; anything else gets ``OPERATION_NOT_SAFELISTED``.
    The manifest is checked at startup (ids are the sha256 of the bodies).
``off``
    Hashes are not looked up; clients must send the query.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis

from domain.errors import ErrorCode, RequestRejected, StartupError

__all__ = ["Mode", "PersistedQueries", "load_manifest", "sha256"]

log = logging.getLogger("quanzi.persisted")

Mode = Literal["apq", "safelist", "off"]
#: Apollo clients recognise this message and retry with the full query
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """``{sha256: body}`` from an Apollo persisted-query manifest; operator mistakes are StartupErrors."""
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise StartupError(f"safelist manifest {path} does not exist") from exc
    except orjson.JSONDecodeError as exc:
        raise StartupError(f"safelist manifest {path} is not JSON: {exc}") from exc
    operations = data.get("operations") if isinstance(data, dict) else None
    if not isinstance(operations, list):
        raise StartupError(f"safelist manifest {path} has no \"operations\" list")
    manifest: dict[str, str] = {}
    for i, op in enumerate(operations):
        body = op.get("body") if isinstance(op, dict) else None
        if not isinstance(body, str):
            raise StartupError(f"safelist manifest {path}: operation {i} has no \"body\" string")
        digest = sha256(body)
        declared = op.get("id", digest)
        if declared != digest:
            raise StartupError(f"safelist manifest {path}: operation {i} ({op.get('name', '?')}) has id {declared} "
                               f"but its body hashes to {digest}")
        manifest[digest] = body
    return manifest


def _hash_of(extensions: dict[str, Any] | None) -> str | None:
    persisted = (extensions or {}).get("persistedQuery")
    if not isinstance(persisted, dict):
        return None
    digest = persisted.get("sha256Hash")
    if persisted.get("version", 1) != 1 or not isinstance(digest, str) or len(digest) != 64:
        raise RequestRejected("extensions.persistedQuery needs version 1 and a 64-character sha256Hash",
                              code=ErrorCode.PERSISTED_QUERY_NOT_FOUND)
    return digest.lower()


class PersistedQueries:
    def __init__(self, mode: Mode, *, manifest: dict[str, str] | None = None, ttl_seconds: int = 86_400,
                 max_length: int = 100_000) -> None:
        if mode == "safelist" and not manifest:
            raise StartupError("QUANZI_PERSISTED_QUERIES=safelist needs QUANZI_SAFELIST_PATH with at least one operation")
        self.mode = mode
        self.manifest = manifest or {}
        self.ttl_seconds = ttl_seconds
        self.max_length = max_length
        self.redis: aioredis.Redis | None = None

    @staticmethod
    def key(digest: str) -> str:
        return f"q:apq:{digest}"

    async def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        """The query to run for a request, or :class:`RequestRejected`."""
        digest = _hash_of(extensions)
        if digest is not None and query is not None and sha256(query) != digest:
            raise RequestRejected("extensions.persistedQuery.sha256Hash is not the sha256 of the query",
                                  code=ErrorCode.PERSISTED_QUERY_HASH_MISMATCH)
        if self.mode == "safelist":
            body = self.manifest.get(digest if digest is not None else sha256(query or ""))
            if body is None:
                raise RequestRejected("this operation is not on the server's safelist",
                                      code=ErrorCode.OPERATION_NOT_SAFELISTED)
            return body
        if query is not None:
            if digest is not None and self.mode == "apq":
                await self._remember(digest, query)
            return query
        if digest is None:
            return None  # no query at all: the GraphQL view answers 400
        stored = await self._lookup(digest) if self.mode == "apq" else None
        if stored is None:
            raise RequestRejected(NOT_FOUND_MESSAGE, code=ErrorCode.PERSISTED_QUERY_NOT_FOUND)
        return stored

    async def _remember(self, digest: str, query: str) -> None:
        if self.redis is None or len(query) > self.max_length:
            return
        try:
            await self.redis.set(self.key(digest), query, ex=self.ttl_seconds)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("cannot remember persisted query %s: %s", digest[:12], exc)

    async def _lookup(self, digest: str) -> str | None:
        if self.redis is None:
            return None
        try:
            # GETEX: each use keeps a query for another TTL
            value = await self.redis.getex(self.key(digest), ex=self.ttl_seconds)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("cannot look up persisted query %s: %s", digest[:12], exc)
            return None
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)
