"""The ``quanzi`` command: serve, migrate, token, demo-data.

Operator mistakes (a taken port, an edited migration, a bad role) print one clear line
and exit with status 2; they never show a stack trace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence

from api.auth import issue_token
from api.imports_cli import add_parsers as add_import_parsers
from api.runtime import Endpoints, endpoints
from api.settings import Settings
from domain.errors import QuanziError, StartupError
from domain.growth import Scope, ScopeKind
from domain.health import HealthScope, HealthScopeKind
from graph.client import GraphClient
from graph.embedded import port_is_free
from graph.migrations import migrate

__all__ = ["main"]


def _connect(ep: Endpoints) -> GraphClient:
    return GraphClient.connect(ep.graph_uri, user=ep.graph_user, password=ep.graph_password, database=ep.graph_database)


class _Bars:
    """tqdm progress bars, one per stage, fed by ``progress(stage, done, total)``."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self._bars.get(stage)
        if bar is None:
            bar = self._tqdm(total=total, desc=f"{stage:<12}", unit="rows", unit_scale=True, leave=True, file=sys.stderr)
            self._bars[stage] = bar
        bar.n = done  # type: ignore[attr-defined]
        bar.refresh()  # type: ignore[attr-defined]
        if done >= total:
            bar.close()  # type: ignore[attr-defined]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()  # type: ignore[attr-defined]


async def _migrate(ep: Endpoints) -> str:
    graph = _connect(ep)
    try:
        report = await migrate(graph)
    finally:
        await graph.close()
    if report.applied:
        return "applied migrations " + ", ".join(f"V{v:03d}" for v in report.applied)
    return f"nothing to migrate ({len(report.already)} migrations already applied)"


async def _demo(ep: Endpoints, *, tenant: str, members: int, seed: int, only_if_empty: bool) -> str:
    from graph.demo_data import has_members, load_demo

    graph = _connect(ep)
    try:
        await migrate(graph)
        if only_if_empty and await has_members(graph, tenant=tenant):
            return f"demo data already loaded for tenant {tenant!r}"
        bars = _Bars()
        try:
            summary = await load_demo(graph, tenant=tenant, members=members, seed=seed, progress=bars)
        finally:
            bars.close()
    finally:
        await graph.close()
    return (
        f"loaded tenant {tenant!r}: {summary.members:,} members, {summary.communities:,} communities, "
        f"{summary.follows:,} follows, {summary.referrals:,} referrals, {summary.contents:,} posts, "
        f"{summary.purchases:,} purchases"
    )


def _scope(args: argparse.Namespace) -> Scope:
    from domain.ids import Kind, require_id

    if args.community:
        return Scope(ScopeKind.COMMUNITY, require_id(args.community, Kind.COMMUNITY, field="--community"))
    if args.topic:
        return Scope(ScopeKind.TOPIC, require_id(args.topic, Kind.TAG, field="--topic"))
    return Scope()


async def _recompute(ep: Endpoints, *, what: str, tenant: str, scope: Scope) -> str:
    import redis.asyncio as aioredis
    from tqdm import tqdm

    from graph.growth import RECOMPUTE_STAGES, rebuild_referrals, recompute_kol

    graph = _connect(ep)
    redis = aioredis.Redis.from_url(ep.redis_url)
    try:
        await migrate(graph)
        if what == "referrals":
            with tqdm(total=1, desc="referrals", unit="tenant", file=sys.stderr) as bar:
                members = await rebuild_referrals(graph, redis, tenant)
                bar.update(1)
            return f"rebuilt the referral aggregates of {members:,} members of tenant {tenant!r}"
        with tqdm(total=len(RECOMPUTE_STAGES), desc=f"kol {scope.key}", unit="stage", file=sys.stderr) as bar:
            def stage(name: str) -> None:
                bar.set_postfix_str(name)
                bar.update(1)

            result = await recompute_kol(graph, redis, tenant, scope, on_stage=stage)
        if result.skipped:
            raise StartupError(f"another process is computing the {scope.key} ranking of {tenant!r} right now; try later")
        times = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
        return f"ranked {result.members:,} members of {tenant!r} ({scope.key}) in {result.seconds:.2f}s: {times}"
    finally:
        await graph.close()
        await redis.aclose()


