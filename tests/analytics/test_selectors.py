"""analytics.selectors on ranges that do or do not follow month edges.

Active and top users read ``MonthlyUsage`` (one row per user and month) for the whole
months of a range and ``DailyUsage`` for the days before and after them; a range of
whole months reads ``MonthlyUsage`` only, a single whole month of every type through
its index sorted by tokens. Organization-wide figures read ``OrgDailyUsage``. Usage is
recorded through the metering service (the real write path), and every figure is
compared with sums of the raw ``UsageEvent`` rows.
"""

import datetime as dt
from collections import defaultdict

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

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


# --- one row per user and month: the paths of active and top users -----------------


@pytest.fixture
def crowd(org, other_org, service_key):
    """October 2026: fourteen Acme members. p1 to p9 rank 1 to 9 by tokens; zed,
    kim and lee tie at the 10th place (kim with both types, lee with embedding
    only); nil used 0 tokens; ivy used inference early and embedding late in the
    month. Around October: p1 on 30 September, lee on 1 November; Globex's biggest
    user in October must never count."""
    AIModelFactory(key="chat")
    AIModelFactory(key="embed", token_type="embedding")
    plan = [
        *((f"p{n}", "chat", D(2026, 10, n), 10_000 - 500 * n) for n in range(1, 10)),
        ("p2", "embed", D(2026, 10, 25), 3),
        ("zed", "chat", D(2026, 10, 12), 1_000),
        ("kim", "chat", D(2026, 10, 8), 600),
        ("kim", "embed", D(2026, 10, 30), 400),
        ("lee", "embed", D(2026, 10, 14), 1_000),
        ("nil", "chat", D(2026, 10, 15), 0),
        ("ivy", "chat", D(2026, 10, 3), 200),
        ("ivy", "embed", D(2026, 10, 20), 100),
        ("p1", "chat", D(2026, 9, 30), 100),
        ("lee", "embed", D(2026, 11, 1), 50),
    ]
    people = {
        name: UserFactory(organization=org, email=f"{name}@acme.example")
        for name in dict.fromkeys(name for name, *_rest in plan)
    }
    stranger = UserFactory(organization=other_org, email="gus@globex.example")
    events = [
        {
            "event_id": f"c-{n}",
            "user": people[name].email,
            "model": model,
            "token_type": "embedding" if model == "embed" else "inference",
            "prompt_tokens": tokens,
            "completion_tokens": 0,
            "occurred_at": f"{day.isoformat()}T{8 + n % 12:02d}:00:00+00:00",
        }
        for n, (name, model, day, tokens) in enumerate(plan)
    ]
    events.append(
        {
            "event_id": "c-globex",
            "user": stranger.email,
            "model": "chat",
            "token_type": "inference",
            "prompt_tokens": 99_000,
            "completion_tokens": 0,
            "occurred_at": "2026-10-10T12:00:00+00:00",
        }
    )
    # In batches of one type at a time, then the other: the monthly rows are
    # written by several upserts.
    for token_type in TYPES:
        batch = [e for e in events if e["token_type"] == token_type]
        result = metering.usage_record(key=service_key[0], events=batch)
        assert result.as_dict()["recorded"] == len(batch)
    return people


OCTOBER = (D(2026, 10, 1), D(2026, 10, 31))
# Each range and the rollups its active and top users read: whole months the
# monthly rollup only, days at the edges the daily rollup.
CROWD_RANGES = {
    "one whole month": (OCTOBER, {"monthlyusage"}),
    "several whole months": ((D(2026, 9, 1), D(2026, 11, 30)), {"monthlyusage"}),
    "whole month with edge days": (
        (D(2026, 9, 30), D(2026, 11, 1)),
        {"monthlyusage", "dailyusage"},
    ),
    "edge days only": ((D(2026, 10, 2), D(2026, 10, 30)), {"dailyusage"}),
}


def page_reads(org, period) -> tuple[set[str], tuple[dict, int], list]:
    """The rollups that active and top users read, and what they return."""
    with CaptureQueriesContext(connection) as ctx:
        active = selectors._active_users(org, period)
        top = selectors.top_users(org, period, total=1)
    assert len(ctx.captured_queries) == 2, "one query each"
    sql = " ".join(q["sql"] for q in ctx.captured_queries)
    tables = {t for t in ("monthlyusage", "dailyusage") if f"tokens_{t}" in sql}
    return tables, active, top


@pytest.mark.parametrize("which", list(CROWD_RANGES))
@pytest.mark.parametrize("token_type", ["all", "inference", "embedding"])
def test_active_and_top_users_on_every_path(org, crowd, which, token_type):
    (start, end), rollups = CROWD_RANGES[which]
    types = TYPES if token_type == "all" else (token_type,)
    period = StatsPeriod(start, end, types)
    want = from_events(org, start, end, types)

    tables, (by_type, overall), top = page_reads(org, period)
    assert tables == rollups
    assert {t: by_type[t] for t in types} == {
        t: want["active_by_type"][t] for t in types
    }
    assert {t: by_type[t] for t in TYPES if t not in types} == {
        t: 0 for t in TYPES if t not in types
    }
    assert overall == want["active"]
    assert [(u.email, u.tokens, u.events, u.last_active) for u in top] == want["top"][
        : selectors.TOP_USERS
    ]


def test_one_whole_month_ties_at_the_10th_place_go_by_email(org, crowd):
    top = selectors.top_users(org, StatsPeriod(*OCTOBER), total=1)
    assert [u.email.split("@")[0] for u in top] == [
        *(f"p{n}" for n in range(1, 10)),
        # zed, kim and lee share the 10th place (1,000 tokens): kim by email.
        "kim",
    ]
    assert (top[-1].tokens, top[-1].events) == (1_000, 2)
    # Fewer places than the tied users: still by email.
    top = selectors.top_users(org, StatsPeriod(*OCTOBER), total=1, limit=11)
    assert [u.email.split("@")[0] for u in top[-2:]] == ["kim", "lee"]
    # More places than users with usage: all of them, the one with 0 tokens last.
    top = selectors.top_users(org, StatsPeriod(*OCTOBER), total=1, limit=50)
    assert len(top) == 14
    assert (top[-1].email, top[-1].tokens, top[-1].events) == ("nil@acme.example", 0, 1)


def test_a_user_of_both_types_is_one_active_user_in_a_whole_month(org, crowd):
    active = selectors.kpis(org, StatsPeriod(*OCTOBER)).active_users
    # Inference: p1 to p9, zed, kim, nil, ivy; embedding: p2, kim, lee, ivy.
    assert active.by_type == {"inference": 13, "embedding": 4}
    # p2, kim and ivy used both: counted once.
    assert active.total == 14
    inference = selectors.kpis(org, StatsPeriod(*OCTOBER, ("inference",)))
    assert inference.active_users.by_type == {"inference": 13, "embedding": 0}
    assert inference.active_users.total == 13


@pytest.mark.parametrize("which", list(CROWD_RANGES))
def test_last_active_is_of_the_types_shown(org, crowd, which):
    (start, end), _rollups = CROWD_RANGES[which]

    def last_active(*types):
        top = selectors.top_users(
            org, StatsPeriod(start, end, types), total=1, limit=50
        )
        return {u.email: u.last_active for u in top}["ivy@acme.example"]

    # ivy: inference on 3 October, embedding on 20 October.
    assert last_active("inference") == D(2026, 10, 3)
    assert last_active("embedding") == D(2026, 10, 20)
    assert last_active(*TYPES) == D(2026, 10, 20)
