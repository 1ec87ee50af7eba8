"""Bearer JWTs (HS256) to and from :class:`~domain.auth.Principal`.

Claims: ``sub``, ``tenant``, ``member`` (optional), ``roles``, ``scopes``, ``iss``, ``aud``,
``iat``, ``exp``. A missing Authorization header is the anonymous principal; a present but
invalid one is rejected (HTTP 401, code NOT_AUTHENTICATED).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

import jwt

from api.settings import Settings
from domain.auth import ANONYMOUS, Principal, Role, Scope
from domain.errors import NotAuthenticated, ValidationFailed

__all__ = ["decode_token", "issue_token", "principal_from_header"]


def issue_token(
    settings: Settings,
    *,
    tenant: str,
    roles: Iterable[str],
    member_id: str | None = None,
    scopes: Iterable[str] = (),
    ttl_seconds: int = 7 * 24 * 3600,
    subject: str | None = None,
) -> str:
    try:
        role_values = sorted({Role(r).value for r in roles})
        scope_values = sorted({Scope(s).value for s in scopes})
    except ValueError as exc:
        raise ValidationFailed(
            f"{exc}; roles are {', '.join(r.value for r in Role)} and scopes are {', '.join(s.value for s in Scope)}"
        ) from None
    now = int(time.time())
    claims = {
        "sub": subject or member_id or f"{tenant}:{'+'.join(role_values)}",
        "tenant": tenant,
        "roles": role_values,
        "scopes": scope_values,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if member_id is not None:
        claims["member"] = member_id
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def decode_token(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "tenant", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("the bearer token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise NotAuthenticated(f"the bearer token is invalid: {exc}") from None
    try:
        roles = frozenset(Role(r) for r in claims.get("roles", []))
        scopes = frozenset(Scope(s) for s in claims.get("scopes", []))
    except ValueError as exc:
        raise NotAuthenticated(f"the bearer token has an unknown role or scope: {exc}") from None
    tenant = claims["tenant"]
    member = claims.get("member")
    if not isinstance(tenant, str) or not tenant or (member is not None and not isinstance(member, str)):
        raise NotAuthenticated("the bearer token has a malformed tenant or member claim")
    return Principal(tenant_id=tenant, member_id=member, roles=roles, scopes=scopes, subject=str(claims["sub"]),
                     expires_at=datetime.fromtimestamp(claims["exp"], UTC))


def principal_from_header(settings: Settings, header: str | None) -> Principal:
    if header is None or not header.strip():
        return ANONYMOUS
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
    return decode_token(settings, token.strip())