def _health_scope(args: argparse.Namespace) -> HealthScope:
    from domain.ids import Kind, require_id
    from domain.models import Channel

    if args.topic:
        raise StartupError("health has no topic scope: pass --community, --channel or --campaign")
    if args.community:
        return HealthScope(HealthScopeKind.COMMUNITY, require_id(args.community, Kind.COMMUNITY, field="--community"))
    if args.campaign:
        return HealthScope(HealthScopeKind.CAMPAIGN, require_id(args.campaign, Kind.CAMPAIGN, field="--campaign"))
    if args.channel:
        if args.channel not in {c.value for c in Channel}:
            raise StartupError(f"--channel must be one of {', '.join(c.value for c in Channel)}")
        return HealthScope(HealthScopeKind.CHANNEL, args.channel)
    return HealthScope()


async def _recompute_health(ep: Endpoints, *, tenant: str, scope: HealthScope) -> str:
    import redis.asyncio as aioredis
    from tqdm import tqdm

    from graph.health import recompute

    graph = _connect(ep)
    redis = aioredis.Redis.from_url(ep.redis_url)
    try:
        await migrate(graph)
        with tqdm(total=1, desc=f"health {scope.key}", unit="report", file=sys.stderr) as bar:
            run = await recompute(graph, redis, tenant, scope)
            bar.update(1)
        if run is None:
            raise StartupError(f"another process is computing that health report of {tenant!r} right now; try later")
        m = run.report.metrics
        return (f"health of {tenant!r} ({scope.key}, last 30 days): {m.member_count:,} members, "
                f"MAU {m.mau:,}; pull {run.pull_seconds:.2f}s, compute {run.compute_seconds:.2f}s")
    finally:
        await graph.close()
        await redis.aclose()


async def _recompute_segments(ep: Endpoints, *, tenant: str) -> str:
    import redis.asyncio as aioredis
    from tqdm import tqdm

    from graph.segmentation import STAGES_REPORTED, recompute

    graph = _connect(ep)
    redis = aioredis.Redis.from_url(ep.redis_url)
    bars = _Bars()
    try:
        await migrate(graph)
        with tqdm(total=len(STAGES_REPORTED), desc="segments", unit="stage", file=sys.stderr) as bar:
            def stage(name: str) -> None:
                bar.set_postfix_str(name)
                bar.update(1)

            result = await recompute(graph, redis, tenant, on_stage=stage,
                                     progress=lambda done, total: bars("members", done, total))
        if result.skipped:
            raise StartupError(f"another process is segmenting tenant {tenant!r} right now; try later")
        times = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
        return (f"segmented {result.members:,} members of {tenant!r} into {result.circles:,} interest circles "
                f"in {result.seconds:.2f}s: {times}")
    finally:
        bars.close()
        await graph.close()
        await redis.aclose()


def cmd_recompute(args: argparse.Namespace, settings: Settings) -> int:
    if args.what == "segments":
        if args.community or args.topic or args.channel or args.campaign:
            raise StartupError("`recompute segments` covers the whole tenant; it takes no --community, --topic, "
                               "--channel or --campaign")
        with endpoints(settings) as ep:
            print(asyncio.run(_recompute_segments(ep, tenant=args.tenant)))
        return 0
    if args.what == "health":
        health_scope = _health_scope(args)
        with endpoints(settings) as ep:
            print(asyncio.run(_recompute_health(ep, tenant=args.tenant, scope=health_scope)))
        return 0
    if args.channel or args.campaign:
        raise StartupError("--channel and --campaign are scopes of `recompute health` only")
    scope = _scope(args)
    with endpoints(settings) as ep:
        print(asyncio.run(_recompute(ep, what=args.what, tenant=args.tenant, scope=scope)))
    return 0


