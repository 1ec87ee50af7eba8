"""`quanzi import` / `quanzi export` as an operator runs them, against the embedded stack."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from domain.imports import (
    IMPORT_ORDER,
    SCHEMAS,
    Accepted,
    FileKind,
    ImportValidator,
    read_csv,
    read_jsonl,
)
from graph.client import GraphClient, Tx
from graph.embedded import EmbeddedStack
from tests.conftest import PASSWORD, ROOT

T0 = "2025-01-0{d}T0{h}:00:00+08:00"


def run(stack: EmbeddedStack, *args: str) -> subprocess.CompletedProcess[str]:
    assert stack.graph is not None and stack.redis is not None
    env = dict(os.environ, QUANZI_NEO4J_URI=stack.graph.uri, QUANZI_NEO4J_USER="root", QUANZI_NEO4J_PASSWORD=PASSWORD,
               QUANZI_NEO4J_DATABASE="quanzi", QUANZI_REDIS_URL=stack.redis.url)
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


async def count(graph: GraphClient, query: Any, tenant: str) -> int:
    row = await graph.read_one(query, tenant=tenant)
    assert row is not None
    return int(row["n"])


MEMBERS_Q = "MATCH (m:Member) WHERE m.tenantId = $tenant RETURN count(m) AS n"
FOLLOWS_Q = "MATCH (a:Member)-[r:FOLLOWS]->(:Member) WHERE a.tenantId = $tenant RETURN count(r) AS n"
PAIRS_Q = ("MATCH (a:Member)-[:FOLLOWS]->(b:Member) WHERE a.tenantId = $tenant "
           "RETURN count(DISTINCT [a.id, b.id]) AS n")


def report_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


# ---------------------------------------------------------------------------------------
# Operator mistakes: one line, exit 2, nothing started
# ---------------------------------------------------------------------------------------


def test_operator_mistakes_exit_2_with_one_line(stack: EmbeddedStack, tmp_path: Path) -> None:
    cases: list[tuple[Path, str]] = []
    missing = tmp_path / "nope"
    cases.append((missing, f"quanzi: error: no such folder: {missing}"))
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "users.csv").write_text("id\n", encoding="utf-8")
    cases.append((unknown, "quanzi: error: unknown file 'users.csv' in"))
    both = tmp_path / "both"
    both.mkdir()
    (both / "members.csv").write_text("id\n", encoding="utf-8")
    (both / "members.jsonl").write_text("", encoding="utf-8")
    cases.append((both, "quanzi: error: both members.csv and members.jsonl in"))
    header = tmp_path / "header"
    header.mkdir()
    (header / "follows.csv").write_text("follower,followee,when\n", encoding="utf-8")
    cases.append((header, "quanzi: error: follows.csv: unknown column 'when' (columns: follower, followee, at)"))
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    (lacking / "follows.csv").write_text("follower,followee\n", encoding="utf-8")
    cases.append((lacking, "quanzi: error: follows.csv: the header lacks the required column 'at'"))
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "members.csv").write_bytes(b"id,displayName\xff\n")
    cases.append((binary, "quanzi: error: members.csv is not UTF-8 text"))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((empty, "quanzi: error: no import files in"))
    for folder, message in cases:
        done = run(stack, "import", str(folder), "--tenant", "ten_mistakes")
        assert done.returncode == 2, (folder, done.stderr)
        assert done.stderr.startswith(message), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert done.stdout == ""


# ---------------------------------------------------------------------------------------
# Rejected rows report
# ---------------------------------------------------------------------------------------


async def test_rejected_rows_are_reported_and_good_rows_imported(stack: EmbeddedStack, graph: GraphClient,
                                                                 tenant: str, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    p = tenant[4:12]
    write_csv(folder / "members.csv", ["id", "displayName", "joinedAt", "channel"], [
        [f"mem_{p}a", "阿明", "2025-01-02T08:00:00+08:00", "wechat"],
        [f"mem_{p}b", "Bob", "2025-01-02", "wechat"],
        [f"mem_{p}c", "Carol", "2025-01-03T00:00:00Z", "tiktok"],
        [f"mem_{p}d", "Dan", "2025-01-03T00:00:00Z", ""],
        [f"mem_{p}a", "again", "2025-01-03T00:00:00Z", ""],
    ])
    write_jsonl(folder / "follows.jsonl", [
        {"follower": f"mem_{p}a", "followee": f"mem_{p}d", "at": "2025-02-01T00:00:00Z"},
        {"follower": f"mem_{p}a", "followee": f"mem_{p}a", "at": "2025-02-01T00:00:00Z"},
        {"follower": f"mem_{p}d", "followee": f"mem_{p}b", "at": "2025-02-01T00:00:00Z"},
        {"follower": f"mem_{p}a", "followee": f"mem_{p}d", "at": "2025-02-03T00:00:00Z"},
    ])
    (folder / "follows.jsonl").write_text((folder / "follows.jsonl").read_text(encoding="utf-8") + "{broken\n",
                                          encoding="utf-8")
    write_csv(folder / "referrals.csv", ["inviter", "invitee", "at"], [
        [f"mem_{p}a", f"mem_{p}d", "2025-01-03T00:00:00Z"],
        [f"mem_{p}d", f"mem_{p}d", "2025-01-03T00:00:00Z"],
        [f"mem_{p}d", f"mem_{p}a", "2025-01-03T00:00:00Z"],
    ])

    done = run(stack, "import", str(folder), "--tenant", tenant, "--no-derive")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == \
        f"imported 4 rows into tenant '{tenant}'; rejected 9 (see {folder / 'rejected.csv'})"
    assert "members" in done.stderr and "rows/s" in done.stderr  # the progress bar
    assert report_rows(folder / "rejected.csv") == [
        ["file", "line", "reason"],
        ["members.csv", "3", "joinedAt needs a time zone (…Z or …+08:00), got '2025-01-02'"],
        ["members.csv", "4", ("channel must be one of wechat, wecom, mini_program, app, h5, livestream, offline, "
                              "referral, got 'tiktok'")],
        ["members.csv", "6", f"duplicate: id mem_{p}a appears earlier in the file set"],
        ["follows.jsonl", "2", "a member cannot follow themselves (follower = followee)"],
        ["follows.jsonl", "3", f"member mem_{p}b does not exist (not in the file set nor in the graph)"],
        ["follows.jsonl", "4", "duplicate: this follower and followee appears earlier in the file set"],
        ["follows.jsonl", "5", "not valid JSON (Expecting property name enclosed in double quotes at column 2)"],
        ["referrals.csv", "3", "self-referral: inviter and invitee are the same member"],
        ["referrals.csv", "4", f"referral cycle: mem_{p}a is already upline of mem_{p}d"],
    ]
    assert await count(graph, MEMBERS_Q, tenant) == 2
    assert await count(graph, FOLLOWS_Q, tenant) == 1
    # the referral row 2 went in
    row = await graph.read_one("MATCH (a:Member)-[r:REFERRED]->(b:Member) WHERE a.tenantId = $tenant "
                               "RETURN collect([a.id, b.id]) AS pairs", tenant=tenant)
    assert row is not None and row["pairs"] == [[f"mem_{p}a", f"mem_{p}d"]]

    # a second referral file naming an invitee who already has an inviter in the graph
    more = tmp_path / "more"
    more.mkdir()
    write_csv(more / "referrals.csv", ["inviter", "invitee", "at"], [[f"mem_{p}a", f"mem_{p}d", "2025-01-05T00:00:00Z"]])
    again = run(stack, "import", str(more), "--tenant", tenant, "--no-derive")
    assert again.returncode == 0, again.stderr
    assert report_rows(more / "rejected.csv")[1:] == [
        ["referrals.csv", "2", f"second inviter: mem_{p}d was already invited by mem_{p}a"]]


# ---------------------------------------------------------------------------------------
# Resume after an interruption
# ---------------------------------------------------------------------------------------


async def test_an_interrupted_import_resumes_and_imports_every_row_once(stack: EmbeddedStack, graph: GraphClient,
                                                                       tenant: str, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    p = tenant[4:12]
    ids = [f"mem_{p}{i:03d}" for i in range(12)]
    write_csv(folder / "members.csv", ["id", "displayName", "joinedAt"],
              [[m, f"会员{i}", "2025-01-01T00:00:00Z"] for i, m in enumerate(ids)])
    follows = [[ids[i], ids[(i * 7 + 3) % 12], "2025-02-01T00:00:00Z"] for i in range(12)]
    follows += [[ids[i], ids[(i * 5 + 1) % 12], "2025-02-02T00:00:00Z"] for i in range(12)]
    follows.append([ids[0], ids[0], "2025-02-02T00:00:00Z"])  # a self-follow, rejected
    write_csv(folder / "follows.csv", ["follower", "followee", "at"], follows)
    pairs = {(a, b) for a, b, _ in follows if a != b}
    report = tmp_path / "report.csv"

    # members: 3 batches of 5 (5, 5, 2); follows: batch 4 is the first 5 follows; stop there
    first = run(stack, "import", str(folder), "--tenant", tenant, "--batch-size", "5", "--report", str(report),
                "--no-derive", "--stop-after-batches", "4")
    assert first.returncode == 130 and first.stderr.strip().endswith("quanzi: interrupted"), first.stderr
    assert await count(graph, MEMBERS_Q, tenant) == 12
    assert await count(graph, FOLLOWS_Q, tenant) == 5
    # stopped again two batches later (mid-file, after the self-follow's batch is not reached yet)
    second = run(stack, "import", str(folder), "--tenant", tenant, "--batch-size", "5", "--report", str(report),
                 "--no-derive", "--stop-after-batches", "2")
    assert second.returncode == 130, second.stderr
    assert await count(graph, FOLLOWS_Q, tenant) == 15

    third = run(stack, "import", str(folder), "--tenant", tenant, "--batch-size", "5", "--report", str(report),
                "--no-derive")

    assert third.returncode == 0, third.stderr
    self_follow_line = str(len(follows) + 1)
    assert third.stdout.splitlines()[0] == \
        f"imported {12 + len(pairs)} rows into tenant '{tenant}' (resumed); rejected {len(follows) - len(pairs)} " \
        f"(see {report})"
    assert await count(graph, MEMBERS_Q, tenant) == 12
    assert await count(graph, FOLLOWS_Q, tenant) == len(pairs)
    assert await count(graph, PAIRS_Q, tenant) == len(pairs)  # no follow was written twice
    dup_lines = [str(k + 2) for k, (a, b, _) in enumerate(follows)
                 if a != b and any((a, b) == (x, y) for x, y, _ in follows[:k])]
    expected = [["follows.csv", line, "duplicate: this follower and followee appears earlier in the file set"]
                for line in dup_lines]
    expected.append(["follows.csv", self_follow_line, "a member cannot follow themselves (follower = followee)"])
    assert report_rows(report)[1:] == sorted(expected, key=lambda r: int(r[1]))  # each reject reported once

    fourth = run(stack, "import", str(folder), "--tenant", tenant, "--report", str(report), "--no-derive")
    assert fourth.returncode == 0
    assert fourth.stdout.startswith(f"these files were already imported into tenant '{tenant}'")
    assert await count(graph, FOLLOWS_Q, tenant) == len(pairs)


# ---------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------


def canonical(folder: Path) -> dict[str, list[str]]:
    """Every file's rows as the importer understands them (defaults applied, times in UTC), sorted."""
    v = ImportValidator()
    out: dict[str, list[str]] = {}
    for kind in IMPORT_ORDER:
        for fmt in ("csv", "jsonl"):
            path = folder / f"{kind.value}.{fmt}"
            if not path.exists():
                continue
            with path.open(encoding="utf-8", newline="") as f:
                if fmt == "csv":
                    _, records = read_csv(f, columns=[c.name for c in SCHEMAS[kind]])
                else:
                    records = read_jsonl(f)
                rows = []
                for record in records:
                    result = v.check(kind, record)
                    assert isinstance(result, Accepted), (path.name, result)
                    rows.append(json.dumps(result.row, default=str, ensure_ascii=False, sort_keys=True))
            out[kind.value] = sorted(rows)
    return out


