"""The forecast math (docs/forecasts.md; asksage_admin/lib/forecasts.py) on
synthetic series, at exact pinned instants: no database, no clock."""

import datetime as dt
import math

import pytest

from asksage_admin.lib import forecasts as fc

UTC = dt.UTC


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_flat_usage_projects_the_same_rate_over_the_rest_of_the_month():
    # Noon on Wednesday 15 April 2026: 15.5 days left (half of today + 15 days).
    now = at(2026, 4, 15, 12)
    f = fc.forecast(
        history=[1_000] * 28,
        month_used=14 * 1_000 + 500,
        today_used=500,
        now=now,
        budget=40_000,
    )
    assert f.rate.method == fc.METHOD_WEEKDAY
    assert f.rate.by_weekday == (1_000.0,) * 7
    assert f.projected == 14_500 + 15_500 == 30_000
    assert f.runout is None  # 30,000 < 40,000
    assert f.next_month == 31 * 1_000  # May has 31 days
    assert f.projected_percent == 75


def test_flat_usage_finds_the_day_the_pool_runs_out():
    now = at(2026, 4, 15, 12)
    f = fc.forecast(
        history=[1_000] * 28,
        month_used=14_500,
        today_used=500,
        now=now,
        budget=20_000,
    )
    # 14,500 + 500 (rest of the 15th) = 15,000; +1,000 a day: 20,000 on the 20th.
    assert f.runout == dt.date(2026, 4, 20)
    assert f.runs_out


def test_growing_usage_follows_the_last_week_more_than_the_month():
    today = dt.date(2026, 4, 15)
    history = list(range(100, 100 + 28 * 100, 100))  # 100, 200, … 2,800
    rate = fc.daily_rate(history, today=today, today_used=0, now=at(2026, 4, 15))
    recent = sum(history[-7:]) / 7
    month_mean = sum(history) / 28
    for weekday in range(7):
        same_weekday = [
            v
            for i, v in enumerate(history)
            if (today - dt.timedelta(days=28 - i)).weekday() == weekday
        ]
        assert rate.by_weekday[weekday] == pytest.approx(
            (sum(same_weekday) / 4 + recent) / 2
        )
    # Above the 28-day mean: a growing series is not flattened to its average.
    assert min(rate.by_weekday) > month_mean


def test_a_weekly_cycle_keeps_weekends_low():
    # Weekdays 10,000 a day, weekends 0, four whole weeks ending on a Sunday.
    today = dt.date(2026, 4, 13)  # a Monday
    history = []
    for i in range(28):
        day = today - dt.timedelta(days=28 - i)
        history.append(0 if day.weekday() >= 5 else 10_000)
    rate = fc.daily_rate(history, today=today, today_used=0, now=at(2026, 4, 13))
    recent = 50_000 / 7
    assert rate.on(dt.date(2026, 4, 18)) == pytest.approx(recent / 2)  # Saturday
    assert rate.on(dt.date(2026, 4, 14)) == pytest.approx((10_000 + recent) / 2)
    assert rate.on(dt.date(2026, 4, 14)) > 2 * rate.on(dt.date(2026, 4, 18))


def test_a_single_spike_moves_the_projection_but_does_not_dominate_it():
    now = at(2026, 4, 15, 0)
    calm = fc.forecast(history=[1_000] * 28, month_used=14_000, today_used=0, now=now)
    spiky = fc.forecast(
        history=[1_000] * 27 + [29_000],  # yesterday: +28,000
        month_used=42_000,
        today_used=0,
        now=now,
    )
    # The spike (Tuesday 14th) is in the month so far. The last 7 days' mean
    # rises by 4,000, so every day's rate by half of it (2,000); Tuesdays' mean
    # by 7,000, so theirs by 3,500 more. 16 days left (15th–30th), 2 Tuesdays.
    assert calm.projected == 14_000 + 16 * 1_000
    assert spiky.projected - calm.projected == 28_000 + 16 * 2_000 + 2 * 3_500
    # A Thursday's rate is 3,000, far from the spike's 29,000.
    assert spiky.rate.on(dt.date(2026, 4, 16)) == 3_000


