"""Bulk import of a file set into the graph, resumable, and its export (see domain/imports.py).

Import
------
:func:`discover` finds the files of a folder (operator mistakes raise ``ValidationFailed``
with one clear message). :func:`import_files` reads them kind by kind in
:data:`~domain.imports.IMPORT_ORDER`, validates every record (pure checks in
:class:`~domain.imports.ImportValidator`, then one batched look-up per batch for what only
the graph knows: ids already taken, references to nodes imported earlier, invite codes,
SKUs and idempotency keys in use, invitees who already have an inviter), appends rejected
rows to the report (CSV: file, line, reason) and writes the good ones with the same
``UNWIND $rows`` statements as the demo loader (:mod:`graph.demo_data`). Reading and
validating the next batch (in a worker thread) overlaps the commit of the previous one.

Resuming: a run is an ``(:ImportJob)`` node whose id hashes the tenant and the content of
every file. Each batch is written **in the same transaction** as the job's checkpoint
(file index, records done, report size, counters), so a crash or Ctrl-C at any point
leaves the graph and the checkpoint consistent; a rerun with the same files truncates the
report to the checkpointed size, replays the finished records through the pure validator
(to remember ids and pairs, without touching the graph) and carries on from the next
record. A finished job is not run again.

Relationship duplicates: within a job the validator and the checkpoint rule them out. When
the tenant already held members before the job started (an incremental import; recorded on
the job), each batch of follows, memberships and likes/favorites/shares is also checked
against the graph (one extra read per batch), so rerunning corrected files never doubles
an edge; a first import into an empty tenant skips that read.

Events and derived data: an import is a backfill, not live activity, so it records **no
outbox events** (integrators would otherwise receive millions of historical "new member"
events). ``quanzi import`` rebuilds the derived data afterwards, as ``quanzi demo-data``
does: referral aggregates (with ``firstPaidAt`` / ``firstActiveAt`` backfilled) and the
tenant's KOL ranking (``--no-derive`` skips it; then run ``quanzi recompute referrals`` and
``quanzi recompute kol``).

Export
------
:func:`export_files` writes the same files back. ArcadeDB does not serve
``WHERE n.tenantId = $t AND n.id > $after ORDER BY n.id LIMIT $n`` from an index (each page
scans and sorts the whole tenant: 0.4-0.8 s per 2,000-row page at 20k members, with or
without a ``(tenantId, id)`` index), so the keyset walk runs over a snapshot of the
tenant's ids taken in one round trip (one row holding a ``collect`` list), sorted here; each
page then fetches its rows (and, for relationships, the relationships of a page of source
members) by id with the unique-id index, one fat row per page.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, LiteralString

from domain.errors import ValidationFailed
from domain.ids import Kind
from domain.imports import (
    IMPORT_ORDER,
    SCHEMAS,
    Accepted,
    Column,
    ColumnType,
    FileKind,
    ImportValidator,
    RawRecord,
    Rejected,
    export_value,
    read_csv,
    read_jsonl,
)
from graph.client import GraphClient, Tx, now, to_datetime
from graph.cypher import cypher
from graph.demo_data import (
    CREATE_COMMUNITIES,
    CREATE_FAVORITES,
    CREATE_FOLLOWS,
    CREATE_LIKES,
    CREATE_MEMBERS,
    CREATE_MEMBERSHIPS,
    CREATE_PRODUCTS,
    CREATE_REFERRALS,
    CREATE_SHARES,
    MERGE_TENANT,
    has_members,
)

__all__ = ["FORMATS", "REPORT_NAME", "ExportSummary", "FileSet", "ImportSummary", "discover", "export_files",
           "import_files"]

Row = dict[str, Any]
Progress = Callable[[str, int, int], None]
FORMATS = ("csv", "jsonl")
REPORT_NAME = "rejected.csv"
"""The default report of rejected rows, written into the folder (and ignored when reading it)."""

# --------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------

CREATE_CONTENT_ROWS = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.author}) WITH * WHERE a.tenantId = $tenant
    MATCH (k:Community {id: row.community}) WITH * WHERE k.tenantId = $tenant
    CREATE (a)-[:POSTED {at: row.props.createdAt}]->(c:Content)-[:IN]->(k)
    SET c = row.props
    RETURN count(c) AS n
    """
)
CREATE_COMMENT_ROWS = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (c:Content {id: row.b}) WITH * WHERE c.tenantId = $tenant
    CREATE (a)-[:WROTE]->(cm:Comment)-[:ON]->(c)
    SET cm = row.props
    CREATE (a)-[:COMMENTED {at: row.at, commentId: row.props.id}]->(c)
    RETURN count(cm) AS n
    """
)
CREATE_PURCHASE_ROWS = cypher(
    """
    UNWIND $rows AS row
    MATCH (m:Member {id: row.member}) WITH * WHERE m.tenantId = $tenant
    CREATE (m)-[:PLACED {at: row.props.at}]->(p:Purchase)
    SET p = row.props
    WITH p, row
    UNWIND row.lines AS line
    MATCH (x:Product {id: line.productId}) WITH * WHERE x.tenantId = $tenant
    CREATE (p)-[:OF {qty: line.qty, unitPrice: line.unitPrice}]->(x)
    RETURN count(DISTINCT p) AS n
    """
)
CREATE_ATTRIBUTIONS = cypher(
    """
    UNWIND $rows AS row
    MATCH (p:Purchase {id: row.id}) WITH * WHERE p.tenantId = $tenant
    MATCH (a:Member {id: row.attributedTo}) WITH * WHERE a.tenantId = $tenant
    CREATE (p)-[r:ATTRIBUTED_TO]->(a)
    RETURN count(r) AS n
    """
)

# ids are unique across tenants (V001), so a taken id is reported whoever holds it
TAKEN_MEMBER_IDS = cypher("UNWIND $ids AS id MATCH (n:Member {id: id}) RETURN collect(n.id) AS found")
TAKEN_COMMUNITY_IDS = cypher("UNWIND $ids AS id MATCH (n:Community {id: id}) RETURN collect(n.id) AS found")
TAKEN_CONTENT_IDS = cypher("UNWIND $ids AS id MATCH (n:Content {id: id}) RETURN collect(n.id) AS found")
TAKEN_COMMENT_IDS = cypher("UNWIND $ids AS id MATCH (n:Comment {id: id}) RETURN collect(n.id) AS found")
TAKEN_PRODUCT_IDS = cypher("UNWIND $ids AS id MATCH (n:Product {id: id}) RETURN collect(n.id) AS found")
TAKEN_PURCHASE_IDS = cypher("UNWIND $ids AS id MATCH (n:Purchase {id: id}) RETURN collect(n.id) AS found")

MEMBERS_IN_TENANT = cypher(
    "UNWIND $ids AS id MATCH (n:Member {id: id}) WITH * WHERE n.tenantId = $tenant RETURN collect(n.id) AS found"
)
COMMUNITIES_IN_TENANT = cypher(
    "UNWIND $ids AS id MATCH (n:Community {id: id}) WITH * WHERE n.tenantId = $tenant RETURN collect(n.id) AS found"
)
CONTENT_IN_TENANT = cypher(
    "UNWIND $ids AS id MATCH (n:Content {id: id}) WITH * WHERE n.tenantId = $tenant RETURN collect(n.id) AS found"
)
PRODUCTS_IN_TENANT = cypher(
    "UNWIND $ids AS id MATCH (n:Product {id: id}) WITH * WHERE n.tenantId = $tenant RETURN collect(n.id) AS found"
)

TAKEN_INVITE_CODES = cypher(
    "UNWIND $values AS v MATCH (n:Member {tenantId: $tenant, inviteCode: v}) RETURN collect(v) AS found"
)
TAKEN_SKUS = cypher("UNWIND $values AS v MATCH (n:Product {tenantId: $tenant, sku: v}) RETURN collect(v) AS found")
TAKEN_IDEMPOTENCY_KEYS = cypher(
    "UNWIND $values AS v MATCH (n:Purchase {tenantId: $tenant, idempotencyKey: v}) RETURN collect(v) AS found"
)
INVITERS_OF = cypher(
    """
    UNWIND $ids AS id
    MATCH (b:Member {id: id}) WITH * WHERE b.tenantId = $tenant
    MATCH (i:Member)-[:REFERRED]->(b)
    RETURN collect([b.id, i.id]) AS found
    """
)

# incremental imports only (the tenant held members before the job): relationships already in the graph
EXISTING_FOLLOWS = cypher(
    """
    UNWIND $pairs AS pair
    MATCH (a:Member {id: pair[0]}) WITH * WHERE a.tenantId = $tenant
    MATCH (a)-[:FOLLOWS]->(b:Member)
    WHERE b.id = pair[1]
    RETURN collect(pair) AS found
    """
)
EXISTING_MEMBERSHIPS = cypher(
    """
    UNWIND $pairs AS pair
    MATCH (a:Member {id: pair[0]}) WITH * WHERE a.tenantId = $tenant
    MATCH (a)-[:MEMBER_OF]->(b:Community)
    WHERE b.id = pair[1]
    RETURN collect(pair) AS found
    """
)
EXISTING_REACTIONS = cypher(
    """
    UNWIND $pairs AS pair
    MATCH (a:Member {id: pair[0]}) WITH * WHERE a.tenantId = $tenant
    MATCH (a)-[r:LIKED|FAVORITED|SHARED]->(c:Content)
    WHERE c.id = pair[1]
    RETURN collect([pair[0], pair[1], type(r)]) AS found
    """
)

IMPORT_JOB = cypher(
    """
    MATCH (j:ImportJob {id: $jobId}) WITH * WHERE j.tenantId = $tenant
    RETURN j
    """
)
CREATE_IMPORT_JOB = cypher(
    """
    CREATE (j:ImportJob)
    SET j = $props
    RETURN j.id AS id
    """
)
CHECKPOINT_IMPORT_JOB = cypher(
    """
    MATCH (j:ImportJob {id: $jobId}) WITH * WHERE j.tenantId = $tenant
    SET j.fileIndex = $fileIndex, j.records = $records, j.reportBytes = $reportBytes,
        j.imported = $imported, j.rejected = $rejected, j.status = $status, j.updatedAt = $now
    RETURN j.id AS id
    """
)

EXPORT_MEMBER_IDS = cypher("MATCH (n:Member) WHERE n.tenantId = $tenant RETURN collect(n.id) AS ids")
EXPORT_COMMUNITY_IDS = cypher("MATCH (n:Community) WHERE n.tenantId = $tenant RETURN collect(n.id) AS ids")
EXPORT_CONTENT_IDS = cypher("MATCH (n:Content) WHERE n.tenantId = $tenant RETURN collect(n.id) AS ids")
EXPORT_PRODUCT_IDS = cypher("MATCH (n:Product) WHERE n.tenantId = $tenant RETURN collect(n.id) AS ids")
EXPORT_PURCHASE_IDS = cypher("MATCH (n:Purchase) WHERE n.tenantId = $tenant RETURN collect(n.id) AS ids")

EXPORT_MEMBERS = cypher(
    "UNWIND $ids AS id MATCH (n:Member {id: id}) WITH * WHERE n.tenantId = $tenant RETURN collect(properties(n)) AS rows"
)
EXPORT_COMMUNITIES = cypher(
    "UNWIND $ids AS id MATCH (n:Community {id: id}) WITH * WHERE n.tenantId = $tenant RETURN collect(properties(n)) AS rows"
)
EXPORT_PRODUCTS = cypher(
    "UNWIND $ids AS id MATCH (n:Product {id: id}) WITH * WHERE n.tenantId = $tenant RETURN collect(properties(n)) AS rows"
)
EXPORT_CONTENT = cypher(
    """
    UNWIND $ids AS id
    MATCH (n:Content {id: id}) WITH * WHERE n.tenantId = $tenant
    MATCH (a:Member)-[:POSTED]->(n)
    MATCH (n)-[:IN]->(k:Community)
    RETURN collect({node: properties(n), author: a.id, community: k.id}) AS rows
    """
)
EXPORT_PURCHASES = cypher(
    """
    UNWIND $ids AS id
    MATCH (p:Purchase {id: id}) WITH * WHERE p.tenantId = $tenant
    MATCH (m:Member)-[:PLACED]->(p)
    RETURN collect({
      node: properties(p), member: m.id,
      lines: [(p)-[o:OF]->(x:Product) | {productId: x.id, qty: o.qty, unitPrice: o.unitPrice}]
    }) AS rows
    """
)
EXPORT_MEMBERSHIPS = cypher(
    """
    UNWIND $ids AS id
    MATCH (a:Member {id: id}) WITH * WHERE a.tenantId = $tenant
    MATCH (a)-[r:MEMBER_OF]->(b:Community)
    RETURN collect({member: a.id, community: b.id, role: r.role, joinedAt: r.joinedAt}) AS rows
    """
)
EXPORT_FOLLOWS = cypher(
    """
    UNWIND $ids AS id
    MATCH (a:Member {id: id}) WITH * WHERE a.tenantId = $tenant
    MATCH (a)-[r:FOLLOWS]->(b:Member)
    RETURN collect({follower: a.id, followee: b.id, at: r.at}) AS rows
    """
)
EXPORT_REACTIONS = cypher(
    """
    UNWIND $ids AS id
    MATCH (a:Member {id: id}) WITH * WHERE a.tenantId = $tenant
    MATCH (a)-[r:LIKED|FAVORITED|SHARED]->(c:Content)
    RETURN collect({member: a.id, content: c.id, type: type(r), at: r.at, count: r.count, lastAt: r.lastAt}) AS rows
    """
)
EXPORT_COMMENTS = cypher(
    """
    UNWIND $ids AS id
    MATCH (a:Member {id: id}) WITH * WHERE a.tenantId = $tenant
    MATCH (a)-[:WROTE]->(cm:Comment)-[:ON]->(c:Content)
    RETURN collect({member: a.id, content: c.id, comment: cm.id, body: cm.body, at: cm.createdAt}) AS rows
    """
)
EXPORT_REFERRALS = cypher(
    """
    UNWIND $ids AS id
    MATCH (a:Member {id: id}) WITH * WHERE a.tenantId = $tenant
    MATCH (a)-[r:REFERRED]->(b:Member)
    RETURN collect({inviter: a.id, invitee: b.id, at: r.at, code: r.code, channel: r.channel,
                    campaignId: r.campaignId}) AS rows
    """
)

_TAKEN: dict[Kind, LiteralString] = {
    Kind.MEMBER: TAKEN_MEMBER_IDS, Kind.COMMUNITY: TAKEN_COMMUNITY_IDS, Kind.CONTENT: TAKEN_CONTENT_IDS,
    Kind.COMMENT: TAKEN_COMMENT_IDS, Kind.PRODUCT: TAKEN_PRODUCT_IDS, Kind.PURCHASE: TAKEN_PURCHASE_IDS,
}
_IN_TENANT: dict[Kind, LiteralString] = {
    Kind.MEMBER: MEMBERS_IN_TENANT, Kind.COMMUNITY: COMMUNITIES_IN_TENANT, Kind.CONTENT: CONTENT_IN_TENANT,
    Kind.PRODUCT: PRODUCTS_IN_TENANT,
}
_UNIQUE: dict[str, LiteralString] = {
    "inviteCode": TAKEN_INVITE_CODES, "sku": TAKEN_SKUS, "idempotencyKey": TAKEN_IDEMPOTENCY_KEYS,
}
_NODE_WRITE: dict[FileKind, LiteralString] = {
    FileKind.MEMBERS: CREATE_MEMBERS, FileKind.COMMUNITIES: CREATE_COMMUNITIES, FileKind.PRODUCTS: CREATE_PRODUCTS,
    FileKind.CONTENT: CREATE_CONTENT_ROWS, FileKind.MEMBERSHIPS: CREATE_MEMBERSHIPS, FileKind.FOLLOWS: CREATE_FOLLOWS,
    FileKind.REFERRALS: CREATE_REFERRALS, FileKind.PURCHASES: CREATE_PURCHASE_ROWS,
}
_INTERACTION_WRITE: dict[str, LiteralString] = {
    "like": CREATE_LIKES, "favorite": CREATE_FAVORITES, "share": CREATE_SHARES, "comment": CREATE_COMMENT_ROWS,
}
_TYPE_NAMES = {"LIKED": "like", "FAVORITED": "favorite", "SHARED": "share"}

# --------------------------------------------------------------------------------------
# File sets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSet:
    """The files of a folder, in import order: ``(kind, path, format)``."""

    folder: Path
    files: tuple[tuple[FileKind, Path, str], ...]


def discover(folder: Path, *, report: Path | None = None) -> FileSet:
    """The file set in *folder*; ``ValidationFailed`` (one line) for an operator mistake."""
    if not folder.exists():
        raise ValidationFailed(f"no such folder: {folder}", field="DIR")
    if not folder.is_dir():
        raise ValidationFailed(f"not a folder: {folder}", field="DIR")
    found: dict[FileKind, Path] = {}
    names = {k.value: k for k in FileKind}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == REPORT_NAME or (report is not None and path == report):
            continue
        stem, _, ext = path.name.partition(".")
        if stem not in names or ext not in FORMATS or not path.is_file():
            raise ValidationFailed(
                f"unknown file {path.name!r} in {folder} (expected <kind>.csv or <kind>.jsonl, kinds: "
                f"{', '.join(names)})", field="DIR")
        kind = names[stem]
        if kind in found:
            raise ValidationFailed(f"both {found[kind].name} and {path.name} in {folder}: keep one", field="DIR")
        found[kind] = path
    if not found:
        raise ValidationFailed(f"no import files in {folder} (expected members.csv, follows.jsonl …)", field="DIR")
    return FileSet(folder, tuple((k, found[k], found[k].suffix[1:]) for k in IMPORT_ORDER if k in found))


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def _job_id(tenant: str, files: FileSet) -> str:
    h = hashlib.sha256(f"quanzi-import\0{tenant}\0".encode())
    for kind, path, fmt in files.files:
        h.update(f"{kind.value}.{fmt}\0".encode())
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        h.update(b"\0")
    return "imp_" + h.hexdigest()[:32]


def _records(kind: FileKind, path: Path, fmt: str) -> Iterator[RawRecord]:
    try:
        f = path.open(encoding="utf-8-sig", newline="")
        text: IO[str] = f
        if fmt == "csv":
            _, records = read_csv(text, columns=[c.name for c in SCHEMAS[kind]])
        else:
            records = read_jsonl(text)
        with f:
            yield from records
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})", field="DIR") from None
    except ValueError as exc:
        raise ValidationFailed(f"{path.name}: {exc}", field="DIR") from None


def check_headers(files: FileSet) -> None:
    """Fail fast (before writing anything) on a CSV header that does not fit its kind."""
    for kind, path, fmt in files.files:
        if fmt != "csv":
            continue
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:
                read_csv(f, columns=[c.name for c in SCHEMAS[kind]])
        except UnicodeDecodeError as exc:
            raise ValidationFailed(f"{path.name} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                                   field="DIR") from None
        except ValueError as exc:
            raise ValidationFailed(f"{path.name}: {exc}", field="DIR") from None
        required = [c.name for c in SCHEMAS[kind] if c.required]
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = [h.strip() for h in next(csv.reader(f))]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValidationFailed(f"{path.name}: the header lacks the required column {missing[0]!r}", field="DIR")


# --------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What an import run did (counts are over the whole job, including earlier runs)."""

    job_id: str
    imported: int = 0
    rejected: int = 0
    resumed: bool = False
    already_done: bool = False
    per_kind: dict[str, int] = field(default_factory=dict)