def hand_built(folder: Path, p: str) -> None:
    folder.mkdir()
    m = [f"mem_{p}{x}" for x in "abcd"]
    write_csv(folder / "members.csv", [c.name for c in SCHEMAS[FileKind.MEMBERS]], [
        [m[0], '王小明, "阿明"', "2025-01-02T08:00:00+08:00", "wechat", 3, 120, "上海", "13800000001", "wxid_ming", "",
         "true", "false"],
        [m[1], "Line one\nline two", "2025-01-03T00:00:00Z", "", "", "", "", "", "", "", "", ""],
        [m[2], "Carol", "2025-01-04T00:00:00.123456Z", "referral", 1, 10, "北京", "", "", "", "false", "true"],
        [m[3], "丁", "2025-01-05T12:00:00-05:00", "mini_program", 0, 0, "", "", "", "", "", ""],
    ])
    write_jsonl(folder / "communities.jsonl", [
        {"id": f"com_{p}run", "name": "跑步打卡群", "kind": "interest", "channel": "wechat_group",
         "createdAt": "2025-01-01T00:00:00Z", "description": "每天 5 公里, \"不见不散\"\n周末约跑"},
        {"id": f"com_{p}sh", "name": "上海会员群", "kind": "region", "channel": "wecom",
         "createdAt": "2025-01-01T00:00:00Z", "description": None},
    ])
    write_csv(folder / "memberships.csv", ["member", "community", "role", "joinedAt"], [
        [m[0], f"com_{p}run", "owner", "2025-01-02T09:00:00Z"], [m[1], f"com_{p}run", "", "2025-01-03T09:00:00Z"],
        [m[2], f"com_{p}sh", "kol", "2025-01-04T09:00:00Z"],
    ])
    write_csv(folder / "follows.csv", ["follower", "followee", "at"], [
        [m[1], m[0], "2025-02-01T00:00:00Z"], [m[2], m[0], "2025-02-01T00:00:00Z"], [m[0], m[2], "2025-02-02T00:00:00Z"],
    ])
    write_jsonl(folder / "content.jsonl", [
        {"id": f"cnt_{p}1", "author": m[0], "community": f"com_{p}run", "kind": "post", "title": "今天跑了10公里, 打卡！",
         "body": "第一段\n第二段, \"引号\"", "createdAt": "2025-02-03T07:00:00+08:00"},
        {"id": f"cnt_{p}2", "author": m[2], "community": f"com_{p}sh", "kind": "question", "title": None, "body": None,
         "createdAt": "2025-02-04T07:00:00Z"},
    ])
    write_csv(folder / "interactions.csv", ["kind", "member", "content", "at", "comment", "body", "count", "lastAt"], [
        ["like", m[1], f"cnt_{p}1", "2025-02-03T08:00:00Z", "", "", "", ""],
        ["favorite", m[2], f"cnt_{p}1", "2025-02-03T08:30:00Z", "", "", "", ""],
        ["share", m[1], f"cnt_{p}1", "2025-02-03T09:00:00Z", "", "", "3", "2025-02-05T09:00:00Z"],
        ["comment", m[2], f"cnt_{p}1", "2025-02-03T10:00:00Z", f"cmt_{p}1", "厉害, \"加油\"\n👍", "", ""],
        ["comment", m[2], f"cnt_{p}1", "2025-02-03T11:00:00Z", f"cmt_{p}2", "again", "", ""],
    ])
    write_csv(folder / "products.csv", [c.name for c in SCHEMAS[FileKind.PRODUCTS]], [
        [f"prd_{p}shoe", f"SKU-{p}-1", "轻量跑鞋, 男款", "跑步", 59900, "", "2024-12-01T00:00:00Z"],
        [f"prd_{p}sock", f"SKU-{p}-2", "压缩袜", "跑步", 4900, "CNY", "2024-12-01T00:00:00Z"],
    ])
    write_jsonl(folder / "purchases.jsonl", [
        {"id": f"pur_{p}1", "member": m[1], "at": "2025-03-01T10:00:00Z", "amount": 69700, "status": "paid",
         "lines": [{"product": f"prd_{p}shoe", "qty": 1, "unitPrice": 59900},
                   {"product": f"prd_{p}sock", "qty": 2, "unitPrice": 4900}], "attributedTo": m[0]},
        {"id": f"pur_{p}2", "member": m[2], "at": "2025-03-02T10:00:00Z", "amount": 4900, "status": "refunded",
         "channel": "livestream", "idempotencyKey": f"order-{p}-2",
         "lines": [{"product": f"prd_{p}sock", "qty": 1, "unitPrice": 4900}]},
    ])
    write_csv(folder / "referrals.csv", ["inviter", "invitee", "at", "code", "channel", "campaignId"], [
        [m[0], m[2], "2025-01-04T00:00:00.123456Z", "ABCDEFGH", "wechat", "cpg_spring"],
        [m[2], m[3], "2025-01-05T17:00:00Z", "", "", ""],
    ])


