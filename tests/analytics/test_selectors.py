"""analytics.selectors on ranges that do not follow month edges.

Active and top users read ``MonthlyUsage`` for the whole months of a range and
``DailyUsage`` for the days before and after them; organization-wide figures read
``OrgDailyUsage``. Usage is recorded through the metering service (the real write
path), and every figure is compared with sums of the raw ``UsageEvent`` rows.
"""

import datetime as dt
from collections import defaultdict

import pytest

from analytics import selectors
from analytics.selectors import StatsPeriod
from tests.factories import AIModelFactory, UserFactory
from tokens.models import UsageEvent
from tokens.services import metering

pytestmark = pytest.mark.django_db

TYPES = ("inference", "embedding")
D = dt.date


@pytest.fixture
def usage(org, other_org, service_key):
    """Usage in June to September 2026 of five Acme members (and one of Globex,
    which must never count), on days around and inside the months."""
    AIModelFactory(key="chat")
    AIModelFactory(key="embed", token_type="embedding")
    people = {
        name: UserFactory(organization=org, email=f"{name}@acme.example")
        for name in ("ava", "bob", "cy", "dee", "eve")
    }
    stranger = UserFactory(organization=other_org, email="gus@globex.example")
    plan = [
        # ava: both types; in the edge months before and after the range too, and
        # on days of those months outside the range.
        ("ava", "chat", D(2026, 6, 10), 900),
        ("ava", "chat", D(2026, 6, 20), 100),
        ("ava", "chat", D(2026, 7, 5), 200),
        ("ava", "chat", D(2026, 7, 28), 300),
        ("ava", "embed", D(2026, 8, 31), 400),
        ("ava", "chat", D(2026, 9, 5), 500),
        ("ava", "chat", D(2026, 9, 20), 600),
        # bob: embedding in July, inference at the end of the range.
        ("bob", "embed", D(2026, 7, 10), 700),
        ("bob", "chat", D(2026, 9, 9), 50),
        # cy and dee: the same tokens in every range (the tie-break is the email);
        # dee first, so the order of the rows is not the email's.
        ("dee", "chat", D(2026, 7, 15), 250),
        ("cy", "chat", D(2026, 7, 15), 250),
        # eve: before the range's whole months and inside one, never after.
        ("eve", "chat", D(2026, 6, 25), 80),
        ("eve", "chat", D(2026, 8, 14), 90),
        ("eve", "embed", D(2026, 8, 14), 10),
    ]
    events = [
        {
            "event_id": f"e-{n}",
            "user": people[name].email,
            "model": model,
            "token_type": "embedding" if model == "embed" else "inference",
            "prompt_tokens": tokens,
            "completion_tokens": 0,
            "occurred_at": f"{day.isoformat()}T{10 + n % 12:02d}:30:00+00:00",
        }
        for n, (name, model, day, tokens) in enumerate(plan)
    ]
    events += [
        {
            "event_id": f"g-{day}",
            "user": stranger.email,
            "model": "chat",
            "token_type": "inference",
            "prompt_tokens": 5_000,
            "completion_tokens": 0,
            "occurred_at": f"{day.isoformat()}T12:00:00+00:00",
        }
        for day in (D(2026, 6, 20), D(2026, 7, 15), D(2026, 9, 5))
    ]
    result = metering.usage_record(key=service_key[0], events=events)
    assert result.as_dict()["recorded"] == len(events)
    return people


def from_events(org, start, end, types):
    """Active and top users of the range, from the raw events."""
    events = [
        e
        for e in UsageEvent.objects.filter(organization=org).select_related("user")
        if start <= e.occurred_at.astimezone(dt.UTC).date() <= end
        and e.token_type in types
    ]
    per_user = defaultdict(lambda: {"tokens": 0, "events": 0, "last": None})
    for e in events:
        day = e.occurred_at.astimezone(dt.UTC).date()
        cell = per_user[e.user.email]
        cell["tokens"] += e.tokens
        cell["events"] += 1
        cell["last"] = max(cell["last"] or day, day)
    return {
        "used": {t: sum(e.tokens for e in events if e.token_type == t) for t in TYPES},
        "active_by_type": {
            t: len({e.user_id for e in events if e.token_type == t}) for t in TYPES
        },
        "active": len({e.user_id for e in events}),
        "top": [
            (email, c["tokens"], c["events"], c["last"])
            for email, c in sorted(
                per_user.items(), key=lambda item: (-item[1]["tokens"], item[0])
            )
        ],
        "events": events,
    }


RANGES = {
    "partial months at both ends": (D(2026, 6, 15), D(2026, 9, 10)),
    "inside one month": (D(2026, 7, 3), D(2026, 7, 20)),
    "two partial months, no whole one": (D(2026, 6, 15), D(2026, 7, 10)),
    "whole months": (D(2026, 7, 1), D(2026, 8, 31)),
    "a whole month, then part of one": (D(2026, 7, 1), D(2026, 9, 10)),
    "part of a month, then a whole one": (D(2026, 6, 15), D(2026, 8, 31)),
}


