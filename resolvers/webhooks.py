"""Webhooks for integrators who cannot hold a socket: signed, retried, logged deliveries.

Each delivery is a POST of ``{"id", "type", "tenantId", "at", "data"}`` with the header
``Quanzi-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`` computed with
the webhook's secret (shown once, when it is registered). Failures are retried with
backoff (1 s, 2 s, 4 s, ... up to 8 attempts); every attempt is in the delivery log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from domain import webhooks as dw
from domain.auth import Role
from domain.errors import NotFound, ValidationFailed
from domain.events import EventType
from resolvers.common import (
    ConflictError,
    NotFoundError,
    PermissionError,
    ReferralError,
    ValidationError,
    XInfo,
    connection_args,
    guarded,
)
from resolvers.subscriptions import LiveEventType

__all__ = ["WebhooksMutation", "WebhooksQuery"]

#: who manages webhooks
WEBHOOK_ROLES = frozenset({Role.INTEGRATOR, Role.ADMIN})


@strawberry.type(description="A registered webhook (its secret is shown only when it is registered).")
class Webhook:
    id: strawberry.ID
    url: str
    event_types: list[LiveEventType]  # type: ignore[valid-type]
    active: bool
    created_at: datetime

    @classmethod
    def from_domain(cls, w: dw.Webhook) -> Webhook:
        return cls(id=strawberry.ID(w.id), url=w.url, event_types=[EventType(t) for t in w.event_types],
                   active=w.active, created_at=w.created_at)


@strawberry.type(description="One delivery attempt, newest first in the log.")
class WebhookDelivery:
    event_id: strawberry.ID
    event_type: str
    attempt: int
    status_code: int | None
    error: str | None
    at: datetime
    delivered: bool
    next_attempt_at: datetime | None = strawberry.field(description="Null once delivered or given up.")


@strawberry.input
class RegisterWebhookInput:
    url: str
    event_types: list[LiveEventType]  # type: ignore[valid-type]


@strawberry.type
class RegisterWebhookPayload:
    webhook: Webhook
    secret: str = strawberry.field(description="Verify signatures with it; it is not shown again.")


@strawberry.type
class DeactivateWebhookPayload:
    changed: bool


_Errors = ValidationError | NotFoundError | PermissionError | ConflictError | ReferralError
RegisterWebhookResult = Annotated[RegisterWebhookPayload | _Errors, strawberry.union("RegisterWebhookResult")]
DeactivateWebhookResult = Annotated[DeactivateWebhookPayload | _Errors, strawberry.union("DeactivateWebhookResult")]


def _webhook_id(value: str) -> str:
    if not value.startswith(dw.WEBHOOK_PREFIX) or len(value) > 64:
        raise ValidationFailed(f"webhookId must be a webhook id like '{dw.WEBHOOK_PREFIX}…'", field="webhookId")
    return value


@strawberry.type
class WebhooksQuery:
    @strawberry.field(description="The tenant's webhooks (integrators and admins).")
    async def webhooks(self, info: XInfo) -> list[Webhook]:
        tenant = info.context.principal.require_role(WEBHOOK_ROLES, "managing webhooks")
        return [Webhook.from_domain(w) for w in await info.context.repos.webhooks.list(tenant)]

    @strawberry.field(description="A webhook's latest delivery attempts, newest first.")
    async def webhook_deliveries(self, info: XInfo, webhook_id: strawberry.ID,
                                 first: int | None = 20) -> list[WebhookDelivery]:
        tenant = info.context.principal.require_role(WEBHOOK_ROLES, "managing webhooks")
        found = await info.context.repos.webhooks.deliveries(tenant, _webhook_id(webhook_id), connection_args(first))
        if found is None:
            raise NotFound(f"no webhook {webhook_id!r}", field="webhookId")
        return [WebhookDelivery(event_id=strawberry.ID(d.event_id), event_type=d.event_type, attempt=d.attempt,
                                status_code=d.status_code, error=d.error, at=d.at, delivered=d.delivered,
                                next_attempt_at=d.next_attempt_at) for d in found]


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(description="Register a URL for events of the given types (integrators and admins).")
    async def register_webhook(self, info: XInfo, input: RegisterWebhookInput) -> RegisterWebhookResult:
        async def work() -> RegisterWebhookPayload:
            tenant = info.context.principal.require_role(WEBHOOK_ROLES, "managing webhooks")
            types = [t.value for t in input.event_types]
            webhook = await info.context.repos.webhooks.create(tenant, input.url, types)
            return RegisterWebhookPayload(webhook=Webhook.from_domain(webhook), secret=webhook.secret)

        return await guarded(work)  # type: ignore[return-value]

    @strawberry.mutation(description="Stop delivering to a webhook.")
    async def deactivate_webhook(self, info: XInfo, webhook_id: strawberry.ID) -> DeactivateWebhookResult:
        async def work() -> DeactivateWebhookPayload:
            tenant = info.context.principal.require_role(WEBHOOK_ROLES, "managing webhooks")
            if not await info.context.repos.webhooks.deactivate(tenant, _webhook_id(webhook_id)):
                raise NotFound(f"no webhook {webhook_id!r}", field="webhookId")
            return DeactivateWebhookPayload(changed=True)

        return await guarded(work)  # type: ignore[return-value]