async def _derive(ep: Endpoints, *, tenant: str, force: bool) -> str | None:
    """Build the tenant's referral aggregates, KOL ranking and segmentation when missing (or *force*)."""
    import redis.asyncio as aioredis

    from graph.growth import rebuild_referrals, recompute_kol
    from graph.kol import KolStore
    from graph.referral_stats import ReferralStatsStore
    from graph.segmentation import GraphSegmentation
    from graph.segmentation import recompute as recompute_segments

    graph = _connect(ep)
    redis = aioredis.Redis.from_url(ep.redis_url)
    try:
        done: list[str] = []
        if force or not await ReferralStatsStore(redis).is_built(tenant):
            await rebuild_referrals(graph, redis, tenant)
            done.append("referral aggregates")
        if force or await KolStore(redis).meta(tenant, Scope()) is None:
            await recompute_kol(graph, redis, tenant, Scope())
            done.append("KOL ranking")
        if force or await GraphSegmentation(graph).summary(tenant) is None:
            await recompute_segments(graph, redis, tenant)
            done.append("segmentation")
        if not done:
            return None
        listed = done[0] if len(done) == 1 else ", ".join(done[:-1]) + " and " + done[-1]
        return f"computed the {listed} of tenant {tenant!r}"
    finally:
        await graph.close()
        await redis.aclose()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    settings.check()
    host, port = args.host or settings.host, args.port or settings.port
    if host in ("127.0.0.1", "localhost") and not port_is_free(port):
        raise StartupError(f"port {port} on {host} is already taken (another quanzi?); stop it or pass --port")
    with endpoints(settings) as ep:
        print(asyncio.run(_migrate(ep)), flush=True)
        members = settings.demo_members if args.demo_members is None else args.demo_members
        if members > 0:
            print(asyncio.run(_demo(ep, tenant=settings.demo_tenant, members=members, seed=settings.demo_seed,
                                    only_if_empty=True)), flush=True)
            derived = asyncio.run(_derive(ep, tenant=settings.demo_tenant, force=False))
            if derived:
                print(derived, flush=True)
        os.environ.update({
            "QUANZI_NEO4J_URI": ep.graph_uri, "QUANZI_NEO4J_USER": ep.graph_user,
            "QUANZI_NEO4J_PASSWORD": ep.graph_password, "QUANZI_REDIS_URL": ep.redis_url,
        })
        if ep.graph_database is not None:
            os.environ["QUANZI_NEO4J_DATABASE"] = ep.graph_database
        print(f"GraphQL on http://{host}:{port}/graphql" + (" (GraphiQL in the browser)" if settings.development else ""))
        if settings.development:
            print(f"a development token: .venv/bin/quanzi token --tenant {settings.demo_tenant} --role operator")
        from api.telemetry import configure_logging

        configure_logging(settings.effective_log_format)  # uvicorn's lines too (log_config=None), like the app's
        uvicorn.run("api.main:app_from_env", factory=True, host=host, port=port, workers=args.workers or settings.workers,
                    log_level="info", log_config=None, access_log=False, lifespan="on")
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with endpoints(settings) as ep:
        print(asyncio.run(_migrate(ep)))
    return 0


def cmd_demo_data(args: argparse.Namespace, settings: Settings) -> int:
    with endpoints(settings) as ep:
        print(asyncio.run(_demo(ep, tenant=args.tenant, members=args.members, seed=args.seed, only_if_empty=False)))
        print(asyncio.run(_derive(ep, tenant=args.tenant, force=True)))
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    token = issue_token(
        settings, tenant=args.tenant, roles=args.role or ["member"], member_id=args.member, scopes=args.scope or [],
        ttl_seconds=int(args.ttl_hours * 3600),
    )
    print(f"# tenant={args.tenant} roles={','.join(args.role or ['member'])} scopes={','.join(args.scope or []) or '-'}",
          file=sys.stderr)
    print(token)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quanzi", description="Quanzi: a GraphQL API over a social-commerce graph.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the GraphQL server (starting embedded servers when none are configured)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int)
    s.add_argument("--demo-members", type=int, help="demo members to load on first start (0: none)")
    s.set_defaults(fn=cmd_serve)
    m = sub.add_parser("migrate", help="apply pending schema migrations")
    m.set_defaults(fn=cmd_migrate)
    d = sub.add_parser("demo-data", help="generate and load a deterministic demo community")
    d.add_argument("--members", type=int, default=10_000)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--tenant", default="demo")
    d.set_defaults(fn=cmd_demo_data)
    r = sub.add_parser("recompute", help="recompute KOL/KOC rankings, referral aggregates, a health report "
                       "(the last 30 days) or the segmentation and interest circles")
    r.add_argument("what", choices=["kol", "referrals", "health", "segments"])
    r.add_argument("--tenant", default="demo")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--community", help="rank within one community (com_…)")
    where.add_argument("--topic", help="rank within one topic (tag_…)")
    where.add_argument("--channel", help="health of the members acquired through one channel (wechat, app, …)")
    where.add_argument("--campaign", help="health of one campaign's participants (cpg_…)")
    r.set_defaults(fn=cmd_recompute)
    t = sub.add_parser("token", help="print a development token (the token alone on the last line)")
    t.add_argument("--tenant", required=True)
    t.add_argument("--role", action="append", help="member, operator, analyst, integrator or admin (repeatable)")
    t.add_argument("--member", help="the member id this token acts as")
    t.add_argument("--scope", action="append", help="e.g. pii:read (repeatable)")
    t.add_argument("--ttl-hours", type=float, default=24 * 7)
    t.set_defaults(fn=cmd_token)
    add_import_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    fn: Callable[[argparse.Namespace, Settings], int] = args.fn
    try:
        return fn(args, Settings())
    except QuanziError as exc:
        print(f"quanzi: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quanzi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