class _Interrupted(KeyboardInterrupt):
    """Raised by the test-only ``stop_after_batches`` limit, like a Ctrl-C between batches."""


async def import_files(
    graph: GraphClient,
    files: FileSet,
    *,
    tenant: str,
    report: Path,
    batch_size: int = 5000,
    progress: Progress | None = None,
    stop_after_batches: int | None = None,
) -> ImportSummary:
    """Import *files* into *tenant*, resuming an interrupted run of the same files.

    Parameters
    ----------
    report:
        The CSV report of rejected rows (``file,line,reason``); created, or truncated to
        its checkpointed size when resuming.
    batch_size:
        Records per batch; each batch and its checkpoint commit in one transaction.
    progress:
        ``progress(kind, lines done, lines total)`` per batch.
    stop_after_batches:
        Test hook: raise ``KeyboardInterrupt`` after this many committed batches.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    check_headers(files)
    job_id = _job_id(tenant, files)
    row = await graph.read_one(IMPORT_JOB, jobId=job_id, tenant=tenant)
    job = dict(row["j"]) if row is not None else None
    summary = ImportSummary(job_id=job_id)
    if job is not None and job.get("status") == "done":
        summary.imported, summary.rejected, summary.already_done = int(job["imported"]), int(job["rejected"]), True
        return summary
    if job is None:
        at = now()
        incremental = await has_members(graph, tenant=tenant)

        async def create(tx: Tx) -> None:
            await graph.run(tx, MERGE_TENANT, tenant=tenant, name=tenant, createdAt=at)
            await graph.run(tx, CREATE_IMPORT_JOB, props={
                "id": job_id, "tenantId": tenant, "createdAt": at, "updatedAt": at, "status": "running",
                "incremental": incremental,
                "fileIndex": 0, "records": 0, "reportBytes": 0, "imported": 0, "rejected": 0,
                "files": [p.name for _, p, _ in files.files],
            })

        await graph.write(create)
        job = {"fileIndex": 0, "records": 0, "reportBytes": 0, "imported": 0, "rejected": 0, "incremental": incremental}
        with report.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerow(["file", "line", "reason"])
        report_bytes = report.stat().st_size
    else:
        summary.resumed = True
        report_bytes = int(job["reportBytes"])
        if not report.exists() or report.stat().st_size < report_bytes:  # moved or deleted: start a new one
            with report.open("w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerow(["file", "line", "reason"])
            report_bytes = report.stat().st_size
        with report.open("r+b") as fb:
            fb.truncate(report_bytes)
    summary.imported, summary.rejected = int(job["imported"]), int(job["rejected"])
    runner = _Runner(graph, tenant, job_id, report, report_bytes, summary, stop_after_batches,
                     incremental=bool(job.get("incremental")))
    start_file, start_record = int(job["fileIndex"]), int(job["records"])
    for index, (kind, path, fmt) in enumerate(files.files):
        total = _count_lines(path) - (1 if fmt == "csv" else 0)
        skip = None if index < start_file else (start_record if index == start_file else 0)
        await runner.file(index, kind, path, fmt, skip=skip, batch_size=batch_size, total=max(total, 0),
                          progress=progress)
    await runner.finish(len(files.files))
    return summary


class _Runner:
    def __init__(self, graph: GraphClient, tenant: str, job_id: str, report: Path, report_bytes: int,
                 summary: ImportSummary, stop_after: int | None, *, incremental: bool) -> None:
        self.graph = graph
        self.tenant = tenant
        self.job_id = job_id
        self.report = report
        self.report_bytes = report_bytes
        self.summary = summary
        self.stop_after = stop_after
        self.batches = 0
        self.incremental = incremental  # the tenant had data before: look for relationships already there
        self.validator = ImportValidator()

    async def file(self, index: int, kind: FileKind, path: Path, fmt: str, *, skip: int | None, batch_size: int,
                   total: int, progress: Progress | None) -> None:
        """Import one file; *skip* records were done by an earlier run (``None``: all of them).

        Two batches are in flight: while one commits (its rows and checkpoint), the next is
        read and validated in a worker thread and checked against the graph. Nothing the next
        batch is checked against depends on the committing one: the validator already knows
        its ids and pairs.
        """
        records = _records(kind, path, fmt)
        if progress is not None:
            progress(kind.value, 0, total)
        done = 0
        for record in records if skip is None else itertools.islice(records, skip):
            self.validator.check(kind, record)  # replay: remember ids and pairs, write nothing
            done += 1
        if skip is None:
            return
        pending: asyncio.Task[int] | None = None
        try:
            while True:
                size, accepted, rejected = await asyncio.to_thread(self._validate, kind, records, batch_size)
                if size == 0 and (done > 0 or pending is not None):
                    break
                done += size
                accepted = await self._graph_checks(kind, accepted, rejected)
                if pending is not None:
                    last_line = await pending
                    if progress is not None:
                        progress(kind.value, min(last_line, total), total)
                pending = asyncio.create_task(self._commit(index, kind, path, accepted, rejected, done))
                if size == 0:
                    break  # an empty file: its checkpoint
            if pending is not None:
                await pending
                pending = None
        finally:
            if pending is not None:  # an error in the next batch: let the committing one finish
                with contextlib.suppress(BaseException):
                    await pending
        if progress is not None:
            progress(kind.value, total, total)

    def _validate(self, kind: FileKind, records: Iterator[RawRecord],
                  size: int) -> tuple[int, list[Accepted], list[Rejected]]:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        n = 0
        for record in itertools.islice(records, size):
            n += 1
            result = self.validator.check(kind, record)
            if isinstance(result, Accepted):
                accepted.append(result)
            else:
                rejected.append(result)
        return n, accepted, rejected

    async def _commit(self, index: int, kind: FileKind, path: Path, accepted: list[Accepted], rejected: list[Rejected],
                      done: int) -> int:
        """Write a batch's report lines, then its rows with the checkpoint; return its last line."""
        rejected.sort(key=lambda r: r.line)
        buf = io.StringIO()
        writer = csv.writer(buf)
        for r in rejected:
            writer.writerow([path.name, r.line, r.reason])
        data = buf.getvalue().encode("utf-8")
        with self.report.open("r+b") as f:  # written first; the checkpoint below makes it count
            f.truncate(self.report_bytes)
            f.seek(self.report_bytes)
            f.write(data)
        report_bytes = self.report_bytes + len(data)
        imported = self.summary.imported + len(accepted)
        rejected_total = self.summary.rejected + len(rejected)
        rows = [a.row for a in accepted]
        tenant = self.tenant

        async def work(tx: Tx) -> None:
            await _write_rows(self.graph, tx, kind, rows, tenant)
            await self.graph.run(
                tx, CHECKPOINT_IMPORT_JOB, jobId=self.job_id, tenant=tenant, fileIndex=index, records=done,
                reportBytes=report_bytes, imported=imported, rejected=rejected_total, status="running", now=now(),
            )

        await self.graph.write(work)
        self.report_bytes = report_bytes
        self.summary.imported, self.summary.rejected = imported, rejected_total
        self.summary.per_kind[kind.value] = self.summary.per_kind.get(kind.value, 0) + len(accepted)
        self.batches += 1
        if self.stop_after is not None and self.batches >= self.stop_after:
            raise _Interrupted
        return max([a.line for a in accepted] + [r.line for r in rejected], default=0)

    async def finish(self, files: int) -> None:
        async def work(tx: Tx) -> None:
            await self.graph.run(
                tx, CHECKPOINT_IMPORT_JOB, jobId=self.job_id, tenant=self.tenant, fileIndex=files, records=0,
                reportBytes=self.report_bytes, imported=self.summary.imported, rejected=self.summary.rejected,
                status="done", now=now(),
            )

        await self.graph.write(work)

    async def _found(self, query: LiteralString, **params: Any) -> list[Any]:
        row = await self.graph.read_one(query, tenant=self.tenant, **params)
        return list(row["found"]) if row is not None else []

    async def _existing(self, kind: FileKind, accepted: list[Accepted], missing: set[str]) -> set[tuple[str, str, str]]:
        """Relationship rows already in the graph (only asked when the tenant had data before the job)."""
        if not self.incremental or kind not in (FileKind.FOLLOWS, FileKind.MEMBERSHIPS, FileKind.INTERACTIONS):
            return set()
        pairs = sorted({(a.row["a"], a.row["b"]) for a in accepted
                        if a.row.get("kind") != "comment" and a.row["a"] not in missing and a.row["b"] not in missing})
        if not pairs:
            return set()
        if kind is FileKind.INTERACTIONS:
            found = await self._found(EXISTING_REACTIONS, pairs=[list(p) for p in pairs])
            return {(a, b, _TYPE_NAMES[t]) for a, b, t in found}
        query = EXISTING_FOLLOWS if kind is FileKind.FOLLOWS else EXISTING_MEMBERSHIPS
        return {(a, b, "") for a, b in await self._found(query, pairs=[list(p) for p in pairs])}

    async def _graph_checks(self, kind: FileKind, accepted: list[Accepted], rejected: list[Rejected]) -> list[Accepted]:
        """Reject what only the graph can tell: taken ids and keys, missing references, second inviters."""
        if not accepted:
            return accepted
        bad: dict[int, str] = {}
        nodes: dict[Kind, list[str]] = {}
        for a in accepted:
            if a.node is not None:
                nodes.setdefault(_kind_of(a.node), []).append(a.node)
        taken: set[str] = set()
        #: taken ids that are this tenant's: later rows may refer to them (a re-import)
        taken_here: set[str] = set()
        for node_kind, ids in nodes.items():
            found_ids = await self._found(_TAKEN[node_kind], ids=ids)
            taken.update(found_ids)
            if found_ids and node_kind in _IN_TENANT:
                taken_here.update(await self._found(_IN_TENANT[node_kind], ids=sorted(found_ids)))
        unique: dict[str, list[str]] = {}
        for a in accepted:
            for key, value in a.unique:
                unique.setdefault(key, []).append(value)
        taken_keys: set[tuple[str, str]] = set()
        for key, values in unique.items():
            taken_keys.update((key, v) for v in await self._found(_UNIQUE[key], values=values))
        refs: dict[Kind, set[str]] = {}
        for a in accepted:
            for ref_kind, ref in a.refs:
                if ref not in self.validator.known[ref_kind]:
                    refs.setdefault(ref_kind, set()).add(ref)
        missing: set[str] = set()
        for ref_kind, wanted in refs.items():
            found = set(await self._found(_IN_TENANT[ref_kind], ids=sorted(wanted)))
            self.validator.learn(ref_kind, found)
            missing.update(wanted - found)
        existing = await self._existing(kind, accepted, missing)
        inviters: dict[str, str] = {}
        invitees = [a.invitee for a in accepted if a.invitee is not None and a.invitee not in missing]
        if invitees:
            inviters = {b: i for b, i in await self._found(INVITERS_OF, ids=invitees)}
        for k, a in enumerate(accepted):
            if a.node is not None and a.node in taken:
                bad[k] = f"id {a.node} already exists in the graph"
            elif any(key in taken_keys for key in a.unique):
                key, value = next(key for key in a.unique if key in taken_keys)
                bad[k] = f"{key} {value!r} is already used in this tenant"
            elif any(ref in missing for _, ref in a.refs):
                ref_kind, ref = next((rk, r) for rk, r in a.refs if r in missing)
                bad[k] = f"{ref_kind.name.lower()} {ref} does not exist (not in the file set nor in the graph)"
            elif _pair_key(kind, a.row) in existing:
                bad[k] = "already in the graph (imported before, or created in the app)"
            elif a.invitee is not None and a.invitee in inviters:
                bad[k] = f"second inviter: {a.invitee} was already invited by {inviters[a.invitee]}"
        if not bad:
            return accepted
        keep: list[Accepted] = []
        for k, a in enumerate(accepted):
            if k in bad:
                rejected.append(Rejected(a.line, bad[k]))
                if a.node is not None and a.node not in taken_here:
                    # an id another tenant holds must not make later rows look valid: their
                    # tenant-filtered writes would match nothing and the rows vanish unreported
                    self.validator.forget(_kind_of(a.node), a.node)
            else:
                keep.append(a)
        return keep


