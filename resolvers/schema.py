"""The one schema, composed from feature modules."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig

from domain.errors import QuanziError
from resolvers.campaigns import CampaignsMutation, CampaignsQuery
from resolvers.commerce import CommerceMutation, CommerceQuery
from resolvers.common import MINOR_UNITS_SCALAR, MinorUnits
from resolvers.communities import CommunitiesMutation, CommunitiesQuery
from resolvers.content import ContentMutation, ContentQuery
from resolvers.growth import GrowthQuery
from resolvers.health import HealthQuery
from resolvers.members import MembersMutation, MembersQuery
from resolvers.node import NodeQuery
from resolvers.privacy import AuditTrail, PrivacyMutation, PrivacyQuery
from resolvers.rewards import RewardsMutation, RewardsQuery
from resolvers.segmentation import SegmentationMutation, SegmentationQuery
from resolvers.segments import SegmentsMutation, SegmentsQuery
from resolvers.subscriptions import Subscription
from resolvers.webhooks import WebhooksMutation, WebhooksQuery

__all__ = ["Query", "Mutation", "build_schema"]


@strawberry.type
class Query(NodeQuery, MembersQuery, CommunitiesQuery, ContentQuery, CommerceQuery, GrowthQuery, CampaignsQuery,
            WebhooksQuery, PrivacyQuery, HealthQuery, RewardsQuery, SegmentsQuery, SegmentationQuery):
    pass


@strawberry.type
class Mutation(MembersMutation, CommunitiesMutation, ContentMutation, CommerceMutation, CampaignsMutation,
               WebhooksMutation, PrivacyMutation, RewardsMutation, SegmentsMutation, SegmentationMutation):
    pass


class QuanziSchema(strawberry.Schema):
    """Expected failures (domain errors: not found, forbidden, invalid input) are not logged as errors."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        unexpected = [e for e in errors if not isinstance(e.original_error, QuanziError)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(extensions: Sequence[type[SchemaExtension] | Callable[[], SchemaExtension]] = ()) -> strawberry.Schema:
    from resolvers.campaigns import Campaign
    from resolvers.commerce import Product, Purchase
    from resolvers.communities import Community
    from resolvers.content import Comment, Content
    from resolvers.members import Member, Tag

    return QuanziSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Member, Community, Content, Comment, Tag, Product, Purchase, Campaign],
        extensions=[*extensions, AuditTrail],  # AuditTrail: READ_PII entries (resolvers.privacy)
        config=StrawberryConfig(scalar_map={MinorUnits: MINOR_UNITS_SCALAR}),
    )
