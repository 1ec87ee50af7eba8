"""Products and purchases (商品 / 订单): types, queries and mutations."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

import strawberry

from domain import models as dm
from domain.auth import WRITER_ROLES
from domain.commands import CreateProduct, RecordPurchase, parse
from domain.errors import PermissionDenied
from domain.ids import Kind, require_id
from resolvers.common import (
    ConflictError,
    Money,
    Node,
    NotFoundError,
    PermissionError,
    ReferralError,
    ValidationError,
    XInfo,
    guarded,
)
from resolvers.enums import Channel, PurchaseStatus
from resolvers.members import Member

__all__ = ["CommerceMutation", "CommerceQuery", "Product", "Purchase"]


@strawberry.type(description="A product (商品).")
class Product(Node):
    id: strawberry.ID
    sku: str
    name: str
    category: str
    price: Money

    @classmethod
    def from_domain(cls, p: dm.Product) -> Product:
        return cls(id=strawberry.ID(p.id), sku=p.sku, name=p.name, category=p.category, price=Money.from_domain(p.price))


@strawberry.type
class PurchaseLine:
    quantity: int
    unit_price: Money
    _product_id: strawberry.Private[str]

    @strawberry.field
    async def product(self, info: XInfo) -> Product | None:
        found = await info.context.loaders.product.load(self._product_id)
        return None if found is None else Product.from_domain(found)


@strawberry.type(description="A purchase (订单). GMV counts paid purchases only.")
class Purchase(Node):
    id: strawberry.ID
    total: Money
    at: datetime
    channel: Channel  # type: ignore[valid-type]
    status: PurchaseStatus  # type: ignore[valid-type]
    idempotency_key: str
    lines: list[PurchaseLine]
    _p: strawberry.Private[dm.Purchase]

    @classmethod
    def from_domain(cls, p: dm.Purchase) -> Purchase:
        return cls(
            id=strawberry.ID(p.id), total=Money.from_domain(p.total), at=p.at, channel=p.channel, status=p.status,
            idempotency_key=p.idempotency_key,
            lines=[PurchaseLine(quantity=ln.quantity, unit_price=Money.from_domain(ln.unit_price), _product_id=ln.product_id) for ln in p.lines],
            _p=p,
        )

    @strawberry.field
    async def member(self, info: XInfo) -> Member | None:
        found = await info.context.loaders.member.load(self._p.member_id)
        return None if found is None else Member.from_domain(found)

    @strawberry.field(description="The member credited with the sale (e.g. the KOL whose link was used), if any.")
    async def attributed_to(self, info: XInfo) -> Member | None:
        if self._p.attributed_to is None:
            return None
        found = await info.context.loaders.member.load(self._p.attributed_to)
        return None if found is None else Member.from_domain(found)

    @strawberry.field(description="Commission (分佣) recipients: the buyer's inviter (level 1), its inviter "
                      "(level 2), ... at most `maxCommissionLevels` levels (default 2, never more than 3).")
    async def commissions(self, info: XInfo) -> list[Commission]:
        found = await info.context.loaders.member.load_many(list(self._p.commission_to))
        return [Commission(level=i + 1, member=Member.from_domain(m)) for i, m in enumerate(found) if m is not None]


@strawberry.type(description="One commission credit of a purchase.")
class Commission:
    level: int = strawberry.field(description="1 = the buyer's inviter, 2 = that member's inviter, ...")
    member: Member


async def load_product(info: XInfo, product_id: str, *, field: str = "id") -> Product | None:
    require_id(product_id, Kind.PRODUCT, field=field)
    found = await info.context.loaders.product.load(product_id)
    return None if found is None else Product.from_domain(found)


async def load_purchase(info: XInfo, purchase_id: str, *, field: str = "id") -> Purchase | None:
    require_id(purchase_id, Kind.PURCHASE, field=field)
    principal = info.context.principal
    found = await info.context.loaders.purchase.load(purchase_id)
    if found is None or not (principal.is_staff or principal.member_id == found.member_id):
        return None
    return Purchase.from_domain(found)


@strawberry.type
class CommerceQuery:
    @strawberry.field(description="A product by id, or null.")
    async def product(self, info: XInfo, id: strawberry.ID) -> Product | None:
        return await load_product(info, id)

    @strawberry.field(description="A purchase by id (the buyer or staff), or null.")
    async def purchase(self, info: XInfo, id: strawberry.ID) -> Purchase | None:
        return await load_purchase(info, id)


@strawberry.input
class MoneyInput:
    amount: int = strawberry.field(description="Integer minor units (分); never negative.")
    currency: str = "CNY"


@strawberry.input
class CreateProductInput:
    sku: str
    name: str
    category: str
    price: MoneyInput


@strawberry.input
class PurchaseLineInput:
    product_id: strawberry.ID
    quantity: int
    unit_price: MoneyInput | None = strawberry.field(default=None, description="Defaults to the product's price.")


@strawberry.input
class RecordPurchaseInput:
    member_id: strawberry.ID
    lines: list[PurchaseLineInput]
    idempotency_key: str = strawberry.field(description="Required. The same key again returns the original purchase.")
    channel: Channel = dm.Channel.APP  # type: ignore[valid-type]
    at: datetime | None = strawberry.field(default=None, description="When it was paid; defaults to now.")
    attributed_to: strawberry.ID | None = strawberry.field(
        default=None, description="A member to credit with the sale (e.g. the KOL whose share link was used).")
    campaign_id: strawberry.ID | None = strawberry.field(
        default=None, description="A campaign to credit with the sale (IN_CAMPAIGN): its results count the GMV.")


@strawberry.type
class ProductPayload:
    product: Product


@strawberry.type
class PurchasePayload:
    purchase: Purchase
    created: bool = strawberry.field(description="False when this idempotency key was seen before (nothing written).")


_Errors = ValidationError | NotFoundError | PermissionError | ConflictError | ReferralError
ProductResult = Annotated[ProductPayload | _Errors, strawberry.union("ProductResult")]
PurchaseResult = Annotated[PurchasePayload | _Errors, strawberry.union("PurchaseResult")]


def _plain(value: object) -> object:
    """Strawberry input objects (dataclass instances) as nested dicts; enums and scalars as they are."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


@strawberry.type
class CommerceMutation:
    @strawberry.mutation(description="Create a product (operator, integrator, admin).")
    async def create_product(self, info: XInfo, input: CreateProductInput) -> ProductResult:
        async def work() -> ProductPayload:
            tenant = info.context.principal.require_role(WRITER_ROLES, "creating products")
            cmd = parse(CreateProduct, _plain(input))  # type: ignore[arg-type]
            return ProductPayload(product=Product.from_domain(await info.context.repos.commerce.create_product(tenant, cmd)))

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Record a paid purchase, exactly once per idempotency key. "
                         "Members may record their own; staff any member's.")
    async def record_purchase(self, info: XInfo, input: RecordPurchaseInput) -> PurchaseResult:
        async def work() -> PurchasePayload:
            principal = info.context.principal
            tenant = principal.require_tenant()
            cmd = parse(RecordPurchase, _plain(input))  # type: ignore[arg-type]
            if not principal.has_any(WRITER_ROLES) and principal.member_id != cmd.member_id:
                raise PermissionDenied("members can only record their own purchases", field="input.memberId")
            purchase, created = await info.context.repos.commerce.record_purchase(tenant, cmd)
            return PurchasePayload(purchase=Purchase.from_domain(purchase), created=created)

        return await guarded(work)  # type: ignore[return-value]
