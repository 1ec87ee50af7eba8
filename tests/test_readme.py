"""The README is true: its commands exist and what it shows runs against a real `quanzi serve`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from api.auth import issue_token
from api.settings import Settings
from graph.embedded import free_port
from tests.conftest import PASSWORD, ROOT

README = (ROOT / "README.md").read_text("utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_the_two_commands_and_ci():
    first = blocks("sh")[0]
    assert "make run" in first and "make test" in first
    makefile = (ROOT / "Makefile").read_text("utf-8")
    assert re.search(r"^run: ", makefile, re.M) and re.search(r"^test: ", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text("utf-8")


@pytest.fixture(scope="module")
def server(stack, tmp_path_factory):
    """`quanzi serve` as a user runs it, pointed at the test servers, with a small demo tenant."""
    port = free_port()
    tenant = "readme" + str(port)
    env = dict(
        os.environ,
        QUANZI_ENV="development",
        QUANZI_NEO4J_URI=stack.graph.uri, QUANZI_NEO4J_USER="root", QUANZI_NEO4J_PASSWORD=PASSWORD,
        QUANZI_NEO4J_DATABASE="quanzi", QUANZI_REDIS_URL=stack.redis.url,
        QUANZI_PORT=str(port), QUANZI_DEMO_MEMBERS="300", QUANZI_DEMO_TENANT=tenant,
    )
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield base, tenant, port, env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_graphiql_is_served(server):
    base, *_ = server
    page = httpx.get(base + "/graphql", headers={"Accept": "text/html"}, timeout=5)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    ready = httpx.get(base + "/readyz", timeout=5).json()
    assert ready == {"status": "ready", "checks": {"graph": "ok", "redis": "ok"}}


def test_readme_operations_run(server):
    base, tenant, _, _ = server
    token = issue_token(Settings(), tenant=tenant, roles=["operator"])
    operations = blocks("graphql")
    assert len(operations) == 5
    results = []
    for operation in operations:
        body = httpx.post(base + "/graphql", json={"query": operation}, headers={"Authorization": f"Bearer {token}"},
                          timeout=30).json()
        assert "errors" not in body, body
        results.append(body["data"])
    top, feeds, register, growth, operators = results
    assert top["members"]["totalCount"] > 0 and all(e["node"]["level"] >= 5 for e in top["members"]["edges"])
    assert len(feeds["communities"]["nodes"]) == 3
    assert register["registerMember"]["__typename"] == "MemberPayload"
    # serve computed the demo tenant's ranking and referral aggregates on first start
    ranking = growth["kolRanking"]
    assert ranking["totalCount"] >= 300 and [n["rank"] for n in ranking["nodes"]] == [1, 2, 3, 4, 5]
    assert ranking["nodes"][0]["influence"]["components"]["followers"] > 0
    assert len(growth["koc"]["nodes"]) > 0
    assert len(growth["members"]["nodes"]) == 3
    assert sum(m["referralStats"]["teamSize"] for m in growth["members"]["nodes"]) >= 0
    assert any(m["recommendedMembers"] for m in growth["members"]["nodes"])
    # serve segmented the demo tenant on first start too; health is computed on the first read
    assert operators["segmentationSummary"]["computedAt"]
    lapsed = operators["lapsedBuyers"]
    assert lapsed["totalCount"] > 0
    assert all(m["segmentation"]["layer"] == "SILENT" for m in lapsed["nodes"])
    health = operators["communities"]["nodes"][0]["health"]
    assert health["memberCount"] > 0 and health["mau"] <= health["memberCount"]


def test_readme_curl_runs(server):
    base, tenant, port, env = server
    script = next(b for b in blocks("sh") if "curl" in b)
    script = script.replace("--tenant demo", f"--tenant {tenant}").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    script = script.replace(".venv/bin/quanzi", f"{sys.executable} -m api.cli")
    token = issue_token(Settings(), tenant=tenant, roles=["operator"])
    expected = httpx.post(base + "/graphql", json={"query": "{ members { totalCount } }"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30).json()["data"]["members"]["totalCount"]
    assert expected >= 300
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    body = httpx.Response(200, content=done.stdout).json()
    assert body["data"]["viewer"] == {"tenantId": tenant, "roles": ["operator"]}
    assert body["data"]["members"]["totalCount"] == expected
    assert len(body["data"]["members"]["nodes"]) == 3


def test_token_command_prints_the_token_last(server):
    *_, env = server
    done = subprocess.run([sys.executable, "-m", "api.cli", "token", "--tenant", "demo", "--role", "operator"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", done.stdout.strip().splitlines()[-1])


def test_operator_mistakes_are_one_clear_line(server):
    _, _, port, env = server
    done = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"quanzi: error: port {port} on 127.0.0.1 is already taken (another quanzi?); stop it or pass --port"
    bad = subprocess.run([sys.executable, "-m", "api.cli", "token", "--tenant", "demo", "--role", "king"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "roles are" in bad.stderr
