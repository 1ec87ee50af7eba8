"""Validated inputs of every write (the use cases' commands).

Each command is a pydantic model; :func:`parse` turns raw input into one or raises
:class:`~domain.errors.ValidationFailed` naming the first offending field the way the
client spelled it (``input.lines[0].quantity``). Nothing is written before a command
is valid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.errors import ValidationFailed
from domain.ids import ID_PATTERN
from domain.models import (
    CampaignKind,
    Channel,
    CommunityChannel,
    CommunityKind,
    ContentKind,
    MembershipRole,
)

__all__ = [
    "AddComment",
    "CreateCampaign",
    "CreateCommunity",
    "CreateContent",
    "CreateProduct",
    "MoneyInput",
    "PurchaseLineInput",
    "RecordInvitesSent",
    "RecordPurchase",
    "RegisterMember",
    "SetMemberRole",
    "UpdateMember",
    "camel",
    "parse",
]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid unicode (lone surrogate)") from None
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _is_id(value: str) -> str:
    if not ID_PATTERN.match(value):
        raise ValueError(f"is not a valid id: {value[:60]!r}")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Text = Annotated[str, AfterValidator(_clean_text)]
Id = Annotated[str, AfterValidator(_is_id)]
Name = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_clean_text), AfterValidator(_not_blank)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9]{6,20}$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class MoneyInput(_Command):
    amount: int = Field(ge=0, le=10**12, description="integer minor units (分)")
    currency: Currency = "CNY"


class RegisterMember(_Command):
    display_name: Name
    phone: Phone | None = None
    wechat_id: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    city: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    channel: Channel = Channel.APP
    level: int = Field(default=0, ge=0, le=10)
    invite_code: Annotated[str, Field(pattern=r"^[A-Z0-9]{4,16}$")] | None = None
    inviter_id: Id | None = None
    #: the fission campaign the invitation belongs to (needs an inviter)
    campaign_id: Id | None = None
    marketing_consent: bool = False
    profiling_consent: bool = False

    @field_validator("invite_code", mode="before")
    @classmethod
    def _upper(cls, code: object) -> object:
        """People type invite codes in any case."""
        return code.strip().upper() if isinstance(code, str) else code

    @model_validator(mode="after")
    def _one_inviter(self) -> RegisterMember:
        if self.invite_code is not None and self.inviter_id is not None:
            raise ValueError("give either inviteCode or inviterId, not both")
        if self.campaign_id is not None and self.invite_code is None and self.inviter_id is None:
            raise ValueError("campaignId needs an inviteCode or inviterId: a campaign counts invitations")
        return self


class UpdateMember(_Command):
    display_name: Name | None = None
    phone: Phone | None = None
    wechat_id: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    city: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    level: int | None = Field(default=None, ge=0, le=10)
    marketing_consent: bool | None = None
    profiling_consent: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> UpdateMember:
        if not self.changes():
            raise ValueError("nothing to update: give at least one field")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields to set, in graph property names."""
        return {camel(k): v for k, v in self.model_dump(exclude_none=True).items()}


class CreateCommunity(_Command):
    name: Name
    kind: CommunityKind = CommunityKind.INTEREST
    channel: CommunityChannel = CommunityChannel.APP_CIRCLE
    description: Annotated[Text, Field(max_length=2000)] | None = None


class CreateCampaign(_Command):
    name: Name
    kind: CampaignKind = CampaignKind.FISSION
    starts_at: datetime
    ends_at: datetime
    #: what the campaign costs (its ROI is (GMV − cost) / cost)
    cost: MoneyInput | None = None

    @model_validator(mode="after")
    def _window(self) -> CreateCampaign:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("startsAt and endsAt must carry a time zone")
        if self.ends_at <= self.starts_at:
            raise ValueError("endsAt must be after startsAt")
        return self


class RecordInvitesSent(_Command):
    campaign_id: Id
    member_id: Id
    count: int = Field(ge=1, le=10_000)


class CreateContent(_Command):
    community_id: Id
    kind: ContentKind = ContentKind.POST
    title: Annotated[Text, Field(max_length=200)] = ""
    body: Annotated[Text, Field(min_length=1, max_length=20000), AfterValidator(_not_blank)]
    topics: list[Annotated[Text, Field(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=10)


class AddComment(_Command):
    content_id: Id
    body: Annotated[Text, Field(min_length=1, max_length=5000), AfterValidator(_not_blank)]


class CreateProduct(_Command):
    sku: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    name: Annotated[Text, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
    category: Annotated[Text, Field(min_length=1, max_length=64), AfterValidator(_not_blank)]
    price: MoneyInput


class PurchaseLineInput(_Command):
    product_id: Id
    quantity: int = Field(ge=1, le=10000)
    unit_price: MoneyInput | None = None


class RecordPurchase(_Command):
    member_id: Id
    lines: list[PurchaseLineInput] = Field(min_length=1, max_length=100)
    channel: Channel = Channel.APP
    idempotency_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9:._-]{8,128}$")]
    at: datetime | None = None
    attributed_to: Id | None = None
    #: the campaign credited with the sale (its results count the purchase's GMV)
    campaign_id: Id | None = None

    @field_validator("at")
    @classmethod
    def _past(cls, at: datetime | None) -> datetime | None:
        if at is not None:
            if at.tzinfo is None:
                raise ValueError("at must carry a time zone")
            if at > datetime.now(UTC):
                raise ValueError("at must not be in the future")
        return at


class SetMemberRole(_Command):
    member_id: Id
    community_id: Id
    role: MembershipRole


def camel(name: str) -> str:
    """``snake_case`` as the schema spells it (``camelCase``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _field_path(loc: tuple[int | str, ...], prefix: str) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + camel(part)
    return path


C = TypeVar("C", bound=BaseModel)


def parse(command: type[C], data: Mapping[str, Any], *, prefix: str = "input") -> C:
    """Validate *data* (snake_case keys) into *command*, or raise ``ValidationFailed`` naming the
    first offending field as the client spelled it (``input.filter.anyOf[0].allOf[1].tags.tagIds[2]``)."""
    try:
        return command.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = tuple(p for p in first["loc"] if not str(p).startswith("function-"))
        field = _field_path(loc, prefix)
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ValidationFailed(f"{field}: {msg}", field=field) from None
