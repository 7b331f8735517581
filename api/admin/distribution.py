"""Token distribution (docs/admin-api.md, Distribution): the Token Distribution
page's policy (read, change, apply a preset), preview and run, through
``tokens.services.distribution`` (which validates every value and checks its
actor)."""

import datetime as dt
from decimal import Decimal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from api import auth
from tokens.services import distribution

router = Router(tags=["distribution"])


class PolicyOut(Schema):
    preset: str
    floor_inference: int
    floor_embedding: int
    ceiling: int | None
    auto_increase_enabled: bool
    triggers: list[float]
    cooldown_minutes: int
    bump_mode: str
    bump_value: float
    tier_bumps: list[float]
    bump_cap_at_current: bool
    reclamation_enabled: bool
    lookback_days: int
    headroom_percent: int
    schedule: str
    schedule_hour: int
    schedule_weekday: int
    schedule_day: int


class PolicyPatch(Schema):
    """Only the fields sent change (``ceiling: null`` = unlimited); the service
    checks every value and the rules across fields, all errors at once."""

    floor_inference: int | None = Field(None, ge=0, le=10**14)
    floor_embedding: int | None = Field(None, ge=0, le=10**14)
    ceiling: int | None = Field(None, ge=0, le=10**14)
    auto_increase_enabled: bool | None = None
    triggers: list[float] | None = Field(None, max_length=10)
    cooldown_minutes: int | None = Field(None, ge=0, le=525_600)
    bump_mode: str | None = Field(None, max_length=20)
    bump_value: Decimal | None = Field(None, ge=0, le=10**14, decimal_places=1)
    tier_bumps: list[float] | None = Field(None, max_length=10)
    bump_cap_at_current: bool | None = None
    reclamation_enabled: bool | None = None
    lookback_days: int | None = Field(None, ge=0, le=3650)
    headroom_percent: int | None = Field(None, ge=0, le=10_000)
    schedule: str | None = Field(None, max_length=20)
    schedule_hour: int | None = Field(None, ge=0, le=23)
    schedule_weekday: int | None = Field(None, ge=0, le=6)
    schedule_day: int | None = Field(None, ge=1, le=28)


class PresetIn(Schema):
    preset: str = Field(max_length=20)


class PlanIn(Schema):
    distribute_equally: bool = False


class PlanChangeOut(Schema):
    user_id: int
    email: str
    token_type: str
    current: int
    new_limit: int
    delta: int
    reason: str


class PlanOut(Schema):
    changes: list[PlanChangeOut]
    totals: dict
    shortfall: dict[str, int]


class RunOut(Schema):
    id: int
    trigger: str
    distribute_equally: bool
    started_at: dt.datetime
    finished_at: dt.datetime | None
    summary: dict


FIELDS = ("preset", *distribution.PRESET_FIELDS, *distribution.OTHER_FIELDS)


def _policy_out(policy) -> dict:
    return {name: getattr(policy, name) for name in FIELDS}


@router.get(
    "/distribution/policy", response=PolicyOut, auth=auth.READ, summary="The policy"
)
def policy_read(request: HttpRequest):
    return _policy_out(
        distribution.policy_ensure(organization=auth.organization(request))
    )


@router.patch(
    "/distribution/policy",
    response=PolicyOut,
    auth=auth.WRITE,
    summary="Change the policy",
)
def policy_update(request: HttpRequest, payload: PolicyPatch):
    """Change some settings (as the page's forms); a preset-controlled field
    switches the badge to Custom."""
    changes = payload.dict(exclude_unset=True)
    if "bump_value" in changes and changes["bump_value"] is not None:
        changes["bump_value"] = str(changes["bump_value"])
    return _policy_out(
        distribution.policy_update(
            actor=auth.actor(request),
            organization=auth.organization(request),
            changes=changes,
        )
    )


@router.post(
    "/distribution/preset",
    response=PolicyOut,
    auth=auth.WRITE,
    summary="Apply a preset",
)
def preset_apply(request: HttpRequest, payload: PresetIn):
    return _policy_out(
        distribution.policy_apply_preset(
            actor=auth.actor(request),
            organization=auth.organization(request),
            preset=payload.preset,
        )
    )


def _plan_out(plan) -> dict:
    return {
        "changes": [
            {
                "user_id": c.user_id,
                "email": c.email,
                "token_type": c.token_type,
                "current": c.current,
                "new_limit": c.new_limit,
                "delta": c.delta,
                "reason": c.reason,
            }
            for c in plan.changes
        ],
        "totals": {str(k): v for k, v in plan.totals.items()},
        "shortfall": {str(k): v for k, v in plan.shortfall.items()},
    }


@router.get(
    "/distribution/preview",
    response=PlanOut,
    auth=auth.READ,
    summary="Preview a run",
)
def plan_preview(request: HttpRequest, options: Query[PlanIn]):
    """What a run would change now (the page's Preview): nothing is written."""
    return _plan_out(
        distribution.distribution_plan(
            organization=auth.organization(request),
            distribute_equally=options.distribute_equally,
        )
    )


@router.post(
    "/distribution/run", response=RunOut, auth=auth.WRITE, summary="Run it now"
)
def run_now(request: HttpRequest, payload: PlanIn):
    run = distribution.distribution_run(
        actor=auth.actor(request),
        organization=auth.organization(request),
        distribute_equally=payload.distribute_equally,
    )
    return {
        "id": run.pk,
        "trigger": run.trigger,
        "distribute_equally": run.distribute_equally,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "summary": run.summary,
    }
