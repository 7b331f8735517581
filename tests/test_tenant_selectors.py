"""Class-wide tenant isolation of reads (issue 14, defect 1): every public selector,
and every page that shows a user's figures, seen from organization B shows nothing
of organization A for a user who moved from A to B.

``SELECTORS`` must name every public function of the selector modules: a new
selector fails ``test_every_selector_is_listed`` until it is added here, with the
call that B's admin's pages make."""

import dataclasses
import datetime as dt
import importlib
import inspect
import pkgutil
from unittest import mock

import pytest
from django.db import connection
from django.db.models import F, Model, QuerySet

from analytics import selectors as analytics_selectors
from analytics.selectors import StatsPeriod
from tests.conftest import sign_in
from tests.tenant_world import A_MARKERS, B_NOVEMBER, NOW, build_moved_user
from tokens import selectors as token_selectors
from tokens.models import TokenRequest
from tokens.selectors import forecasts as forecast_selectors
from tokens.services.pool import membership as pool_membership
from tokens.services.pool import plans as pool_plans
from tokens.views.bulk_review import bulk_review

# The plans of limit changes read the pool and limits of the organization they are
# given, as selectors do (tokens/services/pool/plans.py and membership.py).
MODULES = (token_selectors, analytics_selectors, pool_plans, pool_membership)
NOVEMBER = dt.date(2026, 11, 1)
OCTOBER = dt.date(2026, 10, 1)
WHOLE = StatsPeriod(OCTOBER, dt.date(2026, 11, 30))


def _bulk(w):
    """The bulk confirmation page's plans (tokens/views/bulk_review.py)."""
    users = [w.mover]
    return [
        bulk_review(w.b, w.b_admin, users, {"action": action})
        for action in ("paid_on", "paid_off", "ban")
    ] + [
        bulk_review(
            w.b,
            w.b_admin,
            users,
            {"action": "set_limit", "token_type": t, "limit": 300_000},
        )
        for t in token_selectors.TYPES
    ]


def _limits(w):
    return pool_plans.current_limits(w.b, [w.mover])


def _current(w, token_type="inference"):
    return _limits(w)[(w.mover.pk, token_type)]


def _copy(w):
    sql, params = analytics_selectors.usage_events_copy(w.b, WHOLE)
    assert params[0] == w.b.pk, "the COPY reads B's events only"
    if connection.vendor != "postgresql":
        return params
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("COPY (", "", 1).rsplit(") TO STDOUT", 1)[0], params)
        return cursor.fetchall()


