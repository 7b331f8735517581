"""Token requests (docs/admin-api.md, Token requests): the Token Requests page's
queue, approve and deny, through its selectors and services."""

import datetime as dt
from typing import Literal

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema

from api import auth
from api.pagination import MAX_PAGE
from api.pagination import page as cursor_page
from tokens import selectors
from tokens.services.requests import token_request_approve, token_request_deny

router = Router(tags=["token requests"])


class RequestOut(Schema):
    id: int
    user_id: int
    user_email: str
    token_type: str
    amount: int
    reason: str
    status: str
    approved_amount: int | None
    admin_note: str
    decided_by: str | None
    decided_at: dt.datetime | None
    auto_approved: bool
    created_at: dt.datetime


class RequestPage(Schema):
    results: list[RequestOut]
    next: str | None


class RequestFilters(Schema):
    status: Literal["pending", "approved", "denied", "all"] = "pending"
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(50, ge=1, le=MAX_PAGE)


class ApproveIn(Schema):
    amount: int = Field(ge=1, le=10**12)
    note: str = Field("", max_length=500)


class DenyIn(Schema):
    note: str = Field("", max_length=500)


def _out(row) -> dict:
    return {
        "id": row.pk,
        "user_id": row.user_id,
        "user_email": row.user.email,
        "token_type": row.token_type,
        "amount": row.amount,
        "reason": row.reason,
        "status": row.status,
        "approved_amount": row.approved_amount,
        "admin_note": row.admin_note,
        "decided_by": row.decided_by.email if row.decided_by else None,
        "decided_at": row.decided_at,
        "auto_approved": row.auto_approved,
        "created_at": row.created_at,
    }


def _one(request: HttpRequest, request_id: int):
    org = auth.organization(request)
    return get_object_or_404(
        selectors.token_requests_for_panel(org, "all"), pk=request_id
    )


@router.get(
    "/token-requests",
    response=RequestPage,
    auth=auth.READ,
    summary="List token requests",
)
def request_list(request: HttpRequest, filters: Query[RequestFilters]):
    """One status's requests (or all), newest first."""
    rows, cursor = cursor_page(
        selectors.token_requests_for_panel(auth.organization(request), filters.status),
        field="created_at",
        descending=True,
        size=filters.limit,
        cursor=filters.cursor,
    )
    return {"results": [_out(r) for r in rows], "next": cursor}


@router.post(
    "/token-requests/{request_id}/approve",
    response=RequestOut,
    auth=auth.WRITE,
    summary="Approve",
)
def request_approve(request: HttpRequest, request_id: int, payload: ApproveIn):
    """Approve a pending request for ``amount`` tokens (the user's limit rises by
    it at once), with an optional note for the user."""
    token_request_approve(
        actor=auth.actor(request),
        request=_one(request, request_id),
        amount=payload.amount,
        note=payload.note,
    )
    return _out(_one(request, request_id))


@router.post(
    "/token-requests/{request_id}/deny",
    response=RequestOut,
    auth=auth.WRITE,
    summary="Deny",
)
def request_deny(request: HttpRequest, request_id: int, payload: DenyIn):
    token_request_deny(
        actor=auth.actor(request), request=_one(request, request_id), note=payload.note
    )
    return _out(_one(request, request_id))
