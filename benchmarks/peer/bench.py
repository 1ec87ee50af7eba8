"""Side-by-side benchmark: Quanzi against the Neo4j GraphQL Library (issue 7).

One run, one machine, one Bolt server, one dataset:

1. starts the embedded graph server (ArcadeDB over Bolt) and Redis with data under
   ``.data/bench-peer-<members>`` and loads the deterministic demo community once (tenant
   ``bench``, seed 7; reruns reuse the folder, so only the first run at a size pays the load);
2. starts ``quanzi serve`` (one uvicorn worker unless ``--workers``) and the peer, a small
   Apollo Server running ``@neo4j/graphql`` 7 (``node/``: its npm dependencies are
   installed with ``npm ci`` when ``node/node_modules`` is missing), both over that server;
3. sends each operation of :mod:`benchmarks.peer.operations` once to both and checks that
   they return the same data (normalised: ids, counts, names);
4. drives both with the closed-loop generator of :mod:`benchmarks.peer.loadgen` at 1, 4 and
   16 clients. Each cell is split A-B-B-A (ours/peer, first side alternating per cell), so
   both sides see the same background noise, and every run is preceded by a warm-up;
5. writes ``benchmarks/results/peer_bench.md`` (p50/p99 latency, requests/s, ours/peer
   ratios, CPU per request of each process; one section per dataset size, rebuilt from the
   ``peer_bench.<members>.json`` each run leaves) and the chart ``peer_bench.png``
   (``peer_bench.<members>.png`` for sizes other than 10,000).

    .venv/bin/python benchmarks/peer/bench.py [--members 10000] [--seconds 6] [--clients 1,4,16]
        [--ops profile,feed,members,nested,post] [--workers 1] [--profile] [--serve] [--results DIR]

``--profile`` also samples our server with py-spy during a 16-client run of each operation
and writes the top costs to ``benchmarks/results/peer_bench.profile.md``. ``--serve``
only starts everything and prints the two URLs and a token (Ctrl-C stops).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from api.auth import issue_token
from api.runtime import Endpoints, endpoints
from api.settings import Settings
from benchmarks.harness import UNLIMITED_RATE, server_process
from benchmarks.peer import loadgen
from benchmarks.peer.operations import TITLE_PREFIX, Operation, Targets, operations
from graph.client import GraphClient, to_datetime
from graph.demo_data import has_members, load_demo
from graph.embedded import free_port
from graph.migrations import migrate

TENANT = "bench"
SEED = 7
#: our server's settings for the run: background jobs off (they would compete for the two
#: cores at random moments), and rate-limit budgets no benchmark can exhaust (the peer has
#: no rate limiter; ours still checks its Redis buckets on every request, as in production)
OURS_SETTINGS = {"QUANZI_SCHEDULER_INTERVAL": "0", **UNLIMITED_RATE}

# --------------------------------------------------------------------------------------
# Targets: what the operations read, picked from the graph (deterministic for a dataset)
# --------------------------------------------------------------------------------------

TOP_FOLLOWED = """
MATCH (m:Member {tenantId: $tenant}) WHERE EXISTS { (m)-[:MEMBER_OF]->(:Community) }
WITH m, COUNT { (m)<-[:FOLLOWS]-(:Member) } AS n ORDER BY n DESC, m.id ASC LIMIT 1
RETURN m.id AS id
"""
TOP_POSTED_IN = """
MATCH (c:Community {tenantId: $tenant})
WITH c, COUNT { (c)<-[:IN]-(:Content) } AS n ORDER BY n DESC, c.id ASC LIMIT 1
RETURN c.id AS id
"""
TOP_JOINED = """
MATCH (c:Community {tenantId: $tenant})
WITH c, COUNT { (c)<-[:MEMBER_OF]-(:Member) } AS n ORDER BY n DESC, c.id ASC LIMIT 1
MATCH (c)<-[:MEMBER_OF]-(m:Member)
RETURN c.id AS id, collect(m.joinedAt) AS joined
"""
MOST_COMMUNITIES = """
MATCH (m:Member {tenantId: $tenant})
WITH m, COUNT { (m)-[:MEMBER_OF]->(:Community) } AS n ORDER BY n DESC, m.id ASC LIMIT 1
RETURN m.id AS id
"""
MEMBERSHIPS_SAMPLE = """
MATCH (m:Member {tenantId: $tenant})-[:MEMBER_OF]->(c:Community)
WITH m, c ORDER BY m.id ASC, c.id ASC LIMIT 5000
RETURN collect([m.id, c.id]) AS pairs
"""
DELETE_BENCH_POSTS = """
MATCH (c:Content {tenantId: $tenant}) WHERE c.title STARTS WITH $prefix
WITH c LIMIT 2000
DETACH DELETE c
RETURN count(*) AS n
"""


async def prepare(ep: Endpoints, members: int, max_clients: int) -> Targets:
    graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)
    try:
        await migrate(graph)
        if not await has_members(graph, tenant=TENANT):
            print(f"loading {members:,} demo members (once per data folder) ...", flush=True)
            started = time.perf_counter()
            last = [0.0]

            def progress(stage: str, done: int, total: int) -> None:
                if time.perf_counter() - last[0] > 10 or done == total:
                    last[0] = time.perf_counter()
                    print(f"  {stage}: {done:,}/{total:,}", flush=True)

            await load_demo(graph, tenant=TENANT, members=members, seed=SEED, progress=progress)
            print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
        await delete_bench_posts(graph)
        profile = await graph.read_one(TOP_FOLLOWED, tenant=TENANT)  # type: ignore[arg-type]
        feed = await graph.read_one(TOP_POSTED_IN, tenant=TENANT)  # type: ignore[arg-type]
        joined = await graph.read_one(TOP_JOINED, tenant=TENANT)  # type: ignore[arg-type]
        nested = await graph.read_one(MOST_COMMUNITIES, tenant=TENANT)  # type: ignore[arg-type]
        sample = await graph.read_one(MEMBERSHIPS_SAMPLE, tenant=TENANT)  # type: ignore[arg-type]
        assert profile and feed and joined and nested and sample, "the dataset is empty"
        # a join window of the largest community that holds a few pages: newest 10 excluded
        # (tests the upper bound), down to the 300th newest
        times = sorted((to_datetime(t) for t in joined["joined"]), reverse=True)
        upper = times[min(10, len(times) - 1)]
        lower = times[min(300, len(times) - 1)]
        # one (author, community) per client, all distinct, so concurrent creates do not
        # contend for the same vertices
        pairs: list[tuple[str, str]] = []
        seen_m: set[str] = set()
        seen_c: set[str] = set()
        for m, c in sample["pairs"]:
            if m not in seen_m and c not in seen_c:
                pairs.append((m, c))
                seen_m.add(m)
                seen_c.add(c)
        if len(pairs) < max_clients:
            print(f"note: only {len(pairs)} distinct (author, community) pairs for the create mutation", flush=True)
        return Targets(
            profile_member=str(profile["id"]), feed_community=str(feed["id"]),
            filter_community=str(joined["id"]), joined_from=lower.isoformat(), joined_to=upper.isoformat(),
            nested_member=str(nested["id"]), post_pairs=pairs[:max_clients] or pairs,
        )
    finally:
        await graph.close()


async def delete_bench_posts(graph: GraphClient) -> int:
    """Delete every post an earlier run created (titles start with TITLE_PREFIX)."""
    total = 0
    while True:
        async def work(tx: Any) -> int:
            row = await graph.run_one(tx, DELETE_BENCH_POSTS, tenant=TENANT, prefix=TITLE_PREFIX)  # type: ignore[arg-type]
            return int(row["n"]) if row else 0

        n = await graph.write(work)
        total += n
        if n == 0:
            return total


# --------------------------------------------------------------------------------------
# The peer: Apollo Server + @neo4j/graphql in node/
# --------------------------------------------------------------------------------------


def ensure_node_modules() -> None:
    if (NODE_DIR / "node_modules" / "@neo4j" / "graphql").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("the peer needs Node.js 20+ and npm on PATH")
    print("installing the peer's npm dependencies (npm ci in benchmarks/peer/node) ...", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)


@contextlib.contextmanager
def peer_process(ep: Endpoints, settings: Settings) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = dict(os.environ, PEER_BOLT_URI=ep.graph_uri, PEER_BOLT_USER=ep.graph_user, PEER_BOLT_PASSWORD=ep.graph_password,
               PEER_DATABASE=ep.graph_database or "", PEER_PORT=str(port),
               PEER_JWT_SECRET=settings.jwt_secret.get_secret_value(), PEER_JWT_ISSUER=settings.jwt_issuer,
               PEER_JWT_AUDIENCE=settings.jwt_audience, NODE_ENV="production")
    log = (ROOT / ".data" / "peer-node.log").open("wb")
    proc = subprocess.Popen(["node", "server.mjs"], cwd=NODE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the peer exited ({proc.returncode}); see .data/peer-node.log")
            try:
                with contextlib.closing(__import__("socket").create_connection(("127.0.0.1", port), timeout=0.5)):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the peer did not start within 60 s; see .data/peer-node.log") from None
                time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --------------------------------------------------------------------------------------
# Processes' CPU (to show where time goes, and that the load generator is not the limit)
# --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def graph_server_pid() -> int | None:
    """The embedded ArcadeDB child of this process, if it runs one."""
    me = os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == me and b"arcadedb_main" in (stat.parent / "cmdline").read_bytes():
                return int(stat.parent.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    url: str
    pid: int
    token: str


@dataclass
class Result:
    op: Operation
    side: str
    clients: int
    cell: loadgen.Cell
    server_cpu_s: float
    graph_cpu_s: float

    @property
    def rps(self) -> float:
        return len(self.cell.latencies) / self.cell.wall_s if self.cell.wall_s else 0.0

    def pct(self, q: float) -> float:
        lat = sorted(self.cell.latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")

    def per_request_ms(self, cpu_s: float) -> float:
        n = len(self.cell.latencies) + self.cell.errors
        return cpu_s / n * 1000 if n else float("nan")


def requests_for(op: Operation, side: Side, targets: Targets, clients: int) -> list[loadgen.Request]:
    doc = op.ours if side.name == "ours" else op.peer
    make_vars = op.ours_vars if side.name == "ours" else op.peer_vars
    headers = {"Authorization": f"Bearer {side.token}"}
    n = clients if op.mutation else 1
    return [loadgen.build_request(side.url + "/graphql" if side.name == "ours" else side.url + "/",
                                  {"query": doc, "variables": make_vars(targets, i)}, headers) for i in range(n)]


async def check_same(op: Operation, sides: list[Side], targets: Targets) -> tuple[bool, str]:
    """Send the operation once to each side; compare the normalised answers."""
    shapes = []
    for side in sides:
        (req,) = requests_for(op, side, targets, 1)
        status, body = await loadgen.post_json(req)
        if status != 200 or "errors" in body:
            return False, f"{side.name}: HTTP {status} {str(body)[:600]}"
        norm = op.ours_norm if side.name == "ours" else op.peer_norm
        shapes.append(norm(body["data"]))
    if shapes[0] == shapes[1]:
        return True, _summary(shapes[0])
    return False, f"ours: {str(shapes[0])[:700]}\npeer: {str(shapes[1])[:700]}"


def _summary(shape: Any) -> str:
    """How much data a check compared (items at any depth)."""
    def count(x: Any) -> int:
        if isinstance(x, dict):
            return sum(count(v) for v in x.values())
        if isinstance(x, (list, tuple)):
            return len(x) + sum(count(v) for v in x if isinstance(v, (list, tuple, dict)))
        return 0

    return f"{count(shape)} compared items"


async def measure(op: Operation, side: Side, targets: Targets, clients: int, seconds: float, gpid: int | None) -> Result:
    reqs = requests_for(op, side, targets, clients)
    s0 = cpu_seconds(side.pid)
    g0 = cpu_seconds(gpid) if gpid else 0.0
    cell = await loadgen.run_cell(reqs, clients, seconds)
    return Result(op, side.name, clients, cell, cpu_seconds(side.pid) - s0, (cpu_seconds(gpid) - g0) if gpid else 0.0)


def merge(a: Result, b: Result) -> Result:
    a.cell.extend(b.cell)
    return Result(a.op, a.side, a.clients, a.cell, a.server_cpu_s + b.server_cpu_s, a.graph_cpu_s + b.graph_cpu_s)


async def run_all(sides: list[Side], targets: Targets, ops: list[Operation], clients_list: list[int], seconds: float,
                  warmup: float, gpid: int | None, profile: bool) -> tuple[list[Result], dict[str, str], dict[str, str]]:
    results: list[Result] = []
    checks: dict[str, str] = {}
    profiles: dict[str, str] = {}
    cell_no = 0
    for op in ops:
        ok, detail = await check_same(op, sides, targets)
        checks[op.key] = ("same data (" + detail + ")") if ok else ("MISMATCH\n" + detail)
        print(f"[{op.key}] check: {checks[op.key]}", flush=True)
        for side in sides:  # warm-up: JIT, caches, connection pools
            await loadgen.run_cell(requests_for(op, side, targets, 4), 4, warmup)
        for clients in clients_list:
            first, second = (sides[0], sides[1]) if cell_no % 2 == 0 else (sides[1], sides[0])
            cell_no += 1
            a1 = await measure(op, first, targets, clients, seconds / 2, gpid)
            b = await measure(op, second, targets, clients, seconds, gpid)
            a2 = await measure(op, first, targets, clients, seconds / 2, gpid)
            for r in (merge(a1, a2), b):
                results.append(r)
                err = f", {r.cell.errors} errors: {r.cell.first_error[:200]}" if r.cell.errors else ""
                print(f"[{op.key}] {r.side:4} c={clients:2}: {r.rps:7.1f} req/s  p50 {r.pct(0.5):7.2f} ms  "
                      f"p99 {r.pct(0.99):7.2f} ms{err}", flush=True)
        if profile:
            ours = next(s for s in sides if s.name == "ours")
            profiles[op.key] = await profile_ours(op, ours, targets, max(clients_list), seconds)
    return results, checks, profiles


async def profile_ours(op: Operation, side: Side, targets: Targets, clients: int, seconds: float) -> str:
    """Sample our server with py-spy while *clients* drive *op*; the top frames as text."""
    from benchmarks.peer.profile import top_frames

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return "py-spy is not installed (pip install py-spy)"
    out = ROOT / ".data" / f"peer-profile-{op.key}.txt"
    proc = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(side.pid), "--duration", str(int(seconds) + 1), "--rate", "200",
        "--format", "raw", "--output", str(out), "--nonblocking",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    await asyncio.sleep(0.5)
    await loadgen.run_cell(requests_for(op, side, targets, clients), clients, seconds)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    if not out.exists():
        return f"py-spy failed: {err.decode(errors='replace')[:300]}"
    return top_frames(out.read_text())


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def code_state() -> str:
    """The commit our server ran from, and how many of its files had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", "api", "resolvers", "graph", "domain",
                                 "migrations"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = len(status.splitlines())
    return f"commit {head}" + (f" with {changed} uncommitted file(s) in the server's code" if changed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000, help="demo members (10000 or 100000; default 10000)")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per side per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per side per operation")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients, comma-separated")
    parser.add_argument("--ops", default=",".join(o.key for o in operations()), help="operations to run")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of our server")
    parser.add_argument("--profile", action="store_true", help="also py-spy our server at the largest client count")
    parser.add_argument("--serve", action="store_true", help="only start both servers and print their URLs")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where to write the results (default benchmarks/results; use another folder for trials)")
    args = parser.parse_args()
    # a plain `kill` (or timeout) still stops both servers and the embedded stack
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    clients_list = [int(c) for c in args.clients.split(",")]
    ops = [o for o in operations() if o.key in args.ops.split(",")]

    from benchmarks.peer.report import ensure_matplotlib, write_report

    have_plot = ensure_matplotlib()
    ensure_node_modules()
    settings = Settings()
    data_dir = ROOT / ".data" / f"bench-peer-{args.members}"
    with endpoints(settings, data_dir=data_dir) as ep:
        targets = asyncio.run(prepare(ep, args.members, max(clients_list)))
        gpid = graph_server_pid()
        token = issue_token(settings, tenant=TENANT, roles=["operator"], ttl_seconds=24 * 3600)
        with server_process(ep, **OURS_SETTINGS, QUANZI_WORKERS=str(args.workers)) as (ours_url, ours_pid), \
                peer_process(ep, settings) as (peer_url, peer_pid):
            sides = [Side("ours", ours_url, ours_pid, token), Side("peer", peer_url, peer_pid, token)]
            if args.serve:
                print(f"ours: {ours_url}/graphql\npeer: {peer_url}/\ntoken: {token}\ntargets: {targets}\nCtrl-C stops.",
                      flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
                return
            load_before = os.getloadavg()
            loop = loadgen.new_loop()
            try:
                results, checks, profiles = loop.run_until_complete(
                    run_all(sides, targets, ops, clients_list, args.seconds, args.warmup, gpid, args.profile))
                graph = GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password,
                                            database=ep.graph_database)
                deleted = loop.run_until_complete(delete_bench_posts(graph))
                loop.run_until_complete(graph.close())
                print(f"deleted {deleted:,} benchmark posts", flush=True)
            finally:
                loop.close()
    meta = {
        "members": args.members, "seconds": args.seconds, "workers": args.workers,
        "stamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": platform.machine(),
        "cores": os.cpu_count(), "graph_cpu": gpid is not None, "targets": targets,
        "load": (load_before[0], os.getloadavg()[0]), "ours_settings": OURS_SETTINGS, "code": code_state(),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    write_report(results, checks, profiles, meta, have_plot=have_plot, out_dir=args.results)


if __name__ == "__main__":
    main()