def test_a_new_organization_with_two_days_uses_the_day_it_has():
    # Day 1 complete (3,000), day 2 is today, 6 hours in (600 so far).
    now = at(2026, 4, 2, 6)
    f = fc.forecast(history=[3_000], month_used=3_600, today_used=600, now=now)
    assert f.rate.method == fc.METHOD_SHORT
    assert f.rate.by_weekday == (3_000.0,) * 7
    # 0.75 of today and 28 more days at 3,000.
    assert f.projected == 3_600 + math.ceil(0.75 * 3_000 + 28 * 3_000)


def test_a_brand_new_organization_on_its_first_day():
    # No complete day: today's pace once an hour has gone, none before.
    early = fc.forecast(
        history=[], month_used=500, today_used=500, now=at(2026, 4, 10, 0, 30)
    )
    assert early.rate.method == fc.METHOD_NONE
    assert not early.rate.known
    assert early.projected == 500
    later = fc.forecast(
        history=[], month_used=1_200, today_used=1_200, now=at(2026, 4, 10, 6)
    )
    assert later.rate.method == fc.METHOD_TODAY
    assert later.rate.by_weekday[0] == pytest.approx(4_800)  # 1,200 in a quarter


def test_seven_to_27_days_use_the_last_weeks_mean():
    f = fc.daily_rate(
        [0] * 3 + [700] * 7,
        today=dt.date(2026, 4, 15),
        today_used=0,
        now=at(2026, 4, 15),
    )
    assert f.method == fc.METHOD_RECENT
    assert f.by_weekday == (700.0,) * 7


def test_an_empty_month_projects_nothing_and_never_runs_out():
    f = fc.forecast(
        history=[0] * 28, month_used=0, today_used=0, now=at(2026, 4, 15, 12), budget=1
    )
    assert f.projected == 0
    assert f.runout is None
    assert f.next_month == 0
    assert fc.lots_needed(f.projected, 0, 2_000_000) == 0


def test_the_first_instant_of_a_month_projects_the_whole_month():
    # 00:00:00 on 1 January 2027: nothing used yet, 31 whole days ahead.
    now = at(2027, 1, 1, 0, 0, 0)
    f = fc.forecast(history=[2_000] * 28, month_used=0, today_used=0, now=now)
    assert f.projected == 31 * 2_000
    assert f.next_month == 28 * 2_000  # February 2027


def test_the_last_second_of_a_month_adds_almost_nothing():
    now = at(2026, 12, 31, 23, 59, 59)
    f = fc.forecast(history=[86_400] * 28, month_used=1_000, today_used=0, now=now)
    assert f.projected == 1_000 + 1  # one second of a 86,400-a-day rate
    assert fc.month_left(now) == pytest.approx(1 / 86_400)


def test_february_and_the_leap_day():
    # 2027 is not a leap year: February has 28 days; 2028 is, with 29.
    assert fc.month_end(dt.date(2027, 2, 10)) == dt.date(2027, 2, 28)
    assert fc.month_end(dt.date(2028, 2, 10)) == dt.date(2028, 2, 29)
    f = fc.forecast(history=[100] * 28, month_used=0, today_used=0, now=at(2028, 2, 1))
    assert f.projected == 29 * 100
    assert f.next_month == 31 * 100  # March
    # 29 February 2028, 23:58:30 (the suite's second clock): 90 seconds left.
    last = at(2028, 2, 29, 23, 58, 30)
    assert fc.month_left(last) == pytest.approx(90 / 86_400)
    runout = fc.forecast(
        history=[86_400] * 28, month_used=999, today_used=0, now=last, budget=1_000
    )
    assert runout.runout == dt.date(2028, 2, 29)


def test_a_pool_used_up_already_ran_out_today():
    f = fc.forecast(
        history=[10] * 28,
        month_used=5_000,
        today_used=0,
        now=at(2026, 4, 9),
        budget=5_000,
    )
    assert f.runout == dt.date(2026, 4, 9)


@pytest.mark.parametrize(
    ("projected", "budget", "lots"),
    [
        (0, 0, 0),
        (4_000_000, 4_000_000, 0),
        (4_000_001, 4_000_000, 1),
        (9_000_000, 4_000_000, 3),
    ],
)
def test_lots_needed_rounds_up_to_whole_lots(projected, budget, lots):
    assert fc.lots_needed(projected, budget, 2_000_000) == lots


def test_the_users_projection_is_the_month_so_far_plus_the_last_weeks_pace():
    now = at(2026, 4, 30, 12)  # half a day left
    assert fc.recent_projection(month_used=1_000, last_days=7_000, now=now) == 1_500
