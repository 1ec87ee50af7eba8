"""Webhooks: committed events POSTed to an integrator's URL, signed, retried with backoff.

Pure rules only (no I/O): the :class:`Webhook` and :class:`Delivery` records, the
Stripe-style signature (``Quanzi-Signature: t=<unix ts>,v1=<hex HMAC-SHA256>`` of
``f"{t}."`` + body), the retry schedule and input validation. The graph stores webhooks
(``graph.webhooks.GraphWebhooks``); Redis queues and logs deliveries
(``graph.webhooks.WebhookOutbox`` / ``WebhookDispatcher``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
import ipaddress
from urllib.parse import urlsplit

from domain.errors import ValidationFailed
from domain.events import Event, EventType

__all__ = [
    "BACKOFF_CAP_SECONDS",
    "EVENT_ID_HEADER",
    "MAX_ATTEMPTS",
    "MAX_URL_LENGTH",
    "SIGNATURE_HEADER",
    "Delivery",
    "Webhook",
    "backoff",
    "delivery_body",
    "new_secret",
    "new_webhook_id",
    "sign",
    "signature_header",
    "validate_event_types",
    "validate_url",
    "is_public_address",
    "verify",
]

#: attempts per delivery (the first one included); after the last failure it is marked failed
MAX_ATTEMPTS = 8
#: the longest wait between two attempts
BACKOFF_CAP_SECONDS = 3600.0
MAX_URL_LENGTH = 2000
#: how old a signature timestamp :func:`verify` accepts by default (replay protection)
DEFAULT_TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "Quanzi-Signature"
EVENT_ID_HEADER = "Quanzi-Event-Id"
WEBHOOK_PREFIX = "whk_"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    tenant_id: str
    url: str
    event_types: tuple[str, ...]
    secret: str
    created_at: datetime
    active: bool = True

    def wants(self, event_type: str) -> bool:
        """Whether this webhook is active and subscribed to *event_type*."""
        return self.active and event_type in self.event_types


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery attempt of one event to one webhook, as kept in the delivery log."""

    webhook_id: str
    event_id: str
    event_type: str
    attempt: int
    status_code: int | None
    error: str | None
    at: datetime
    delivered: bool
    #: when the next attempt is due; ``None`` once delivered or given up
    next_attempt_at: datetime | None

    @property
    def failed(self) -> bool:
        """The delivery was given up after this attempt."""
        return not self.delivered and self.next_attempt_at is None


def new_webhook_id() -> str:
    return WEBHOOK_PREFIX + secrets.token_hex(12)


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, hex-encoded."""
    return secrets.token_hex(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}."`` + *body* keyed by *secret* (UTF-8)."""
    message = f"{int(timestamp)}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Quanzi-Signature`` header value: ``t=<unix ts>,v1=<hex>``."""
    return f"t={int(timestamp)},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None,
           tolerance: float | None = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """Whether *header* (``t=...,v1=...``) signs *body* with *secret*.

    A timestamp further than *tolerance* seconds from *now* is rejected (replay); pass
    ``tolerance=None`` to skip that check. Any ``v1`` entry may match (secret rotation).
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - timestamp) > tolerance:
            return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)


def backoff(attempt: int, *, base: float = 1.0, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """Seconds to wait after failed attempt number *attempt* (1-based): 1, 2, 4, ... capped."""
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    return float(min(cap, base * 2 ** min(attempt - 1, 62)))


def is_public_address(ip: str) -> bool:
    """True for a globally routable address (not private, loopback, link-local, shared or reserved)."""
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_global
    except ValueError:
        return False


def validate_url(url: str, *, allow_private: bool = True) -> str:
    """The URL, stripped, when it is an absolute http(s) URL of at most 2,000 characters.

    Without *allow_private*, a host that is a non-public IP literal or ``localhost`` is
    refused (server-side request forgery); names are checked again when delivering.
    """
    cleaned = url.strip()
    if not cleaned:
        raise ValidationFailed("the webhook URL is required", field="input.url")
    if len(cleaned) > MAX_URL_LENGTH:
        raise ValidationFailed(f"the webhook URL is longer than {MAX_URL_LENGTH} characters", field="input.url")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in cleaned):
        raise ValidationFailed("the webhook URL contains whitespace or control characters", field="input.url")
    try:
        parts = urlsplit(cleaned)
        host = parts.hostname
        _ = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValidationFailed(f"the webhook URL is malformed: {exc}", field="input.url") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailed("the webhook URL must use http or https", field="input.url")
    if not host:
        raise ValidationFailed("the webhook URL needs a host", field="input.url")
    if not allow_private and (host == "localhost" or host.endswith(".localhost")
                              or (_is_ip(host) and not is_public_address(host))):
        raise ValidationFailed("the webhook URL points at a private or local address", field="input.url")
    return cleaned


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def validate_event_types(event_types: Iterable[str]) -> tuple[str, ...]:
    """Known event type names, deduplicated in order; at least one."""
    known = {t.value for t in EventType}
    result: list[str] = []
    for raw in event_types:
        t = str(raw)
        if t not in known:
            raise ValidationFailed(f"unknown event type {t!r}", field="input.eventTypes")
        if t not in result:
            result.append(t)
    if not result:
        raise ValidationFailed("subscribe to at least one event type", field="input.eventTypes")
    return tuple(result)


def delivery_body(e: Event) -> bytes:
    """The JSON body POSTed for *e*: ``{"id", "type", "tenantId", "at" (ISO 8601), "data"}``."""
    document = {"id": e.id, "type": e.type.value, "tenantId": e.tenant, "at": e.at.isoformat(), "data": e.payload}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")
