"""Who is calling, and what they may see.

A :class:`Principal` comes from a verified bearer token (see ``api.auth``): the tenant it
acts in, the member it is (if any), its roles and scopes. Every query is scoped to
``principal.tenant_id``; the tenant never comes from a request argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.errors import NotAuthenticated, PermissionDenied

__all__ = ["ANONYMOUS", "Principal", "Role", "Scope", "mask_phone", "mask_wechat_id"]


class Role(StrEnum):
    MEMBER = "member"
    OPERATOR = "operator"
    ANALYST = "analyst"
    INTEGRATOR = "integrator"
    ADMIN = "admin"


class Scope(StrEnum):
    PII_READ = "pii:read"


#: Roles that act for the brand rather than as one member: they may read any member of
#: their tenant and act on a member's behalf.
STAFF_ROLES = frozenset({Role.OPERATOR, Role.ANALYST, Role.INTEGRATOR, Role.ADMIN})
#: Roles that may change the brand's data on behalf of members.
WRITER_ROLES = frozenset({Role.OPERATOR, Role.INTEGRATOR, Role.ADMIN})
#: Roles that manage communities and memberships.
MANAGER_ROLES = frozenset({Role.OPERATOR, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str | None
    member_id: str | None = None
    roles: frozenset[Role] = frozenset()
    scopes: frozenset[Scope] = frozenset()
    subject: str | None = None
    #: when the credential stops being valid (a token's ``exp``); long-lived subscriptions check it
    expires_at: datetime | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.tenant_id is not None

    def require_tenant(self) -> str:
        """The caller's tenant; anonymous callers get ``NotAuthenticated``."""
        if self.tenant_id is None:
            raise NotAuthenticated("a bearer token is required")
        return self.tenant_id

    def has_any(self, roles: frozenset[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_staff(self) -> bool:
        return self.has_any(STAFF_ROLES)

    def can_read_pii(self) -> bool:
        return Scope.PII_READ in self.scopes

    def require_role(self, roles: frozenset[Role], action: str) -> str:
        tenant = self.require_tenant()
        if not self.has_any(roles):
            needed = ", ".join(sorted(r.value for r in roles))
            raise PermissionDenied(f"{action} needs one of the roles: {needed}")
        return tenant

    def acting_member(self, requested: str | None, *, field: str = "memberId") -> str:
        """The member a social action is done as.

        Members act as themselves (``requested`` omitted or their own id); brand roles that
        write (operator, integrator, admin) may act for any member of their tenant.
        """
        self.require_tenant()
        if requested is None or requested == self.member_id:
            if self.member_id is None:
                raise PermissionDenied(f"{field} is required: this token is not a member", field=field)
            return self.member_id
        if self.has_any(WRITER_ROLES):
            return requested
        raise PermissionDenied("members can only act as themselves", field=field)


ANONYMOUS = Principal(tenant_id=None)


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` -> ``138****5678`` (the usual mainland masking)."""
    if phone is None:
        return None
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_wechat_id(wechat_id: str | None) -> str | None:
    """Keep the first and last character: ``wxid_abc123`` -> ``w*********3``."""
    if wechat_id is None:
        return None
    if len(wechat_id) <= 2:
        return "*" * len(wechat_id)
    return wechat_id[0] + "*" * (len(wechat_id) - 2) + wechat_id[-1]
