"""Growth analytics over GraphQL: KOL/KOC rankings and referral chains (邀请 / 裂变).

Rankings are computed off the request path (``quanzi recompute kol`` or the server's
scheduler) and read from Redis in one round trip; each answer says when it was computed.
Referral aggregates are maintained incrementally from the event outbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from domain import growth as dg
from domain.auth import STAFF_ROLES
from domain.errors import NotFound, PermissionDenied, ValidationFailed
from domain.growth import MAX_TREE_DEPTH
from domain.ids import Kind, require_id
from domain.influence import MemberInfluence
from domain.influence import RankingKind as DomainRankingKind
from domain.models import Money as DomainMoney
from domain.models import Referral as DomainReferral
from domain.referral_risk import RiskSignalKind
from domain.pagination import decode_cursor, encode_cursor
from domain.privacy import ConsentPurpose
from domain.referral_stats import ReferralStats as DomainReferralStats
from resolvers.common import MinorUnits, Money, PageInfo, XInfo, connection_args

if TYPE_CHECKING:
    from resolvers.members import Member

__all__ = [
    "GrowthQuery", "Influence", "Referral", "ReferralStats", "influence_of", "referral_of", "referral_stats_of",
    "to_scope",
]

MemberRef = Annotated["Member", strawberry.lazy("resolvers.members")]

RankingKind = strawberry.enum(
    DomainRankingKind,
    description="KOL (意见领袖): widest influence — composite of influence, reach, engagement, conversion and "
    "bridging. KOC (关键意见消费者): members who bring in buyers with a modest reach.",
)
ScopeKind = strawberry.enum(dg.ScopeKind, description="What a ranking covers: the whole tenant, one community or one topic.")


@strawberry.input(description="The scope of a ranking; `id` is the community or topic (tag) id.")
class ScopeInput:
    kind: ScopeKind = dg.ScopeKind.TENANT  # type: ignore[valid-type]
    id: strawberry.ID | None = None


def to_scope(scope: ScopeInput | None) -> dg.Scope:
    if scope is None or scope.kind is dg.ScopeKind.TENANT:
        if scope is not None and scope.id is not None:
            raise ValidationFailed("a TENANT scope takes no id", field="scope.id")
        return dg.Scope()
    if scope.id is None:
        raise ValidationFailed(f"a {scope.kind.value} scope needs an id", field="scope.id")
    kind = Kind.COMMUNITY if scope.kind is dg.ScopeKind.COMMUNITY else Kind.TAG
    return dg.Scope(scope.kind, require_id(scope.id, kind, field="scope.id"))


@strawberry.type(description="Why a member ranks where it does. Percentile components are in [0, 1]: "
                 "the share of the scope's other members with a strictly lower value (0 = nobody below).")
class InfluenceComponents:
    influence: float = strawberry.field(description="Percentile of weighted PageRank on the engagement graph "
                                        "(follows and likes/comments/shares/favorites, weighted 1/1/3/4/2).")
    reach: float = strawberry.field(description="Percentile of followers and two-hop reach, averaged.")
    engagement: float = strawberry.field(description="Percentile of the engagement rate.")
    conversion: float = strawberry.field(description="Percentile of invitees who bought and attributed GMV, averaged.")
    bridging: float = strawberry.field(description="Percentile of (sampled) betweenness: how much the member "
                                       "connects otherwise separate parts of the community.")
    penalty: float = strawberry.field(description="Share of the score removed for suspicious engagement "
                                      "(0 = none).")
    suspicion: float = strawberry.field(description="Fake-engagement suspicion in [0, 1]: reciprocal like rings "
                                        "and bursts from accounts younger than 7 days.")
    engagement_rate: float = strawberry.field(description="Interactions received on the member's content / "
                                              "(posts × followers).")
    pagerank: float
    betweenness: float
    followers: int
    two_hop_reach: int = strawberry.field(description="Distinct members within two follow hops (estimated "
                                          "beyond 64).")
    invitees_bought: int = strawberry.field(description="Direct invitees with at least one paid purchase.")
    attributed_gmv: MinorUnits = strawberry.field(description="Paid GMV credited to the member plus paid GMV "
                                                  "of its direct invitees, in minor units.")

    @classmethod
    def from_domain(cls, m: MemberInfluence) -> InfluenceComponents:
        return cls(
            influence=m.influence, reach=m.reach, engagement=m.engagement, conversion=m.conversion,
            bridging=m.bridging, penalty=m.penalty, suspicion=m.suspicion, engagement_rate=m.engagement_rate,
            pagerank=m.pagerank, betweenness=m.betweenness, followers=m.followers, two_hop_reach=m.two_hop_reach,
            invitees_bought=m.invitees_bought, attributed_gmv=MinorUnits(m.attributed_gmv),
        )


@strawberry.type(description="A member's KOL/KOC standing in one scope.")
class Influence:
    rank: int = strawberry.field(description="1 = the top KOL of the scope.")
    score: float = strawberry.field(description="KOL composite in [0, 1]: weighted percentile components "
                                    "× (1 − penalty).")
    koc_score: float = strawberry.field(description="KOC score in [0, 1]: the conversion component × (1 − penalty).")
    is_koc: bool
    components: InfluenceComponents
    computed_at: datetime

    @classmethod
    def from_domain(cls, ranked: dg.RankedMember, computed_at: datetime) -> Influence:
        m = ranked.influence
        return cls(rank=ranked.rank, score=m.score, koc_score=m.koc_score, is_koc=m.is_koc,
                   components=InfluenceComponents.from_domain(m), computed_at=computed_at)


@strawberry.type
class KolRankingEntry:
    rank: int
    score: float = strawberry.field(description="The score the list is sorted by (KOL score or KOC score).")
    influence: Influence
    _member_id: strawberry.Private[str]

    @strawberry.field
    async def member(self, info: XInfo) -> MemberRef | None:
        from resolvers.members import Member

        found = await info.context.loaders.member.load(self._member_id)
        return None if found is None else Member.from_domain(found)


@strawberry.type
class KolRankingEdge:
    cursor: str
    node: KolRankingEntry


@strawberry.type(description="A ranked page of KOLs or KOCs, computed at `computedAt` from the graph as of "
                 "`graphVersion` changes.")
class KolRanking:
    edges: list[KolRankingEdge]
    nodes: list[KolRankingEntry]
    page_info: PageInfo
    total_count: int
    computed_at: datetime
    graph_version: int


@strawberry.type(description="A member of an upline: level 1 is the member's inviter.")
class UplineEntry:
    level: int
    member: MemberRef


@strawberry.type
class ReferralTreeNode:
    level: int = strawberry.field(description="1 = invited by the root member, 2 = invited by one of those, ...")
    member: MemberRef
    inviter_id: strawberry.ID


@strawberry.type
class ReferralTreeEdge:
    cursor: str
    node: ReferralTreeNode


@strawberry.type(description="A member's downline (下线) to `depth` levels, ordered by level then id.")
class ReferralTree:
    level_counts: list[int] = strawberry.field(description="Members per level: [0] = direct invitees.")
    total_count: int = strawberry.field(description="Members in the tree down to `depth`.")
    edges: list[ReferralTreeEdge]
    nodes: list[ReferralTreeNode]
    page_info: PageInfo


ReferralRiskKind = strawberry.enum(
    RiskSignalKind,
    description="VELOCITY_BURST: 10+ invitees of one inviter within an hour; NEVER_ACTIVE: the invitee did nothing "
    "in its first 7 days; SHARED_PHONE_PREFIX / SHARED_DEVICE: the invitee shares a phone-number block (first 7 "
    "digits) with 3+ or a device with 1+ other invitees of the same inviter.",
)


@strawberry.type(description="One fraud signal of a referral, with what triggered it.")
class ReferralRiskSignal:
    kind: ReferralRiskKind  # type: ignore[valid-type]
    detail: str


@strawberry.type(description="The invitation (邀请) that brought a member in.")
class Referral:
    at: datetime
    channel: str | None
    code: str | None = strawberry.field(description="The invite code used, if any.")
    campaign_id: strawberry.ID | None
    risk_signals: list[ReferralRiskSignal] = strawberry.field(
        description="Why this referral looks like farming; empty when nothing does. Self-referrals and cycles "
        "are rejected when written and never appear.")
    _inviter_id: strawberry.Private[str]
    _invitee_id: strawberry.Private[str]

    @classmethod
    def from_domain(cls, r: DomainReferral) -> Referral:
        return cls(
            at=r.at, channel=r.channel, code=r.code,
            campaign_id=None if r.campaign_id is None else strawberry.ID(r.campaign_id),
            risk_signals=[ReferralRiskSignal(kind=x.kind, detail=x.detail) for x in r.risk_signals],
            _inviter_id=r.inviter_id, _invitee_id=r.invitee_id,
        )

    @strawberry.field
    async def inviter(self, info: XInfo) -> MemberRef | None:
        from resolvers.members import Member

        found = await info.context.loaders.member.load(self._inviter_id)
        return None if found is None else Member.from_domain(found)

    @strawberry.field
    async def invitee(self, info: XInfo) -> MemberRef | None:
        from resolvers.members import Member

        found = await info.context.loaders.member.load(self._invitee_id)
        return None if found is None else Member.from_domain(found)


async def referral_of(info: XInfo, member_id: str) -> Referral | None:
    principal = info.context.principal
    principal.require_tenant()
    if not (principal.is_staff or principal.member_id == member_id):
        return None
    found = await info.context.loaders.referral.load(member_id)
    return None if found is None else Referral.from_domain(found)


def _money(table: dict[str, int]) -> list[Money]:
    return [Money.from_domain(DomainMoney(amount, currency)) for currency, amount in sorted(table.items())]


@strawberry.type(description="A member's referral numbers (邀请数据). The team (团队) is everyone below the member "
                 "in the referral tree. Activated = first interaction, post, comment or purchase within 7 days "
                 "of joining; converted = at least one paid purchase.")
class ReferralStats:
    direct_invites: int
    team_size: int
    depth: int = strawberry.field(description="Levels below the member: 0 with no invitees.")
    level_counts: list[int]
    activated_invitees: int
    activated_team: int
    converted_invitees: int
    converted_team: int
    team_gmv: list[Money] = strawberry.field(description="Paid GMV placed by the team, per currency.")
    own_gmv: list[Money]
    attributed_gmv: list[Money] = strawberry.field(description="Paid GMV credited to the member (ATTRIBUTED_TO).")

    @classmethod
    def from_domain(cls, s: DomainReferralStats) -> ReferralStats:
        return cls(
            direct_invites=s.direct_invites, team_size=s.team_size, depth=s.depth, level_counts=list(s.level_counts),
            activated_invitees=s.activated_direct, activated_team=s.activated_team,
            converted_invitees=s.converted_direct, converted_team=s.converted_team,
            team_gmv=_money(s.team_gmv), own_gmv=_money(s.own_gmv), attributed_gmv=_money(s.attributed_gmv),
        )


def _may_read_member_analytics(info: XInfo, member_id: str) -> str:
    """Staff see everyone's analytics; a member sees its own."""
    principal = info.context.principal
    tenant = principal.require_tenant()
    if not (principal.is_staff or principal.member_id == member_id):
        raise PermissionDenied("growth analytics of other members are for staff (operator, analyst, integrator, admin)")
    return tenant