def _pair_key(kind: FileKind, row: Row) -> tuple[str, str, str] | None:
    if kind in (FileKind.FOLLOWS, FileKind.MEMBERSHIPS):
        return (row["a"], row["b"], "")
    if kind is FileKind.INTERACTIONS and row["kind"] != "comment":
        return (row["a"], row["b"], row["kind"])
    return None


def _kind_of(node_id: str) -> Kind:
    return Kind(node_id[:3])


async def _write_rows(graph: GraphClient, tx: Tx, kind: FileKind, rows: list[Row], tenant: str) -> None:
    if not rows:
        return
    if kind is FileKind.INTERACTIONS:
        by_type: dict[str, list[Row]] = {}
        for row in rows:
            if "props" in row:  # a comment node
                row = {**row, "props": {**row["props"], "tenantId": tenant}}
            by_type.setdefault(row["kind"], []).append(row)
        for name, group in by_type.items():
            await graph.run(tx, _INTERACTION_WRITE[name], rows=group, tenant=tenant)
        return
    nodes = kind in (FileKind.MEMBERS, FileKind.COMMUNITIES, FileKind.PRODUCTS)
    if nodes:
        rows = [{**row, "tenantId": tenant} for row in rows]
    elif kind in (FileKind.CONTENT, FileKind.PURCHASES):
        rows = [{**row, "props": {**row["props"], "tenantId": tenant}} for row in rows]
    await graph.run(tx, _NODE_WRITE[kind], rows=rows, tenant=tenant)
    if kind is FileKind.PURCHASES:
        credited = [{"id": r["props"]["id"], "attributedTo": r["props"]["attributedTo"]}
                    for r in rows if r["props"].get("attributedTo")]
        if credited:
            await graph.run(tx, CREATE_ATTRIBUTIONS, rows=credited, tenant=tenant)


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------