async def test_import_export_round_trip(stack: EmbeddedStack, graph: GraphClient, tenant: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    hand_built(source, tenant[4:12])

    imported = run(stack, "import", str(source), "--tenant", tenant)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines() == [
        f"imported 25 rows into tenant '{tenant}'; rejected 0 (see {source / 'rejected.csv'})",
        f"computed the referral aggregates, KOL ranking and segmentation of tenant '{tenant}'",
    ]
    first = tmp_path / "first"
    exported = run(stack, "export", str(first), "--tenant", tenant)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == (
        f"exported tenant '{tenant}' to {first}: 4 members, 2 communities, 3 memberships, 3 follows, 2 content, "
        "5 interactions, 2 products, 2 purchases, 2 referrals")
    assert sorted(p.name for p in first.iterdir()) == sorted(f"{k.value}.csv" for k in IMPORT_ORDER)
    assert canonical(first) == canonical(source)
    as_jsonl = tmp_path / "jsonl"
    assert run(stack, "export", str(as_jsonl), "--tenant", tenant, "--format", "jsonl").returncode == 0
    assert canonical(as_jsonl) == canonical(source)

    # ids are unique across tenants: empty the first tenant, then load its export into a second one
    async def purge(tx: Tx) -> None:
        await graph.run(tx, "MATCH (n) WHERE n.tenantId = $tenant DETACH DELETE n", tenant=tenant)

    await graph.write(purge)
    second_tenant = tenant + "b"
    again = run(stack, "import", str(first), "--tenant", second_tenant, "--no-derive")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"imported 25 rows into tenant '{second_tenant}'; rejected 0")
    second = tmp_path / "second"
    assert run(stack, "export", str(second), "--tenant", second_tenant).returncode == 0
    for kind in IMPORT_ORDER:
        name = f"{kind.value}.csv"
        assert (second / name).read_bytes() == (first / name).read_bytes(), name


