"""``quanzi import`` and ``quanzi export``: bulk files in and out (see graph/imports.py).

The columns of each file are documented in domain/imports.py (and the README).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from api.runtime import Endpoints, endpoints
from api.settings import Settings
from domain.errors import ValidationFailed

__all__ = ["add_parsers", "cmd_export", "cmd_import"]

_EPILOG = (
    "Files (CSV with a header row, or JSONL), all optional, imported in this order: members, communities, "
    "memberships, follows, content, interactions, products, purchases, referrals. Columns: see domain/imports.py. "
    "Rejected rows go to the report with file, line and reason; a rerun with the same files resumes."
)


async def _import(ep: Endpoints, args: argparse.Namespace) -> str:
    from api.cli import _Bars, _connect, _derive
    from graph.imports import REPORT_NAME, discover, import_files
    from graph.migrations import migrate

    folder = Path(args.dir)
    report = Path(args.report) if args.report else folder / REPORT_NAME
    files = discover(folder, report=report)
    graph = _connect(ep)
    try:
        await migrate(graph)
        bars = _Bars()
        try:
            summary = await import_files(graph, files, tenant=args.tenant, report=report, batch_size=args.batch_size,
                                         progress=bars, stop_after_batches=args.stop_after_batches)
        finally:
            bars.close()
    finally:
        await graph.close()
    if summary.already_done:
        return (f"these files were already imported into tenant {args.tenant!r} ({summary.imported:,} rows, "
                f"{summary.rejected:,} rejected); nothing to do")
    lines = [
        f"imported {summary.imported:,} rows into tenant {args.tenant!r}"
        + (" (resumed)" if summary.resumed else "")
        + f"; rejected {summary.rejected:,} (see {report})"
    ]
    if not args.no_derive:
        derived = await _derive(ep, tenant=args.tenant, force=True)
        if derived:
            lines.append(derived)
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    if args.batch_size < 1:
        raise ValidationFailed("--batch-size must be at least 1", field="--batch-size")
    folder = Path(args.dir)
    if not folder.is_dir():  # before starting any server
        raise ValidationFailed(f"no such folder: {folder}" if not folder.exists() else f"not a folder: {folder}",
                               field="DIR")
    from graph.imports import REPORT_NAME, check_headers, discover

    check_headers(discover(folder, report=Path(args.report) if args.report else folder / REPORT_NAME))
    with endpoints(settings) as ep:
        print(asyncio.run(_import(ep, args)))
    return 0


async def _export(ep: Endpoints, args: argparse.Namespace) -> str:
    from api.cli import _Bars, _connect
    from graph.imports import export_files

    graph = _connect(ep)
    try:
        bars = _Bars()
        try:
            summary = await export_files(graph, Path(args.dir), tenant=args.tenant, fmt=args.format, progress=bars)
        finally:
            bars.close()
    finally:
        await graph.close()
    counts = ", ".join(f"{n:,} {kind}" for kind, n in summary.rows.items())
    return f"exported tenant {args.tenant!r} to {args.dir}: {counts}"


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise ValidationFailed(f"not a folder: {folder}", field="DIR")
    with endpoints(settings) as ep:
        print(asyncio.run(_export(ep, args)))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``import`` and ``export`` subcommands to the ``quanzi`` parser."""
    i = sub.add_parser("import", help="import members, follows, purchases … from CSV/JSONL files (resumable)",
                       epilog=_EPILOG)
    i.add_argument("dir", metavar="DIR", help="folder holding members.csv, follows.jsonl …")
    i.add_argument("--tenant", required=True)
    i.add_argument("--report", help="CSV report of rejected rows (default DIR/rejected.csv)")
    i.add_argument("--batch-size", type=int, default=5000, help="rows per transaction (default 5000)")
    i.add_argument("--no-derive", action="store_true",
                   help="skip rebuilding referral aggregates and the KOL ranking afterwards")
    i.add_argument("--stop-after-batches", type=int, help=argparse.SUPPRESS)  # tests: simulate an interruption
    i.set_defaults(fn=cmd_import)
    e = sub.add_parser("export", help="export a tenant to CSV/JSONL files that `quanzi import` reads back")
    e.add_argument("dir", metavar="DIR", help="folder to write (created if missing; files are overwritten)")
    e.add_argument("--tenant", required=True)
    e.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    e.set_defaults(fn=cmd_export)
