"""The migration runner against a database of its own on the real server."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import ErrorCode, MigrationError
from graph.client import GraphClient
from graph.migrations import discover, migrate, split_statements
from tests.conftest import PASSWORD

V1 = "// first\nCREATE CONSTRAINT t_thing_id IF NOT EXISTS FOR (n:Thing) REQUIRE n.id IS UNIQUE;\n"
V2 = "CREATE INDEX t_thing_name IF NOT EXISTS\n  FOR (n:Thing) ON (n.name);\n"


@pytest.fixture
async def scratch(stack):
    name = "mig" + uuid.uuid4().hex[:8]
    stack.graph.create_database(name)
    client = GraphClient.connect(stack.graph.uri, user="root", password=PASSWORD, database=name)
    yield client
    await client.close()


async def recorded(client):
    rows = await client.read("MATCH (m:Migration) RETURN m.version AS v, m.checksum AS c, m.appliedAt AS at ORDER BY v")
    return [(r["v"], r["c"], r["at"]) for r in rows]


def test_split_statements_handles_comments_and_multiline():
    assert split_statements(V1 + V2) == [
        "CREATE CONSTRAINT t_thing_id IF NOT EXISTS FOR (n:Thing) REQUIRE n.id IS UNIQUE",
        "CREATE INDEX t_thing_name IF NOT EXISTS FOR (n:Thing) ON (n.name)",
    ]


async def test_applies_in_order_records_and_is_a_no_op_twice(scratch, tmp_path):
    (tmp_path / "V002__index.cypher").write_text(V2)
    (tmp_path / "V001__constraint.cypher").write_text(V1)
    first = await migrate(scratch, tmp_path)
    assert first.applied == (1, 2) and first.already == ()
    rows = await recorded(scratch)
    files = discover(tmp_path)
    assert [(v, c) for v, c, _ in rows] == [(1, files[0].checksum), (2, files[1].checksum)]
    assert all(at is not None for _, _, at in rows)
    indexes = {r["name"] for r in await scratch.read("SHOW INDEXES YIELD name RETURN name")}
    assert "t_thing_name" in indexes

    second = await migrate(scratch, tmp_path)
    assert second.applied == () and second.already == (1, 2)
    assert len(await recorded(scratch)) == 2


async def test_refuses_to_run_when_an_applied_file_was_edited(scratch, tmp_path):
    (tmp_path / "V001__constraint.cypher").write_text(V1)
    await migrate(scratch, tmp_path)
    (tmp_path / "V001__constraint.cypher").write_text(V1 + "// edited\n")
    (tmp_path / "V002__index.cypher").write_text(V2)
    with pytest.raises(MigrationError) as caught:
        await migrate(scratch, tmp_path)
    assert caught.value.code is ErrorCode.MIGRATION_CHECKSUM_MISMATCH
    assert "V001__constraint.cypher was edited" in caught.value.message
    assert [v for v, _, _ in await recorded(scratch)] == [1]


def test_rejects_badly_named_files(tmp_path):
    (tmp_path / "001-oops.cypher").write_text(V1)
    with pytest.raises(MigrationError, match="must look like V001__description.cypher"):
        discover(tmp_path)


def test_project_migrations_cover_every_node_id():
    text = "\n".join(f.text for f in discover())
    for label in ("Tenant", "Member", "Community", "Content", "Comment", "Tag", "Product", "Purchase"):
        assert f"FOR (n:{label}) REQUIRE n.id IS UNIQUE" in text, label