@dataclass
class ExportSummary:
    rows: dict[str, int] = field(default_factory=dict)


_ID_SNAPSHOT: dict[FileKind, LiteralString] = {
    FileKind.MEMBERS: EXPORT_MEMBER_IDS, FileKind.COMMUNITIES: EXPORT_COMMUNITY_IDS,
    FileKind.CONTENT: EXPORT_CONTENT_IDS, FileKind.PRODUCTS: EXPORT_PRODUCT_IDS,
    FileKind.PURCHASES: EXPORT_PURCHASE_IDS,
}
_BY_MEMBER: dict[FileKind, tuple[LiteralString, ...]] = {
    FileKind.MEMBERSHIPS: (EXPORT_MEMBERSHIPS,), FileKind.FOLLOWS: (EXPORT_FOLLOWS,),
    FileKind.INTERACTIONS: (EXPORT_REACTIONS, EXPORT_COMMENTS), FileKind.REFERRALS: (EXPORT_REFERRALS,),
}


class _Writer:
    def __init__(self, path: Path, fmt: str, columns: Sequence[Column]) -> None:
        self.fmt = fmt
        self.columns = columns
        self.f = path.open("w", encoding="utf-8", newline="")
        self.csv = csv.writer(self.f, lineterminator="\n") if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow([c.name for c in columns])

    def write(self, row: Row) -> None:
        values = [export_value(c, row.get(c.name)) for c in self.columns]
        if self.csv is not None:
            self.csv.writerow([_cell(c, v) for c, v in zip(self.columns, values, strict=True)])
        else:
            obj = {c.name: v for c, v in zip(self.columns, values, strict=True)}
            self.f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.f.close()


