"""Community health and funnel metrics over GraphQL (社群健康度): ``Community.health`` and ``health``.

Reports are computed from the graph and cached in Redis per (tenant, scope, window); a
report younger than five minutes is served as is, an older one is served while one
process recomputes it in the background, and none is served older than an hour
(``graph.health``; the times are settings). Each answer says when it was computed.
Staff only: operators, analysts and admins.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain import health as dh
from domain.auth import Role
from domain.errors import NotFound, ValidationFailed
from domain.ids import Kind, require_id
from domain.models import Channel as DomainChannel
from domain.models import Money as DomainMoney
from resolvers.common import Money, XInfo
from resolvers.enums import Channel

__all__ = ["CommunityHealth", "HealthQuery", "HealthScopeInput", "HealthWindowInput", "community_health"]

#: who may read health reports
HEALTH_ROLES = frozenset({Role.OPERATOR, Role.ANALYST, Role.ADMIN})

HealthScopeKind = strawberry.enum(
    dh.HealthScopeKind,
    description="What a health report covers: the whole tenant, one community, the members acquired through one "
    "channel (渠道), or the members who took part in one campaign.",
)


@strawberry.input(description="A window `[from, to)`. Both left out: the last 30 days up to now. Only `to`: the 30 "
                  "days before it; only `from`: from it to now. At least one day, at most 366 days, and `to` no "
                  "more than 5 minutes in the future.")
class HealthWindowInput:
    from_: datetime | None = strawberry.field(default=None, name="from", description="Start (inclusive).")
    to: datetime | None = strawberry.field(default=None, description="End (exclusive).")


@strawberry.input(description="The scope of a health report: `id` names the community (com_…) or campaign (cpg_…); "
                  "`channel` the acquisition channel of a CHANNEL scope.")
class HealthScopeInput:
    kind: HealthScopeKind = dh.HealthScopeKind.TENANT  # type: ignore[valid-type]
    id: strawberry.ID | None = None
    channel: Channel | None = None  # type: ignore[valid-type]


@strawberry.type(description="The window a report covers: `[from, to)`.")
class HealthWindow:
    from_: datetime = strawberry.field(name="from")
    to: datetime


@strawberry.type(description="Members who joined in one week of the window (7-day slots from its start).")
class RetentionCohort:
    week_start: datetime
    size: int = strawberry.field(description="Members who joined that week.")
    retention: list[float | None] = strawberry.field(
        description="[N] = week-N retention, N = 0..8: the share of the cohort active (an interaction, post, comment "
        "or purchase) in days [7N, 7N+7) after their own join. Null until week N has ended, before the window end, "
        "for every member of the cohort.")


@strawberry.type(description="One funnel stage: a subset of the members acquired in the window.")
class FunnelStage:
    members: int
    share: float | None = strawberry.field(description="members / acquired members; null when none were acquired.")


@strawberry.type(description="The AARRR funnel of the members acquired (joined) in the window. Each stage counts "
                 "acquired members, not members of the previous stage.")
class Funnel:
    acquired: int = strawberry.field(description="Members who joined in the window (newMembers).")
    activated: FunnelStage = strawberry.field(description="Active (interaction, post, comment or purchase) within 7 "
                                              "days of joining.")
    retained: FunnelStage = strawberry.field(description="Active again more than 7 days after joining, before the "
                                             "window end.")
    revenue: FunnelStage = strawberry.field(description="At least one paid purchase after joining, in the window.")
    referral: FunnelStage = strawberry.field(description="Invited at least one member (a referral) in the window.")


@strawberry.type(description="An average amount in minor units of its currency (fractional).")
class MoneyAverage:
    amount: float
    currency: str


@strawberry.type(description="Health and funnel metrics (社群健康度) of one scope over one window, as computed at "
                 "`computedAt` (at most an hour ago; usually at most five minutes). A member counts from its join: "
                 "the community join for a community, the brand join otherwise. An *active* member made at least one "
                 "interaction (like, comment, share, favorite), post or purchase in the period. For a community, posts "
                 "and interactions are those on its content; purchases of any scope are the purchases placed by its "
                 "members.")
class CommunityHealth:
    window: HealthWindow
    computed_at: datetime
    member_count: int = strawberry.field(description="Members who joined before the window end.")
    new_members: int = strawberry.field(description="Members who joined in the window.")
    active_members: int = strawberry.field(description="Members active in the window.")
    dau: float = strawberry.field(description="Daily active members: the mean, over the last 30 days of the window "
                                  "(its whole days when shorter; 24-hour slots counted back from its end), of the "
                                  "members active each day.")
    wau: int = strawberry.field(description="Members active in the last 7 days of the window.")
    mau: int = strawberry.field(description="Members active in the last 30 days of the window (the whole window when "
                                "shorter).")
    stickiness: float | None = strawberry.field(description="DAU / MAU; null when MAU is 0.")
    posts: int = strawberry.field(description="Posts made in the window.")
    interactions: int = strawberry.field(description="Likes, comments, shares and favorites made in the window.")
    posts_per_active_member: float | None = strawberry.field(description="posts / activeMembers; null without "
                                                             "active members.")
    interactions_per_active_member: float | None = strawberry.field(description="interactions / activeMembers; null "
                                                                    "without active members.")
    retention: list[RetentionCohort] = strawberry.field(description="Week-N retention per join-week cohort.")
    funnel: Funnel
    repurchase_rate: float | None = strawberry.field(description="Share of members with a paid purchase in the window "
                                                     "who have two or more there; null when nobody paid.")
    gmv: list[Money] = strawberry.field(description="GMV per currency: the sum of paid purchase amounts in the window, "
                                        "refunds excluded. Empty without paid purchases.")
    aov: list[MoneyAverage] = strawberry.field(description="Average order value per currency: GMV / paid purchases in "
                                               "the window. Empty (no AOV) without paid purchases.")
    ltv: list[MoneyAverage] = strawberry.field(description="Historical LTV per currency: the paid GMV each member "
                                               "placed from joining to the window end, averaged over memberCount.")
    paid_purchases: int = strawberry.field(description="Paid purchases in the window, all currencies.")
    top20_interaction_share: float | None = strawberry.field(
        description="Share of the window's interactions made by the 20% of members (rounded up) who made the most "
        "(80/20 concentration); null without interactions.")

    @classmethod
    def from_domain(cls, r: dh.HealthReport) -> CommunityHealth:
        m = r.metrics

        def stage(s: dh.FunnelStage) -> FunnelStage:
            return FunnelStage(members=s.members, share=s.share)

        return cls(
            window=HealthWindow(from_=r.window.start, to=r.window.end), computed_at=r.computed_at,
            member_count=m.member_count, new_members=m.new_members, active_members=m.active_members, dau=m.dau,
            wau=m.wau, mau=m.mau, stickiness=m.stickiness, posts=m.posts, interactions=m.interactions,
            posts_per_active_member=m.posts_per_active_member,
            interactions_per_active_member=m.interactions_per_active_member,
            retention=[RetentionCohort(week_start=c.start, size=c.size, retention=list(c.retention)) for c in m.cohorts],
            funnel=Funnel(acquired=m.funnel.acquired, activated=stage(m.funnel.activated),
                          retained=stage(m.funnel.retained), revenue=stage(m.funnel.revenue),
                          referral=stage(m.funnel.referral)),
            repurchase_rate=m.repurchase_rate,
            gmv=[Money.from_domain(DomainMoney(x.gmv, x.currency)) for x in m.revenue if x.paid_purchases],
            aov=[MoneyAverage(amount=x.aov, currency=x.currency) for x in m.revenue if x.aov is not None],
            ltv=[MoneyAverage(amount=x.ltv, currency=x.currency) for x in m.revenue if x.ltv is not None],
            paid_purchases=sum(x.paid_purchases for x in m.revenue),
            top20_interaction_share=m.top20_interaction_share,
        )


async def _report(info: XInfo, scope: dh.HealthScope, window: HealthWindowInput | None) -> CommunityHealth:
    tenant = info.context.principal.require_role(HEALTH_ROLES, "reading community health")
    repo = info.context.repos.health
    resolved = repo.window(window.from_ if window else None, window.to if window else None)
    return CommunityHealth.from_domain(await repo.health(tenant, scope, resolved))


async def community_health(info: XInfo, community_id: str, window: HealthWindowInput | None) -> CommunityHealth:
    """``Community.health``: the report of an existing community."""
    return await _report(info, dh.HealthScope(dh.HealthScopeKind.COMMUNITY, community_id), window)


async def _scope(info: XInfo, scope: HealthScopeInput | None) -> dh.HealthScope:
    kind = dh.HealthScopeKind.TENANT if scope is None else scope.kind
    if kind is dh.HealthScopeKind.TENANT:
        if scope is not None and (scope.id is not None or scope.channel is not None):
            raise ValidationFailed("a TENANT scope takes no id or channel", field="scope")
        return dh.HealthScope()
    assert scope is not None
    if kind is dh.HealthScopeKind.CHANNEL:
        if scope.channel is None or scope.id is not None:
            raise ValidationFailed("a CHANNEL scope takes a channel and no id", field="scope.channel")
        return dh.HealthScope(kind, DomainChannel(scope.channel).value)
    if scope.id is None or scope.channel is not None:
        raise ValidationFailed(f"a {kind.value} scope takes an id and no channel", field="scope.id")
    loaders = info.context.loaders
    if kind is dh.HealthScopeKind.COMMUNITY:
        found: object = await loaders.community.load(require_id(scope.id, Kind.COMMUNITY, field="scope.id"))
    else:
        found = await loaders.campaign.load(require_id(scope.id, Kind.CAMPAIGN, field="scope.id"))
    if found is None:
        raise NotFound(f"no {kind.value.lower()} {scope.id!r}", field="scope.id")
    return dh.HealthScope(kind, scope.id)


@strawberry.type
class HealthQuery:
    @strawberry.field(description="Health and funnel metrics of the tenant, a community, an acquisition channel or a "
                      "campaign over a window (default: the last 30 days). Operators, analysts and admins only.")
    async def health(self, info: XInfo, scope: HealthScopeInput | None = None,
                     window: HealthWindowInput | None = None) -> CommunityHealth:
        info.context.principal.require_role(HEALTH_ROLES, "reading community health")
        return await _report(info, await _scope(info, scope), window)