@pytest.mark.parametrize("fmt", ["csv"])
def test_export_refuses_a_file_as_folder(stack: EmbeddedStack, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "plain.txt"
    target.write_text("x", encoding="utf-8")
    done = run(stack, "export", str(target), "--tenant", "ten_x", "--format", fmt)
    assert done.returncode == 2 and done.stderr.strip() == f"quanzi: error: not a folder: {target}"


# ---------------------------------------------------------------------------------------
# In process (the statement-coverage check counts this process's clients only)
# ---------------------------------------------------------------------------------------


async def test_a_second_file_set_refers_to_what_the_first_imported(graph: GraphClient, tenant: str,
                                                                   tmp_path: Path) -> None:
    from domain.imports import invite_code_for
    from graph.imports import discover, export_files, import_files

    p = tenant[4:12]
    source = tmp_path / "source"
    hand_built(source, p)
    first = await import_files(graph, discover(source), tenant=tenant, report=tmp_path / "first.csv", batch_size=2)
    assert (first.imported, first.rejected, first.resumed) == (25, 0, False)

    more = tmp_path / "more"
    more.mkdir()
    write_csv(more / "members.csv", ["id", "displayName", "joinedAt", "inviteCode"], [
        [f"mem_{p}a", "taken id", "2025-01-01T00:00:00Z", ""],
        [f"mem_{p}e", "taken code", "2025-01-01T00:00:00Z", invite_code_for(f"mem_{p}b")],
        [f"mem_{p}f", "新会员", "2025-01-06T00:00:00Z", ""],
    ])
    write_csv(more / "memberships.csv", ["member", "community", "role", "joinedAt"], [
        [f"mem_{p}d", f"com_{p}sh", "member", "2025-01-06T00:00:00Z"],
        [f"mem_{p}d", f"com_{p}zz", "member", "2025-01-06T00:00:00Z"],
        [f"mem_{p}a", f"com_{p}run", "admin", "2025-01-06T00:00:00Z"],  # already a member
    ])
    write_csv(more / "follows.csv", ["follower", "followee", "at"], [
        [f"mem_{p}b", f"mem_{p}a", "2025-02-09T00:00:00Z"],  # already follows
        [f"mem_{p}f", f"mem_{p}a", "2025-02-09T00:00:00Z"],
    ])
    write_csv(more / "interactions.csv", ["kind", "member", "content", "at"], [
        ["like", f"mem_{p}f", f"cnt_{p}2", "2025-02-06T00:00:00Z"],
        ["like", f"mem_{p}f", f"cnt_{p}zz", "2025-02-06T00:00:00Z"],
        ["like", f"mem_{p}b", f"cnt_{p}1", "2025-02-06T00:00:00Z"],  # liked it already
    ])
    write_csv(more / "products.csv", ["id", "sku", "name", "category", "priceAmount", "createdAt"], [
        [f"prd_{p}new", f"SKU-{p}-1", "taken sku", "跑步", 100, "2025-01-01T00:00:00Z"],
    ])
    write_jsonl(more / "purchases.jsonl", [
        {"id": f"pur_{p}3", "member": f"mem_{p}f", "at": "2025-03-03T00:00:00Z", "amount": 59900,
         "idempotencyKey": f"order-{p}-2", "lines": [{"product": f"prd_{p}shoe", "qty": 1, "unitPrice": 59900}]},
        {"id": f"pur_{p}4", "member": f"mem_{p}f", "at": "2025-03-03T00:00:00Z", "amount": 59900,
         "lines": [{"product": f"prd_{p}shoe", "qty": 1, "unitPrice": 59900}]},
    ])
    report = tmp_path / "more.csv"

    second = await import_files(graph, discover(more), tenant=tenant, report=report)

    assert (second.imported, second.rejected) == (5, 9)
    assert report_rows(report)[1:] == [
        ["members.csv", "2", f"id mem_{p}a already exists in the graph"],
        ["members.csv", "3", f"inviteCode {invite_code_for(f'mem_{p}b')!r} is already used in this tenant"],
        ["memberships.csv", "3", f"community com_{p}zz does not exist (not in the file set nor in the graph)"],
        ["memberships.csv", "4", "already in the graph (imported before, or created in the app)"],
        ["follows.csv", "2", "already in the graph (imported before, or created in the app)"],
        ["interactions.csv", "3", f"content cnt_{p}zz does not exist (not in the file set nor in the graph)"],
        ["interactions.csv", "4", "already in the graph (imported before, or created in the app)"],
        ["products.csv", "2", f"sku 'SKU-{p}-1' is already used in this tenant"],
        ["purchases.jsonl", "1", f"idempotencyKey 'order-{p}-2' is already used in this tenant"],
    ]
    out = tmp_path / "out"
    exported = await export_files(graph, out, tenant=tenant, fmt="jsonl", page_size=2)
    assert exported.rows == {"members": 5, "communities": 2, "memberships": 4, "follows": 4, "content": 2,
                             "interactions": 6, "products": 2, "purchases": 3, "referrals": 2}
    lines = [json.loads(x) for x in (out / "purchases.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines[-1] == {"id": f"pur_{p}4", "member": f"mem_{p}f", "at": "2025-03-03T00:00:00.000000Z",
                         "amount": 59900, "currency": "CNY", "channel": "app", "status": "paid",
                         "lines": [{"product": f"prd_{p}shoe", "qty": 1, "unitPrice": 59900}],
                         "idempotencyKey": f"import:pur_{p}4", "attributedTo": None}


async def test_rows_referring_to_another_tenants_ids_are_reported_not_lost(graph: GraphClient, tenant: str,
                                                                           tmp_path: Path) -> None:
    from graph.imports import discover, import_files

    p = tenant[4:12]
    source = tmp_path / "source"
    hand_built(source, p)
    await import_files(graph, discover(source), tenant=tenant, report=tmp_path / "first.csv")

    # the same member ids again, now for another tenant, with a follow between two of them
    other = tenant + "x"
    again = tmp_path / "again"
    again.mkdir()
    write_csv(again / "members.csv", ["id", "displayName", "joinedAt", "inviteCode"], [
        [f"mem_{p}a", "A again", "2025-01-01T00:00:00Z", ""],
        [f"mem_{p}b", "B again", "2025-01-01T00:00:00Z", ""],
    ])
    write_csv(again / "follows.csv", ["follower", "followee", "at"], [[f"mem_{p}b", f"mem_{p}a", "2025-02-09T00:00:00Z"]])
    report = tmp_path / "again.csv"

    result = await import_files(graph, discover(again), tenant=other, report=report)

    assert (result.imported, result.rejected) == (0, 3)
    assert [row[:2] for row in report_rows(report)[1:]] == [["members.csv", "2"], ["members.csv", "3"],
                                                            ["follows.csv", "2"]]
    assert "does not exist" in report_rows(report)[3][2]
