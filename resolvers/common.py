"""Shared GraphQL building blocks: scalars, Relay connections, the Node interface, errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, NewType, TypeVar

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from domain.errors import ErrorCode as DomainErrorCode
from domain.errors import QuanziError
from domain.models import Money as DomainMoney
from domain.models import Page
from resolvers.context import Context
from resolvers.lookahead import selects_beyond

__all__ = [
    "MinorUnits",
    "MINOR_UNITS_SCALAR",
    "Money",
    "ErrorCode",
    "PageInfo",
    "Node",
    "UserError",
    "ValidationError",
    "NotFoundError",
    "PermissionError",
    "ConflictError",
    "ReferralError",
    "CampaignRuleError",
    "error_for",
    "connection_args",
    "Connection",
    "ConnectionBase",
    "Edge",
    "connection",
    "load_page",
    "wants_items",
    "guarded",
    "XInfo",
]

XInfo = Info[Context, None]

MinorUnits = NewType("MinorUnits", int)
#: Registered in the schema's ``scalar_map`` (see ``resolvers.schema``).
MINOR_UNITS_SCALAR = strawberry.scalar(
    name="MinorUnits",
    description="An amount in integer minor units of its currency (分 for CNY); up to 2^53, beyond GraphQL's 32-bit Int.",
    serialize=int,
    parse_value=int,
)

ErrorCode = strawberry.enum(DomainErrorCode, description="Stable error codes; clients switch on these.")


@strawberry.type(description="Money: integer minor units plus an ISO 4217 currency code.")
class Money:
    amount: MinorUnits
    currency: str

    @classmethod
    def from_domain(cls, m: DomainMoney) -> Money:
        return cls(amount=MinorUnits(m.amount), currency=m.currency)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.interface(description="An object with a stable global id (its prefix names its type).")
class Node:
    id: strawberry.ID


N = TypeVar("N")
D = TypeVar("D")
K = TypeVar("K")


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class ConnectionBase:
    """Fields every connection shares; subclasses add typed edges and nodes."""

    _page: strawberry.Private[Page[object]]
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Keyset pagination info: pass endCursor as `after` for the next page.")
    def page_info(self) -> PageInfo:
        cursors = self._page.cursors
        return PageInfo(
            has_next_page=self._page.has_next,
            has_previous_page=False,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )

    @strawberry.field(description="How many items the whole list holds (not just this page).")
    async def total_count(self) -> int:
        return await self._count()


@strawberry.type
class Connection(ConnectionBase, Generic[N]):
    """A Relay connection with keyset cursors (`first` at most 100)."""

    edges: list[Edge[N]]
    nodes: list[N]


def connection(page: Page[D], convert: Callable[[D], N], count: Callable[[], Awaitable[int]]) -> Connection[N]:
    nodes = [convert(item) for item in page.items]
    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(page.cursors, nodes)],
        nodes=nodes,
        _page=page,  # type: ignore[arg-type]
        _count=count,
    )


EMPTY_PAGE: Page[object] = Page(items=(), cursors=(), has_next=False)
_COUNT_ONLY = frozenset({"totalCount", "__typename"})


def wants_items(info: XInfo) -> bool:
    """False when the query asks a connection only for ``totalCount`` (skip loading the page)."""
    return selects_beyond(info, _COUNT_ONLY)


async def load_page(info: XInfo, loader: DataLoader[K, Page[D]], key: K) -> Page[D]:
    """The page for *key*, or an empty one when the query wants only ``totalCount``."""
    if not wants_items(info):
        return EMPTY_PAGE  # type: ignore[return-value]
    return await loader.load(key)


def connection_args(first: int | None, *, field: str = "first") -> int:
    from domain.pagination import page_size

    return page_size(first, field=field)


# --- typed errors for mutation result unions -------------------------------------------------


@strawberry.interface(description="An expected failure: nothing was written.")
class UserError:
    code: ErrorCode  # type: ignore[valid-type]
    message: str
    field: str | None = strawberry.field(description="The input field at fault, as the client spelled it.")


@strawberry.type(description="The input is invalid (VALIDATION_FAILED).")
class ValidationError(UserError):
    pass


@strawberry.type(description="An id does not name an object in your tenant (NOT_FOUND).")
class NotFoundError(UserError):
    pass


@strawberry.type(description="Not authenticated, or not allowed (NOT_AUTHENTICATED, FORBIDDEN).")
class PermissionError(UserError):
    pass


@strawberry.type(description="A unique key is taken or an idempotency key was reused (ALREADY_EXISTS, IDEMPOTENCY_CONFLICT).")
class ConflictError(UserError):
    pass


@strawberry.type(description="A referral rule was broken (SELF_REFERRAL, REFERRAL_CYCLE, ALREADY_REFERRED, INVALID_INVITE_CODE).")
class ReferralError(UserError):
    pass


@strawberry.type(description="A campaign rule refused the action (GROUP_BUY_FULL, GROUP_BUY_CLOSED, ALREADY_JOINED, "
                 "COUPON_REDEEMED, COUPON_EXPIRED, INSUFFICIENT_POINTS).")
class CampaignRuleError(UserError):
    pass


_ERROR_TYPES: dict[DomainErrorCode, type[UserError]] = {
    DomainErrorCode.VALIDATION_FAILED: ValidationError,
    DomainErrorCode.NOT_FOUND: NotFoundError,
    DomainErrorCode.NOT_AUTHENTICATED: PermissionError,
    DomainErrorCode.FORBIDDEN: PermissionError,
    DomainErrorCode.ALREADY_EXISTS: ConflictError,
    DomainErrorCode.IDEMPOTENCY_CONFLICT: ConflictError,
    DomainErrorCode.SELF_REFERRAL: ReferralError,
    DomainErrorCode.REFERRAL_CYCLE: ReferralError,
    DomainErrorCode.ALREADY_REFERRED: ReferralError,
    DomainErrorCode.INVALID_INVITE_CODE: ReferralError,
    DomainErrorCode.GROUP_BUY_FULL: CampaignRuleError,
    DomainErrorCode.GROUP_BUY_CLOSED: CampaignRuleError,
    DomainErrorCode.ALREADY_JOINED: CampaignRuleError,
    DomainErrorCode.COUPON_REDEEMED: CampaignRuleError,
    DomainErrorCode.COUPON_EXPIRED: CampaignRuleError,
    DomainErrorCode.INSUFFICIENT_POINTS: CampaignRuleError,
}


def error_for(exc: QuanziError) -> UserError | None:
    """The typed GraphQL error for an expected failure, or None when it is not a user error."""
    cls = _ERROR_TYPES.get(exc.code)
    if cls is None:
        return None
    return cls(code=exc.code, message=exc.message, field=exc.field)  # type: ignore[call-arg]


R = TypeVar("R")


async def guarded(work: Callable[[], Awaitable[R]]) -> R | UserError:
    """Run a mutation's work; expected failures become typed errors, the rest propagate."""
    try:
        return await work()
    except QuanziError as exc:
        error = error_for(exc)
        if error is None:
            raise
        return error
