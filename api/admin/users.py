"""Users (docs/admin-api.md, Users): the User Management page's list, detail and
actions, through its selectors and services."""

from typing import Literal

from django.http import HttpRequest, QueryDict
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema

from api import auth
from api.errors import ApiError
from api.pagination import MAX_PAGE, page
from tokens import selectors, services
from tokens.filtersets import UserFilterSet
from tokens.views.bulk_review import bulk_preview

router = Router(tags=["users"])

TokenType = Literal["inference", "embedding"]
SORTS = {
    "email": "email",
    "id": "pk",
    "max_inference": "max_inference",
    "max_embedding": "max_embedding",
    "monthly_inference": "monthly_inference",
    "total_usage": "total_usage",
}
SortKey = Literal[tuple(f"{sign}{key}" for key in SORTS for sign in ("", "-"))]
MAX_TOKENS = 10**12


class UserOut(Schema):
    id: int
    email: str
    name: str
    role: str
    is_paid: bool
    is_banned: bool
    is_verified: bool
    has_mfa: bool
    max_inference: int
    max_embedding: int
    monthly_inference: int
    prev_month_inference: int
    total_usage: int


class UserPage(Schema):
    results: list[UserOut]
    next: str | None = Field(description="The cursor of the next page, or null.")


class BalanceOut(Schema):
    token_type: str
    period: str
    limit: int
    used: int
    held: int
    remaining: int
    overage: int


class UserDetailOut(UserOut):
    balances: list[BalanceOut]


class UserFilters(Schema):
    q: str | None = Field(None, max_length=200, description="Email or name words.")
    paid: Literal["yes", "no"] | None = None
    hide_banned: bool = False
    role: Literal["user", "admin"] | None = None
    verified: Literal["yes", "no"] | None = None
    sort: SortKey = "email"  # type: ignore[valid-type]
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(50, ge=1, le=MAX_PAGE)


class LimitIn(Schema):
    limit: int = Field(ge=0, le=MAX_TOKENS)
    allow_below_minimum: bool = False


class PaidIn(Schema):
    paid: bool


class BulkLimitIn(Schema):
    user_ids: list[int] = Field(min_length=1, max_length=1000)
    token_type: TokenType
    limit: int = Field(ge=0, le=MAX_TOKENS)
    allow_below_minimum: bool = False
    dry_run: bool = False


class BulkEffectOut(Schema):
    title: str
    summary: str
    pool_lines: list[str]
    refusal: str


class BulkResultOut(Schema):
    dry_run: bool
    effect: BulkEffectOut | None = None
    changed: int = 0


def _out(user) -> dict:
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.get_full_name(),
        "role": user.role,
        "is_paid": user.is_paid,
        "is_banned": user.is_banned,
        "is_verified": user.email_verified_at is not None,
        "has_mfa": user.has_mfa,
        "max_inference": user.max_inference,
        "max_embedding": user.max_embedding,
        "monthly_inference": user.monthly_inference,
        "prev_month_inference": user.prev_month_inference,
        "total_usage": user.total_usage,
    }


def _member(request: HttpRequest, user_id: int):
    """The organization's user or 404 (another organization's id does not exist
    here)."""
    return get_object_or_404(selectors.users_in(auth.organization(request)), pk=user_id)


def _detail(request: HttpRequest, user_id: int) -> dict:
    org = auth.organization(request)
    user = get_object_or_404(selectors.users_for_panel(org), pk=user_id)
    return {
        **_out(user),
        "balances": [
            {
                "token_type": b.token_type,
                "period": b.period.strftime("%Y-%m"),
                "limit": b.limit,
                "used": b.used,
                "held": b.held,
                "remaining": b.remaining,
                "overage": b.overage,
            }
            for b in selectors.user_balances(org, user)
        ],
    }