# Every public selector: how B's pages call it (``w``: the world), or None with the
# reason it reads no tenant table.
SELECTORS = {
    token_selectors: {
        "purchases_active_in": lambda w: token_selectors.purchases_active_in(
            w.b, NOVEMBER
        ),
        "pools": lambda w: token_selectors.pools(w.b, NOVEMBER),
        "allocated": lambda w: token_selectors.allocated(w.b),
        "org_summary": lambda w: token_selectors.org_summary(w.b, NOVEMBER),
        "user_balance": lambda w: token_selectors.user_balance(
            w.b, w.mover, "inference", NOVEMBER
        ),
        "user_balances": lambda w: token_selectors.user_balances(
            w.b, w.mover, NOVEMBER
        ),
        "user_usage_by_model": lambda w: token_selectors.user_usage_by_model(
            w.b, w.mover, NOVEMBER
        ),
        "usage_events_for_export": lambda w: token_selectors.usage_events_for_export(
            w.b, OCTOBER, dt.date(2026, 11, 30)
        ),
        "users_in": lambda w: token_selectors.users_in(w.b),
        "users_for_panel": lambda w: token_selectors.users_for_panel(w.b, NOVEMBER),
        # An annotation: the mover's last usage in A is not their last activity in B.
        "last_active": lambda w: (
            token_selectors.users_in(w.b)
            .annotate(last_active=token_selectors.last_active(w.b))
            .values_list("email", "last_active")
        ),
        "user_limits": lambda w: token_selectors.user_limits(w.b, w.mover),
        "allocation_history": lambda w: token_selectors.allocation_history(
            w.b, w.mover
        ),
        "recent_usage": lambda w: token_selectors.recent_usage(w.b, w.mover),
        "token_requests_in": lambda w: token_selectors.token_requests_in(w.b),
        "token_requests_for_panel": lambda w: token_selectors.token_requests_for_panel(
            w.b, "all"
        ),
        "token_request_counts": lambda w: token_selectors.token_request_counts(w.b),
        "pending_request_count": lambda w: token_selectors.pending_request_count(w.b),
        "user_token_requests": lambda w: token_selectors.user_token_requests(
            w.b, w.mover
        ),
        "auto_approval_rule": lambda w: token_selectors.auto_approval_rule(w.b),
        "overrides_in": lambda w: token_selectors.overrides_in(w.b),
        "recent_runs": lambda w: token_selectors.recent_runs(w.b),
        # tokens/selectors/forecasts.py
        "org_forecasts": lambda w: forecast_selectors.org_forecasts(w.b, NOW),
        "daily_projection": None,  # a forecast already made: no table read
        "user_forecasts": lambda w: forecast_selectors.user_forecasts(
            w.b, w.mover, {"inference": 300_000, "embedding": 300_000}, NOW
        ),
        "projected_annotation": lambda w: list(
            token_selectors.users_for_panel(w.b, NOVEMBER)
            .annotate(
                projected=forecast_selectors.projected_annotation(
                    w.b, "inference", F("monthly_inference"), "max_inference", NOW
                )
            )
            .values_list("projected", flat=True)
        ),
        "with_limit_projection": lambda w: list(
            forecast_selectors.with_limit_projection(
                token_selectors.users_for_panel(w.b, NOVEMBER), w.b, NOW
            ).values_list("likely_percent", flat=True)
        ),
        "alerts_for_panel": lambda w: forecast_selectors.alerts_for_panel(w.b),
    },
    analytics_selectors: {
        "months_between": None,  # dates only
        "purchased": lambda w: analytics_selectors.purchased(w.b, WHOLE.months),
        "kpis": lambda w: analytics_selectors.kpis(w.b, WHOLE),
        "daily_usage": lambda w: analytics_selectors.daily_usage(w.b, WHOLE),
        "monthly_usage": lambda w: analytics_selectors.monthly_usage(w.b, WHOLE),
        "usage_by_model": lambda w: analytics_selectors.usage_by_model(w.b, WHOLE),
        "top_users": lambda w: [
            analytics_selectors.top_users(w.b, period, total=B_NOVEMBER)
            for period in (WHOLE, StatsPeriod(NOVEMBER, dt.date(2026, 11, 30)))
        ],
        "user_usage_for_export": lambda w: analytics_selectors.user_usage_for_export(
            w.b, WHOLE
        ),
        "usage_events_for_export": lambda w: (
            analytics_selectors.usage_events_for_export(w.b, WHOLE)
        ),
        "usage_events_copy": _copy,
    },
    pool_plans: {
        "current_limits": _limits,
        "plan_set_limit": lambda w: pool_plans.plan_set_limit(
            w.b,
            actor=w.b_admin,
            user=w.mover,
            token_type="inference",
            limit=_current(w) + 1_000,
            current=_current(w),
        ),
        "plan_bulk_set_limit": _bulk,
        "plan_set_paid": lambda w: pool_plans.plan_set_paid(
            w.b,
            actor=w.b_admin,
            users=[w.mover],
            paid=False,
            partial=False,
            limits=_limits(w),
        ),
        "plan_request_approval": lambda w: pool_plans.plan_request_approval(
            w.b,
            actor=w.b_admin,
            request=TokenRequest(
                organization=w.b,
                user=w.mover,
                token_type="inference",
                amount=10_000,
                reason="More, please.",
            ),
            user=w.mover,
            amount=10_000,
            current=_current(w),
        ),
    },
    pool_membership: {
        "plan_member_join": lambda w: pool_membership.plan_member_join(
            w.b,
            actor=None,
            user=w.mover,
            role="user",
            current={t: _current(w, t) for t in token_selectors.TYPES},
        ),
        "plan_member_leave": lambda w: pool_membership.plan_member_leave(
            w.b,
            actor=None,
            user=w.mover,
            current={t: _current(w, t) for t in token_selectors.TYPES},
        ),
        "plan_activation": lambda w: pool_membership.plan_activation(
            w.b,
            actor=None,
            users=[w.mover],
            shares={t: 100_000 for t in token_selectors.TYPES},
            limits=_limits(w),
        ),
    },
}