@pytest.mark.parametrize("which", list(RANGES))
@pytest.mark.parametrize("token_type", ["all", "inference", "embedding"])
def test_users_and_usage_are_exact_for_any_range(org, usage, which, token_type):
    start, end = RANGES[which]
    types = TYPES if token_type == "all" else (token_type,)
    period = StatsPeriod(start, end, types)
    want = from_events(org, start, end, types)
    assert want["events"], "the range has usage"

    kpis = selectors.kpis(org, period)
    assert {t: kpis.used.by_type[t] for t in types} == {
        t: want["used"][t] for t in types
    }
    assert {t: kpis.active_users.by_type[t] for t in types} == {
        t: want["active_by_type"][t] for t in types
    }
    assert kpis.active_users.total == want["active"]

    top = selectors.top_users(org, period, total=kpis.used.total)
    assert [(u.email, u.tokens, u.events, u.last_active) for u in top] == want["top"]

    days = selectors.daily_usage(org, period)
    assert sum(d.total for d in days) == kpis.used.total
    models = selectors.usage_by_model(org, period)
    assert sum(m.tokens for m in models) == kpis.used.total
    assert sum(m.events for m in models) == len(want["events"])


def test_partial_months_at_both_ends_leave_out_the_days_outside(org, usage):
    period = StatsPeriod(D(2026, 6, 15), D(2026, 9, 10))
    top = {u.email: u for u in selectors.top_users(org, period, total=1)}
    # 100 (Jun 20) + 200 + 300 (July) + 400 (August) + 500 (Sep 5); not Jun 10 or
    # Sep 20, though they are in the same months.
    assert (top["ava@acme.example"].tokens, top["ava@acme.example"].events) == (
        1_500,
        5,
    )
    assert top["ava@acme.example"].last_active == D(2026, 9, 5)


def test_last_active_is_the_latest_of_whole_and_edge_months(org, usage):
    period = StatsPeriod(D(2026, 6, 15), D(2026, 9, 10))
    top = {u.email: u for u in selectors.top_users(org, period, total=1)}
    # eve: an edge day (Jun 25) and a day of a whole month (Aug 14).
    assert top["eve@acme.example"].last_active == D(2026, 8, 14)
    # bob: a whole month (Jul 10), then an edge day (Sep 9).
    assert top["bob@acme.example"].last_active == D(2026, 9, 9)


def test_a_user_of_both_types_is_one_active_user(org, usage):
    period = StatsPeriod(D(2026, 8, 1), D(2026, 8, 31))
    active = selectors.kpis(org, period).active_users
    # ava (embedding) and eve (both types) in August.
    assert active.by_type == {"inference": 1, "embedding": 2}
    assert active.total == 2


def test_top_users_with_the_same_tokens_are_ordered_by_email(org, usage):
    for start, end in (
        (D(2026, 7, 1), D(2026, 7, 31)),
        (D(2026, 7, 15), D(2026, 7, 15)),
        (D(2026, 6, 30), D(2026, 8, 1)),
    ):
        top = selectors.top_users(org, StatsPeriod(start, end), total=1)
        tied = [u.email for u in top if u.tokens == 250]
        assert tied == ["cy@acme.example", "dee@acme.example"]
    # A tie across the cut: the first by email is in, the other is not.
    july = StatsPeriod(D(2026, 7, 1), D(2026, 7, 31))
    top = selectors.top_users(org, july, total=1, limit=3)
    assert [(u.email, u.tokens) for u in top] == [
        ("bob@acme.example", 700),
        ("ava@acme.example", 500),
        ("cy@acme.example", 250),
    ]


def test_another_organizations_usage_never_counts(org, other_org, usage):
    period = StatsPeriod(D(2026, 6, 15), D(2026, 9, 10))
    emails = [u.email for u in selectors.top_users(org, period, total=1)]
    assert "gus@globex.example" not in emails
    theirs = selectors.top_users(other_org, period, total=1)
    assert [(u.email, u.tokens, u.last_active) for u in theirs] == [
        ("gus@globex.example", 15_000, D(2026, 9, 5))
    ]


def _days(part):
    first, last = part
    return None if last < first else (first, last)


@pytest.mark.parametrize(
    ("start", "end", "before", "months", "after"),
    [
        (
            D(2026, 6, 15),
            D(2026, 9, 10),
            (D(2026, 6, 15), D(2026, 6, 30)),
            (D(2026, 7, 1), D(2026, 8, 31)),
            (D(2026, 9, 1), D(2026, 9, 10)),
        ),
        (D(2026, 7, 1), D(2026, 8, 31), None, (D(2026, 7, 1), D(2026, 8, 31)), None),
        (D(2026, 7, 3), D(2026, 7, 20), (D(2026, 7, 3), D(2026, 7, 20)), None, None),
        (D(2026, 7, 1), D(2026, 7, 20), (D(2026, 7, 1), D(2026, 7, 20)), None, None),
        (
            D(2026, 6, 15),
            D(2026, 7, 31),
            (D(2026, 6, 15), D(2026, 6, 30)),
            (D(2026, 7, 1), D(2026, 7, 31)),
            None,
        ),
        (D(2026, 6, 15), D(2026, 7, 10), (D(2026, 6, 15), D(2026, 7, 10)), None, None),
        (D(2024, 2, 1), D(2024, 2, 29), None, (D(2024, 2, 1), D(2024, 2, 29)), None),
    ],
)
def test_a_range_is_whole_months_and_the_days_around_them(
    start, end, before, months, after
):
    split = selectors._split(start, end)
    assert (_days(split.before), _days(split.months), _days(split.after)) == (
        before,
        months,
        after,
    )
