"""Products and purchases (orders) in the graph, with idempotent purchase recording.

``recordPurchase`` is safe to send twice: the purchase node carries the client's
idempotency key under a (tenantId, idempotencyKey) uniqueness constraint. A repeated
key returns the original purchase and writes nothing; the same key with a different
request is an ``IDEMPOTENCY_CONFLICT``. The key is looked up inside the write
transaction, so an attempt the client retries after a conflict finds the winner's
purchase instead of writing. Concurrent first attempts race on the constraint; the
losers read and return the winner's purchase (50 concurrent calls with one key make
one purchase and 50 answers naming it: tests/test_failures.py).

A request whose connection died while it committed gets ``GRAPH_UNAVAILABLE`` saying the
outcome is unknown; sending it again with the same key returns the purchase if it was
recorded and records it if it was not, so it exists exactly once either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.commands import CreateProduct, RecordPurchase
from domain.errors import AlreadyExists, IdempotencyConflict, NotFound, ValidationFailed
from domain.events import EventType
from domain.ids import Kind, new_id
from domain.models import Page, Product, Purchase, PurchaseStatus
from domain.referrals import commission_levels
from graph.campaigns import credit_campaign
from graph.client import GraphClient, Tx, now
from graph.cypher import cypher
from graph.events import event, record, touch_activity
from graph.mapping import product_from, purchase_from
from graph.paging import pages_by_parent, time_after, time_key

__all__ = ["GraphCommerceRepository", "request_hash"]

PRODUCTS_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (p:Product {id: id}) WITH * WHERE p.tenantId = $tenant
    RETURN collect(p) AS products
    """
)
CREATE_PRODUCT = cypher("CREATE (p:Product) SET p = $props RETURN p")
PURCHASE_BY_KEY = cypher(
    """
    MATCH (m:Member)-[:PLACED]->(p:Purchase {tenantId: $tenant, idempotencyKey: $key})
    RETURN p, m.id AS member, [(p)-[o:OF]->(x:Product) | {productId: x.id, qty: o.qty, unitPrice: o.unitPrice}] AS lines
    """
)
PURCHASE_PRECHECK = cypher(
    """
    OPTIONAL MATCH (m:Member {id: $memberId}) WHERE m.tenantId = $tenant
    WITH m
    UNWIND $productIds AS pid
    OPTIONAL MATCH (x:Product {id: pid}) WHERE x.tenantId = $tenant
    RETURN m IS NOT NULL AS member,
           collect({id: pid, found: x IS NOT NULL, amount: x.priceAmount, currency: x.priceCurrency}) AS products
    """
)
CREATE_PURCHASE = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    CREATE (m)-[:PLACED {at: $props.at}]->(p:Purchase)
    SET p = $props
    WITH p
    UNWIND $lines AS line
    MATCH (x:Product {id: line.productId}) WITH * WHERE x.tenantId = $tenant
    CREATE (p)-[:OF {qty: line.qty, unitPrice: line.unitPrice}]->(x)
    RETURN p, count(*) AS lineCount
    """
)
PURCHASE_CREDIT = cypher(
    """
    MATCH (m:Member {id: $memberId}) WITH * WHERE m.tenantId = $tenant
    WITH m, m.firstPaidAt IS NULL AS firstPaid
    FOREACH (_ IN CASE WHEN m.firstPaidAt IS NULL OR $at < m.firstPaidAt THEN [1] ELSE [] END | SET m.firstPaidAt = $at)
    WITH m, firstPaid
    OPTIONAL MATCH (a:Member {id: $attributedTo}) WHERE a.tenantId = $tenant
    WITH m, firstPaid, a
    OPTIONAL MATCH path = (m)<-[:REFERRED*1..3]-(up:Member)
    WITH firstPaid, a, up, length(path) AS level ORDER BY level
    RETURN firstPaid, a IS NOT NULL AS attributedFound,
           [x IN collect({id: up.id, level: level}) WHERE x.id IS NOT NULL | x.id] AS upline
    """
)
ATTRIBUTE_PURCHASE = cypher(
    """
    MATCH (p:Purchase {id: $purchaseId}) WITH * WHERE p.tenantId = $tenant
    MATCH (a:Member {id: $attributedTo}) WITH * WHERE a.tenantId = $tenant
    CREATE (p)-[:ATTRIBUTED_TO]->(a)
    """
)
PURCHASES_BY_ID = cypher(
    """
    UNWIND $ids AS id
    MATCH (m:Member)-[:PLACED]->(p:Purchase {id: id}) WITH * WHERE p.tenantId = $tenant
    RETURN collect({
      node: p, member: m.id,
      lines: [(p)-[o:OF]->(x:Product) | {productId: x.id, qty: o.qty, unitPrice: o.unitPrice}]
    }) AS rows
    """
)
PURCHASES_PAGES = cypher(
    """
    UNWIND $ids AS pid
    MATCH (p:Member {id: pid}) WITH * WHERE p.tenantId = $tenant
    CALL (p) {
      MATCH (p)-[:PLACED]->(o:Purchase)
      WHERE $afterAt IS NULL OR o.at < $afterAt OR (o.at = $afterAt AND o.id < $afterId)
      WITH p, o ORDER BY o.at DESC, o.id DESC LIMIT $limit
      RETURN collect({
        node: o, member: p.id,
        lines: [(o)-[l:OF]->(x:Product) | {productId: x.id, qty: l.qty, unitPrice: l.unitPrice}]
      }) AS items
    }
    RETURN collect({pid: pid, items: items}) AS rows
    """
)


def request_hash(cmd: RecordPurchase) -> str:
    """A fingerprint of what the purchase request asks for (not its key or time)."""
    body = {
        "member": cmd.member_id,
        "channel": cmd.channel.value,
        "lines": [
            [ln.product_id, ln.quantity, None if ln.unit_price is None else [ln.unit_price.amount, ln.unit_price.currency]]
            for ln in cmd.lines
        ],
        "at": None if cmd.at is None else cmd.at.isoformat(),
    }
    if cmd.attributed_to is not None:
        body["attributedTo"] = cmd.attributed_to
    if cmd.campaign_id is not None:
        body["campaignId"] = cmd.campaign_id
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _purchase(i: Any) -> Purchase:
    return purchase_from(i["node"], member_id=i["member"], lines=list(i["lines"]))


def _original(row: Any, fingerprint: str) -> Purchase:
    """The purchase recorded under a key, if *fingerprint* asks for the same thing."""
    if row["p"].get("requestHash") != fingerprint:
        raise IdempotencyConflict(
            "this idempotency key was already used for a different purchase", field="input.idempotencyKey"
        )
    return purchase_from(row["p"], member_id=row["member"], lines=list(row["lines"]))


@dataclass
class GraphCommerceRepository:
    graph: GraphClient
    #: commission walks this many levels of the buyer's upline (default 2, at most 3)
    max_commission_levels: int = 2

    async def products(self, tenant: str, ids: Sequence[str]) -> list[Product | None]:
        row = await self.graph.read_one(PRODUCTS_BY_ID, tenant=tenant, ids=list(ids))
        found = {p["id"]: product_from(p) for p in (row["products"] if row else [])}
        return [found.get(i) for i in ids]

    async def create_product(self, tenant: str, cmd: CreateProduct) -> Product:
        props = {
            "id": new_id(Kind.PRODUCT), "tenantId": tenant, "sku": cmd.sku, "name": cmd.name,
            "category": cmd.category, "priceAmount": cmd.price.amount, "priceCurrency": cmd.price.currency,
            "createdAt": now(),
        }

        async def work(tx: Tx) -> Product:
            row = await self.graph.run_one(tx, CREATE_PRODUCT, props=props)
            assert row is not None
            return product_from(row["p"])

        try:
            return await self.graph.write(work)
        except AlreadyExists:
            raise AlreadyExists(f"a product with sku {cmd.sku!r} already exists", field="input.sku") from None

    async def _existing(self, tenant: str, cmd: RecordPurchase, fingerprint: str) -> Purchase | None:
        row = await self.graph.read_one(PURCHASE_BY_KEY, tenant=tenant, key=cmd.idempotency_key)
        return None if row is None else _original(row, fingerprint)

    async def record_purchase(self, tenant: str, cmd: RecordPurchase) -> tuple[Purchase, bool]:
        """Record *cmd* once; return the purchase and whether this call created it."""
        fingerprint = request_hash(cmd)
        product_ids = [ln.product_id for ln in cmd.lines]
        if len(set(product_ids)) != len(product_ids):
            raise ValidationFailed("each product may appear in one line only", field="input.lines")

        async def work(tx: Tx) -> tuple[Purchase, bool]:
            prior = await self.graph.run_one(tx, PURCHASE_BY_KEY, tenant=tenant, key=cmd.idempotency_key)
            if prior is not None:
                return _original(prior, fingerprint), False
            check = await self.graph.run_one(tx, PURCHASE_PRECHECK, tenant=tenant, memberId=cmd.member_id, productIds=product_ids)
            assert check is not None
            if not check["member"]:
                raise NotFound(f"no member {cmd.member_id!r}", field="input.memberId")
            lines: list[Mapping[str, Any]] = []
            currencies: set[str] = set()
            for index, (line, product) in enumerate(zip(cmd.lines, check["products"])):
                if not product["found"]:
                    raise NotFound(f"no product {line.product_id!r}", field=f"input.lines[{index}].productId")
                price = line.unit_price
                amount = price.amount if price is not None else int(product["amount"])
                currency = price.currency if price is not None else str(product["currency"])
                currencies.add(currency)
                lines.append({"productId": line.product_id, "qty": line.quantity, "unitPrice": amount})
            if len(currencies) != 1:
                raise ValidationFailed("all lines of a purchase must be in one currency", field="input.lines")
            at = cmd.at or now()
            credit = await self.graph.run_one(
                tx, PURCHASE_CREDIT, tenant=tenant, memberId=cmd.member_id, attributedTo=cmd.attributed_to, at=at
            )
            assert credit is not None
            if cmd.attributed_to is not None and not credit["attributedFound"]:
                raise NotFound(f"no member {cmd.attributed_to!r} to credit", field="input.attributedTo")
            upline = [str(u) for u in credit["upline"]]
            props: dict[str, Any] = {
                "id": new_id(Kind.PURCHASE), "tenantId": tenant, "amount": sum(ln["qty"] * ln["unitPrice"] for ln in lines),
                "currency": currencies.pop(), "at": at, "channel": cmd.channel.value,
                "status": PurchaseStatus.PAID.value, "idempotencyKey": cmd.idempotency_key, "requestHash": fingerprint,
                "commissionTo": commission_levels(upline, self.max_commission_levels),
            }
            if cmd.attributed_to is not None:
                props["attributedTo"] = cmd.attributed_to
            row = await self.graph.run_one(tx, CREATE_PURCHASE, tenant=tenant, memberId=cmd.member_id, props=props, lines=lines)
            assert row is not None and int(row["lineCount"]) == len(lines)
            if cmd.attributed_to is not None:
                await self.graph.run(tx, ATTRIBUTE_PURCHASE, tenant=tenant, purchaseId=props["id"], attributedTo=cmd.attributed_to)
            if cmd.campaign_id is not None:
                await credit_campaign(self.graph, tx, tenant, props["id"], cmd.campaign_id)
            events = await touch_activity(self.graph, tx, tenant, cmd.member_id, at)
            events.append(event(
                tenant, EventType.PURCHASE_RECORDED, at, purchaseId=props["id"], memberId=cmd.member_id,
                amount=props["amount"], currency=props["currency"], firstPaid=bool(credit["firstPaid"]),
                attributedTo=cmd.attributed_to, commissionTo=props["commissionTo"], campaignId=cmd.campaign_id,
            ))
            await record(self.graph, tx, events)
            return purchase_from(row["p"], member_id=cmd.member_id, lines=lines), True

        try:
            return await self.graph.write(work)
        except AlreadyExists:
            # A concurrent request with the same key committed first: return its purchase.
            winner = await self._existing(tenant, cmd, fingerprint)
            if winner is None:
                raise
            return winner, False

    async def purchases(self, tenant: str, ids: Sequence[str]) -> list[Purchase | None]:
        row = await self.graph.read_one(PURCHASES_BY_ID, tenant=tenant, ids=list(ids))
        found = {r["node"]["id"]: _purchase(r) for r in (row["rows"] if row else [])}
        return [found.get(i) for i in ids]

    async def purchases_of(self, tenant: str, ids: Sequence[str], first: int, after: str | None) -> list[Page[Purchase]]:
        row = await self.graph.read_one(PURCHASES_PAGES, tenant=tenant, ids=list(ids), limit=first + 1, **time_after(after).params())
        return pages_by_parent(
            row["rows"] if row else [], ids, first, _purchase, lambda i: time_key(i["node"]["at"], i["node"]["id"])
        )