@router.get("/users", response=UserPage, auth=auth.READ, summary="List users")
def user_list(request: HttpRequest, filters: Query[UserFilters]):
    """The organization's users with the User Management page's filters, sorted on
    the server, one page after ``cursor``."""
    org = auth.organization(request)
    query = QueryDict(mutable=True)
    for name in ("q", "paid", "role", "verified"):
        if getattr(filters, name):
            query[name] = getattr(filters, name)
    if filters.hide_banned:
        query["hide_banned"] = "true"
    filterset = UserFilterSet(query, queryset=selectors.users_for_panel(org))
    if not filterset.is_valid():
        raise ApiError(400, "invalid_request", "Some filters are invalid.")
    field = SORTS[filters.sort.lstrip("-")]
    rows, cursor = page(
        filterset.qs,
        field=field,
        descending=filters.sort.startswith("-"),
        size=filters.limit,
        cursor=filters.cursor,
    )
    return {"results": [_out(u) for u in rows], "next": cursor}


@router.get(
    "/users/{user_id}", response=UserDetailOut, auth=auth.READ, summary="One user"
)
def user_detail(request: HttpRequest, user_id: int):
    """A user with this month's balance per token type."""
    return _detail(request, user_id)


@router.put(
    "/users/{user_id}/limits/{token_type}",
    response=UserDetailOut,
    auth=auth.WRITE,
    summary="Set a limit",
)
def user_set_limit(
    request: HttpRequest, user_id: int, token_type: TokenType, payload: LimitIn
):
    """Set the user's monthly limit of one token type (as the panel's limit form)."""
    services.allocation_set_limit(
        actor=auth.actor(request),
        user=_member(request, user_id),
        token_type=token_type,
        limit=payload.limit,
        allow_below_minimum=payload.allow_below_minimum,
    )
    return _detail(request, user_id)


@router.put(
    "/users/{user_id}/paid",
    response=UserDetailOut,
    auth=auth.WRITE,
    summary="Paid on or off",
)
def user_set_paid(request: HttpRequest, user_id: int, payload: PaidIn):
    """Reactivate (paid on) or deactivate (paid off) a user, as the panel does."""
    service = services.user_reactivate if payload.paid else services.user_deactivate
    service(actor=auth.actor(request), user=_member(request, user_id))
    return _detail(request, user_id)


@router.post(
    "/users/{user_id}/ban", response=UserDetailOut, auth=auth.WRITE, summary="Ban"
)
def user_ban(request: HttpRequest, user_id: int):
    services.user_ban(actor=auth.actor(request), user=_member(request, user_id))
    return _detail(request, user_id)


@router.post(
    "/users/{user_id}/unban", response=UserDetailOut, auth=auth.WRITE, summary="Unban"
)
def user_unban(request: HttpRequest, user_id: int):
    services.user_unban(actor=auth.actor(request), user=_member(request, user_id))
    return _detail(request, user_id)


@router.post(
    "/users/bulk/limit",
    response=BulkResultOut,
    auth=auth.WRITE,
    summary="Set a limit for many users",
)
def users_bulk_set_limit(request: HttpRequest, payload: BulkLimitIn):
    """Set one limit for the listed users in one transaction (refused whole). With
    ``dry_run`` nothing changes and the answer is the effect the panel's bulk
    confirmation page shows. Ids outside the organization are a 404."""
    org, actor = auth.organization(request), auth.actor(request)
    wanted = set(payload.user_ids)
    users = list(selectors.users_in(org).filter(pk__in=wanted).order_by("email"))
    if len(users) != len(wanted):
        raise ApiError(404, "not_found", "No such object in your organization.")
    data = {
        "action": "set_limit",
        "token_type": payload.token_type,
        "limit": payload.limit,
        "confirm_below_minimum": payload.allow_below_minimum,
    }
    if payload.dry_run:
        effect = bulk_preview(org, actor, users, data)
        return {
            "dry_run": True,
            "effect": {
                "title": effect.title,
                "summary": effect.summary,
                "pool_lines": list(effect.pool_lines),
                "refusal": effect.refusal,
            },
        }
    changes = services.allocations_bulk_set_limit(
        actor=actor,
        organization=org,
        users=users,
        token_type=payload.token_type,
        limit=payload.limit,
        allow_below_minimum=payload.allow_below_minimum,
    )
    return {"dry_run": False, "changed": len({c.user_id for c in changes})}