def _cell(col: Column, value: Any) -> str:
    if value is None:
        return ""
    if col.type is ColumnType.BOOL:
        return "true" if value else "false"
    if col.type is ColumnType.LINES:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _times(row: Row, *names: str) -> Row:
    for name in names:
        if row.get(name) is not None:
            row[name] = to_datetime(row[name])
    return row


def _export_rows(kind: FileKind, raw: Iterable[Any]) -> list[Row]:
    out: list[Row] = []
    for item in raw:
        if kind in (FileKind.MEMBERS, FileKind.COMMUNITIES, FileKind.PRODUCTS):
            out.append(_times(dict(item), "joinedAt", "createdAt"))
        elif kind is FileKind.CONTENT:
            out.append(_times({**dict(item["node"]), "author": item["author"], "community": item["community"]},
                              "createdAt"))
        elif kind is FileKind.PURCHASES:
            node = dict(item["node"])
            out.append(_times({**node, "member": item["member"], "lines": list(item["lines"])}, "at"))
        elif kind is FileKind.INTERACTIONS:
            row = dict(item)
            kind_name = _TYPE_NAMES.get(str(row.pop("type", "")), "comment")
            row["kind"] = kind_name
            if kind_name != "share":
                row["count"] = row["lastAt"] = None
            out.append(_times(row, "at", "lastAt"))
        else:
            out.append(_times(dict(item), "at", "joinedAt"))
    return out


