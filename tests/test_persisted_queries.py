"""Persisted queries: automatic (APQ) by sha256, and a safelist mode for production apps."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.auth import issue_token
from api.persisted import PersistedQueries, load_manifest, sha256
from api.settings import Settings
from domain.errors import RequestRejected, StartupError
from graph.embedded import EmbeddedStack
from tests.conftest import JWT_SECRET, Api, own_app
from tests.test_subscriptions import ack

VIEWER = "query Viewer { viewer { __typename } }"


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def send(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.http.post("/graphql", json=body, headers={"Authorization": f"Bearer {api.token('operator')}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_apq_registers_a_query_then_runs_it_by_hash(api: Api) -> None:
    query = f"query Apq{uuid.uuid4().hex[:8]} {{ viewer {{ __typename }} }}"
    digest = sha256(query)
    unknown = await send(api, {"extensions": persisted(digest)})
    assert unknown["errors"][0]["message"] == "PersistedQueryNotFound"  # what Apollo clients look for
    assert unknown["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = await send(api, {"query": query, "extensions": persisted(digest)})
    assert "errors" not in registered
    by_hash = await send(api, {"extensions": persisted(digest)})
    assert by_hash["data"] == registered["data"]
    # by GET too (CDN-cacheable), with the extensions as a JSON query parameter
    response = await api.http.get("/graphql", params={"extensions": json.dumps(persisted(digest))},
                                  headers={"Authorization": f"Bearer {api.token('operator')}"})
    assert response.status_code == 200 and response.json()["data"] == registered["data"]


async def test_apq_refuses_a_hash_that_is_not_the_query(api: Api) -> None:
    body = await send(api, {"query": VIEWER, "extensions": persisted("0" * 64)})
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    later = await send(api, {"extensions": persisted("0" * 64)})
    assert later["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    malformed = await send(api, {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "abc"}}})
    assert malformed["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_apq_over_websockets(api: Api, ws_url: str) -> None:
    client = await ack(ws_url, api.token("operator"))
    try:
        await client.send({"id": "1", "type": "subscribe", "payload": {"extensions": persisted("f" * 64)}})
        message = await client.recv()
        assert message["type"] == "error" and message["id"] == "1"
        assert message["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    finally:
        await client.ws.close()


def manifest_file(tmp_path: Path, *bodies: str, ids: list[str] | None = None) -> Path:
    operations = [{"id": (ids or [sha256(b) for b in bodies])[i], "name": f"op{i}", "type": "query", "body": b}
                  for i, b in enumerate(bodies)]
    path = tmp_path / "manifest.json"
    path.write_bytes(orjson.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}))
    return path


async def test_safelist_runs_only_registered_operations(stack: EmbeddedStack, tmp_path: Path) -> None:
    allowed = "query Allowed { viewer { __typename } }"
    settings = Settings(env="test", jwt_secret=JWT_SECRET, demo_members=0, relay_interval=3600,  # type: ignore[arg-type]
                        scheduler_interval=0, persisted_queries="safelist",
                        safelist_path=manifest_file(tmp_path, allowed))
    token = issue_token(settings, tenant=f"ten_{uuid.uuid4().hex[:8]}", roles=["operator"])
    headers = {"Authorization": f"Bearer {token}"}
    async with own_app(stack, settings) as client:
        by_hash = (await client.post("/graphql", json={"extensions": persisted(sha256(allowed))}, headers=headers)).json()
        assert by_hash == {"data": {"viewer": {"__typename": "Viewer"}}, "extensions": by_hash["extensions"]}
        by_text = (await client.post("/graphql", json={"query": allowed}, headers=headers)).json()
        assert by_text["data"] == by_hash["data"]
        other = "query Other { viewer { __typename } }"
        for body in ({"query": other}, {"query": other, "extensions": persisted(sha256(other))},
                     {"extensions": persisted(sha256(other))}):
            refused = (await client.post("/graphql", json=body, headers=headers)).json()
            assert refused["errors"][0]["extensions"]["code"] == "OPERATION_NOT_SAFELISTED", body
            assert refused.get("data") is None


def test_bad_manifests_stop_the_server_with_a_clear_message(tmp_path: Path) -> None:
    from api.app import _checked_manifest

    with pytest.raises(StartupError, match="does not exist"):
        load_manifest(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StartupError, match="is not JSON"):
        load_manifest(tmp_path / "bad.json")
    with pytest.raises(StartupError, match="hashes to"):
        load_manifest(manifest_file(tmp_path, VIEWER, ids=["a" * 64]))
    with pytest.raises(StartupError, match="is invalid: Cannot query field 'nope'"):
        _checked_manifest(manifest_file(tmp_path, "{ nope }"))
    with pytest.raises(StartupError, match="QUANZI_SAFELIST_PATH"):
        Settings(env="test", jwt_secret=JWT_SECRET, persisted_queries="safelist").check()  # type: ignore[arg-type]


async def test_modes_without_redis() -> None:
    """The rules themselves, with no Redis behind them: APQ lookups miss, the safelist is in memory."""
    apq = PersistedQueries("apq")
    assert await apq.resolve(VIEWER, None) == VIEWER
    assert await apq.resolve(VIEWER, persisted(sha256(VIEWER))) == VIEWER
    with pytest.raises(RequestRejected) as missing:
        await apq.resolve(None, persisted(sha256(VIEWER)))
    assert missing.value.code.value == "PERSISTED_QUERY_NOT_FOUND"
    off = PersistedQueries("off")
    assert await off.resolve(VIEWER, persisted(sha256(VIEWER))) == VIEWER
    with pytest.raises(RequestRejected):
        await off.resolve(None, persisted(sha256(VIEWER)))
    safelist = PersistedQueries("safelist", manifest={sha256(VIEWER): VIEWER})
    assert await safelist.resolve(None, persisted(sha256(VIEWER))) == VIEWER
    with pytest.raises(RequestRejected) as refused:
        await safelist.resolve("{ viewer { __typename } }", None)
    assert refused.value.code.value == "OPERATION_NOT_SAFELISTED"
    with pytest.raises(StartupError):
        PersistedQueries("safelist", manifest={})