async def influence_of(info: XInfo, member_id: str, scope: ScopeInput | None) -> Influence | None:
    tenant = _may_read_member_analytics(info, member_id)
    if not await info.context.loaders.profiling_allowed.load(member_id):
        return None  # PIPL Art. 24: no profile of a member who refused profiling (or was erased)
    found = await info.context.repos.growth.kol_member(tenant, to_scope(scope), member_id)
    if found is None or found[0] is None:
        return None
    return Influence.from_domain(found[0], found[1])


async def referral_stats_of(info: XInfo, member_id: str) -> ReferralStats | None:
    tenant = _may_read_member_analytics(info, member_id)
    stats = await info.context.repos.growth.referral_stats(tenant, member_id)
    return None if stats is None else ReferralStats.from_domain(stats)


def _tree_cursor(after: str | None) -> tuple[int, str] | None:
    if after is None:
        return None
    key = decode_cursor(after, arity=2, field="after")
    if key is None or not isinstance(key[0], int) or not isinstance(key[1], str):
        raise ValidationFailed("after is not a cursor returned by this connection", field="after")
    return key[0], key[1]


@strawberry.type
class GrowthQuery:
    @strawberry.field(description="Top opinion leaders (KOL) or key opinion consumers (KOC) of a scope, best first "
                      "(staff only). Null until the scope's first computation. Members who withdrew PROFILING "
                      "consent (or were erased) are left out: their entries are dropped from the computed ranking "
                      "when they withdraw, and a page skips them (and their rank numbers) until then.")
    async def kol_ranking(
        self, info: XInfo, scope: ScopeInput | None = None, first: int | None = 20, after: str | None = None,
        kind: RankingKind = DomainRankingKind.KOL,  # type: ignore[valid-type]
    ) -> KolRanking | None:
        tenant = info.context.principal.require_role(STAFF_ROLES, "reading KOL rankings")
        limit = connection_args(first)
        offset = 0
        if after is not None:
            key = decode_cursor(after, arity=1, field="after")
            if key is None or not isinstance(key[0], int) or key[0] < 1:
                raise ValidationFailed("after is not a cursor returned by this connection", field="after")
            offset = key[0]
        page = await info.context.repos.growth.kol_page(tenant, to_scope(scope), kind, offset, limit)
        if page is None:
            return None
        ids = [r.member_id for r in page.items]
        allowed = set(await info.context.repos.privacy.with_consent(tenant, ids, ConsentPurpose.PROFILING))
        nodes = [
            KolRankingEntry(rank=r.rank, score=r.score, influence=Influence.from_domain(r, page.computed_at),
                            _member_id=r.member_id)
            for r in page.items if r.member_id in allowed
        ]
        cursors = [encode_cursor([n.rank]) for n in nodes]
        # the page ends after its last rank read, shown or skipped, so paging never stalls on skipped entries
        last = encode_cursor([page.items[-1].rank]) if page.items else None
        return KolRanking(
            edges=[KolRankingEdge(cursor=c, node=n) for c, n in zip(cursors, nodes)], nodes=nodes,
            page_info=PageInfo(has_next_page=offset + len(page.items) < page.total, has_previous_page=offset > 0,
                               start_cursor=cursors[0] if cursors else None, end_cursor=last),
            total_count=page.total, computed_at=page.computed_at, graph_version=page.graph_version,
        )

    @strawberry.field(description="Who brought this member in, up to the root of its referral tree (上线).")
    async def referral_upline(self, info: XInfo, member_id: strawberry.ID) -> list[UplineEntry]:
        require_id(member_id, Kind.MEMBER, field="memberId")
        tenant = _may_read_member_analytics(info, member_id)
        upline = await info.context.repos.growth.upline(tenant, member_id)
        if upline is None:
            raise NotFound(f"no member {member_id!r}", field="memberId")
        from resolvers.members import Member

        return [UplineEntry(level=i + 1, member=Member.from_domain(m)) for i, m in enumerate(upline)]

    @strawberry.field(description=f"A member's downline to `depth` levels (1–{MAX_TREE_DEPTH}), with members per level.")
    async def referral_tree(
        self, info: XInfo, member_id: strawberry.ID, depth: int = 3, first: int | None = 20, after: str | None = None,
    ) -> ReferralTree:
        require_id(member_id, Kind.MEMBER, field="memberId")
        if not 1 <= depth <= MAX_TREE_DEPTH:
            raise ValidationFailed(f"depth must be between 1 and {MAX_TREE_DEPTH}", field="depth")
        tenant = _may_read_member_analytics(info, member_id)
        limit = connection_args(first)
        page = await info.context.repos.growth.referral_tree(
            tenant, member_id, depth=depth, first=limit, after=_tree_cursor(after))
        if page is None:
            raise NotFound(f"no member {member_id!r}", field="memberId")
        from resolvers.members import Member

        nodes = [ReferralTreeNode(level=n.level, member=Member.from_domain(n.member), inviter_id=strawberry.ID(n.inviter_id))
                 for n in page.items]
        cursors = [encode_cursor([n.level, n.member.id]) for n in page.items]
        return ReferralTree(
            level_counts=page.level_counts, total_count=sum(page.level_counts),
            edges=[ReferralTreeEdge(cursor=c, node=n) for c, n in zip(cursors, nodes)], nodes=nodes,
            page_info=PageInfo(has_next_page=page.has_next, has_previous_page=after is not None,
                               start_cursor=cursors[0] if cursors else None, end_cursor=cursors[-1] if cursors else None),
        )

    @strawberry.field(description="A member's referral numbers: invites, team, depth, activated and converted "
                      "invitees, GMV. Maintained incrementally as referrals and purchases happen.")
    async def referral_stats(self, info: XInfo, member_id: strawberry.ID) -> ReferralStats:
        require_id(member_id, Kind.MEMBER, field="memberId")
        stats = await referral_stats_of(info, member_id)
        if stats is None:
            raise NotFound(f"no member {member_id!r}", field="memberId")
        return stats