def _sort_key(kind: FileKind) -> Callable[[Row], tuple[str, ...]]:
    if kind is FileKind.MEMBERSHIPS:
        return lambda r: (r["member"], r["community"])
    if kind is FileKind.FOLLOWS:
        return lambda r: (r["follower"], r["followee"])
    if kind is FileKind.REFERRALS:
        return lambda r: (r["inviter"], r["invitee"])
    if kind is FileKind.INTERACTIONS:
        return lambda r: (r["member"], r["content"], r["kind"], r.get("comment") or "")
    return lambda r: (r["id"],)


async def export_files(
    graph: GraphClient,
    folder: Path,
    *,
    tenant: str,
    fmt: str = "csv",
    page_size: int = 2000,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the tenant's file set to *folder* (created if needed), one file per kind, sorted by id."""
    if fmt not in FORMATS:
        raise ValidationFailed(f"--format must be csv or jsonl, got {fmt!r}", field="--format")
    if folder.exists() and not folder.is_dir():
        raise ValidationFailed(f"not a folder: {folder}", field="DIR")
    folder.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary()
    snapshots: dict[FileKind, list[str]] = {}

    async def ids_of(kind: FileKind) -> list[str]:
        if kind not in snapshots:
            row = await graph.read_one(_ID_SNAPSHOT[kind], tenant=tenant)
            snapshots[kind] = sorted(row["ids"]) if row is not None else []
        return snapshots[kind]

    for kind in IMPORT_ORDER:
        source = FileKind.MEMBERS if kind in _BY_MEMBER else kind
        ids = await ids_of(source)
        queries = _BY_MEMBER.get(kind, ())
        writer = _Writer(folder / f"{kind.value}.{fmt}", fmt, SCHEMAS[kind])
        count = 0
        try:
            if progress is not None:
                progress(kind.value, 0, len(ids))
            after = ""  # the keyset: the last source id done; the next page starts after it
            position = 0
            while position < len(ids):
                page = ids[position:position + page_size]
                assert not after or page[0] > after
                raw: list[Any] = []
                if queries:
                    for query in queries:
                        row = await graph.read_one(query, ids=page, tenant=tenant)
                        raw.extend(row["rows"] if row is not None else [])
                else:
                    row = await graph.read_one(_NODE_EXPORT[kind], ids=page, tenant=tenant)
                    raw.extend(row["rows"] if row is not None else [])
                rows = sorted(_export_rows(kind, raw), key=_sort_key(kind))
                for r in rows:
                    writer.write(r)
                count += len(rows)
                after = page[-1]
                position += len(page)
                if progress is not None:
                    progress(kind.value, position, len(ids))
        finally:
            writer.close()
        summary.rows[kind.value] = count
    return summary


_NODE_EXPORT: dict[FileKind, LiteralString] = {
    FileKind.MEMBERS: EXPORT_MEMBERS, FileKind.COMMUNITIES: EXPORT_COMMUNITIES, FileKind.PRODUCTS: EXPORT_PRODUCTS,
    FileKind.CONTENT: EXPORT_CONTENT, FileKind.PURCHASES: EXPORT_PURCHASES,
}