def _public_functions(module) -> set[str]:
    """The public functions defined in ``module`` or, for a package, in any of its
    modules (``tokens.selectors`` is one module per subdomain)."""
    modules = [module]
    if hasattr(module, "__path__"):
        modules += [
            importlib.import_module(f"{module.__name__}.{info.name}")
            for info in pkgutil.iter_modules(module.__path__)
        ]
    return {
        name
        for each in modules
        for name, value in inspect.getmembers(each, inspect.isfunction)
        if value.__module__ == each.__name__ and not name.startswith("_")
    }


def test_every_selector_is_listed():
    for module in MODULES:
        assert _public_functions(module) == set(SELECTORS[module]), (
            f"{module.__name__}: list every public selector in SELECTORS with the "
            "call B's pages make (or None and why it reads no tenant table)."
        )


def dump(value, depth: int = 0) -> str:
    """Everything a read returned, as text: querysets evaluated, model instances
    with their fields, annotations and the related rows fetched with them (a few
    levels deep: a cached reverse relation points back)."""
    if depth > 4:
        return ""
    if isinstance(value, QuerySet):
        value = list(value)
    if isinstance(value, Model):
        fields = {k: v for k, v in vars(value).items() if not k.startswith("_")}
        related = list(value._state.fields_cache.values())
        return repr(fields) + dump(related, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        public = [getattr(value, n) for n in dir(value) if not n.startswith("_")]
        return repr(value) + dump(public, depth + 1)
    if isinstance(value, list | tuple | set):
        return "[" + ", ".join(dump(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{k!r}: {dump(v, depth + 1)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return repr(value)


@pytest.fixture
def moved(db):
    return build_moved_user()


CASES = [
    pytest.param(module, name, id=f"{module.__name__.split('.')[0]}.{name}")
    for module in MODULES
    for name in sorted(SELECTORS[module])
    if SELECTORS[module][name] is not None
]


@pytest.mark.parametrize(("module", "name"), CASES)
def test_selector_shows_nothing_of_the_organization_the_user_left(moved, module, name):
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        text = dump(SELECTORS[module][name](moved))
    leaked = [marker for marker in A_MARKERS if marker in text]
    assert not leaked, f"{name} shows organization A's {leaked}: {text[:2000]}"


def _pages(w):
    detail = f"/panel/users/{w.mover.pk}/"
    return [
        "/panel/users/",
        "/panel/users/export.csv",
        detail,
        f"/panel/users/{w.mover.pk}/limits/inference/",
        "/panel/requests/?status=all",
        "/panel/statistics/?from=2026-10-01&to=2026-11-30",
        "/panel/statistics/export/users.csv?from=2026-10-01&to=2026-11-30",
        "/panel/statistics/export/events.csv?from=2026-10-01&to=2026-11-30",
        "/panel/activity/",
        "/panel/activity/?tab=audit",
        "/panel/distribution/",
        "/panel/alerts/",
    ]


def _text(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def test_pages_of_the_new_organization_show_nothing_of_the_old_one(moved):
    admin = sign_in(moved.b_admin, mfa=True)
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        for url in _pages(moved):
            response = admin.get(url)
            assert response.status_code == 200, url
            text = _text(response)
            leaked = [marker for marker in A_MARKERS if marker in text]
            assert not leaked, f"{url} shows organization A's {leaked}"
        me = sign_in(moved.mover).get("/me/")
    assert me.status_code == 200
    leaked = [marker for marker in A_MARKERS if marker in me.content.decode()]
    assert not leaked, f"/me/ shows organization A's {leaked}"
    # The page shows B's own figure: the test looks where A's would be.
    assert f"{B_NOVEMBER:,}" in me.content.decode()


def test_the_old_organization_has_no_page_for_the_user_and_the_new_counts_its_own(
    moved,
):
    """A's panel has no page for a user who left (404); B's users table shows B's
    usage only: this month, previous month (A's October is not B's) and total."""
    a_admin = sign_in(moved.a_admin, mfa=True)
    assert a_admin.get(f"/panel/users/{moved.mover.pk}/").status_code == 404
    row = token_selectors.users_for_panel(moved.b, NOVEMBER).get(pk=moved.mover.pk)
    assert (row.monthly_inference, row.prev_month_inference, row.total_usage) == (
        B_NOVEMBER,
        0,
        B_NOVEMBER,
    )
