"""The usage batch: ``usage_record`` (one transaction per batch of at most
1,000 events), then counters, daily usage and the organization-level rollups."""

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import ServiceKey, User
from asksage_admin.lib.periods import period_of
from tokens.models import (
    AIModel,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    UsageEvent,
)
from tokens.services.distribution import auto_increase_for_batch
from tokens.services.metering._common import (
    EXCERPT_CHARS,
    MAX_BATCH,
    TYPES,
    MeteringError,
    with_retries,
)
from tokens.services.metering.counters import (
    _HOLD_FIELDS,
    _case_update,
    _close_holds,
    _update_counters,
)
from tokens.services.metering.events import (
    UsageResult,
    _charge,
    _Event,
    _event_rows,
    _insert_events,
    _parse_event,
)


@with_retries
def usage_record(*, key: ServiceKey, events: list[Any]) -> UsageResult:
    """Record a batch of at most 1,000 usage events, each exactly once."""
    if len(events) > MAX_BATCH:
        raise MeteringError(
            400,
            "invalid_request",
            f"At most {MAX_BATCH:,} events per request.",
            fields={"events": f"at most {MAX_BATCH:,} events"},
        )
    now = timezone.now()
    parsed = [_parse_event(i, raw, now) for i, raw in enumerate(events)]
    with transaction.atomic():
        return _record_batch(key, parsed, now)


def _record_batch(key: ServiceKey, parsed: list[_Event], now: dt.datetime):
    result = UsageResult([{} for _ in parsed])

    def reject(ev: _Event, code: str, detail: str) -> None:
        ev.error = (code, detail)

    live = [ev for ev in parsed if ev.error is None]
    # Repeats inside the batch: the first occurrence is processed, the others are
    # duplicates (same payload) or conflicts.
    first_by_id: dict[str, _Event] = {}
    repeats: list[_Event] = []
    for ev in live:
        if ev.event_id in first_by_id:
            repeats.append(ev)
        else:
            first_by_id[ev.event_id] = ev
    live = list(first_by_id.values())

    emails = {ev.raw["user"].strip().lower() for ev in live}
    users = {
        u.email: u
        for u in User.objects.select_related("organization")
        .only("email", "organization", "organization__store_prompt_excerpts")
        .filter(email__in=emails)
    }
    models = {
        m.key: m
        for m in AIModel.objects.filter(key__in={ev.raw["model"] for ev in live})
    }
    hold_ids = sorted({ev.hold_id for ev in live if ev.hold_id})
    holds = (
        {
            h["id"]: h
            for h in Hold.objects.filter(pk__in=hold_ids)
            .select_for_update()
            .order_by("id")
            .values(*_HOLD_FIELDS, "status")
        }
        if hold_ids
        else {}
    )

    to_insert: list[_Event] = []
    for ev in live:
        user = users.get(ev.raw["user"].strip().lower())
        if user is None:
            reject(ev, "unknown_user", f"No user with email {ev.raw['user']!r}.")
            continue
        if key.organization_id and user.organization_id != key.organization_id:
            reject(ev, "forbidden", "This service key cannot act for this user.")
            continue
        if user.organization_id is None:
            reject(ev, "forbidden", "This user is not in an Enterprise Account.")
            continue
        model = models.get(ev.raw["model"])
        if model is None:
            reject(ev, "unknown_model", f"No model {ev.raw['model']!r}.")
            continue
        if ev.hold_id:
            hold = holds.get(ev.hold_id)
            if (
                hold is None
                or hold["user_id"] != user.pk
                or hold["token_type"] != ev.token_type
            ):
                reject(ev, "invalid_hold", "No such hold for this user and token type.")
                continue
        ev.user, ev.model = user, model
        ev.charge = _charge(ev)
        keep = user.organization.store_prompt_excerpts
        ev.prompt_excerpt = (
            (ev.raw.get("prompt_excerpt") or "")[:EXCERPT_CHARS] if keep else ""
        )
        ev.response_excerpt = (
            (ev.raw.get("response_excerpt") or "")[:EXCERPT_CHARS] if keep else ""
        )
        to_insert.append(ev)

    inserted = _insert_events(_event_rows(to_insert, now))
    # Events already recorded (a retry, or a copy another batch wrote first) are
    # duplicates or conflicts whatever the checks above say of them now. The
    # insert's RETURNING tells which were written, so the common path needs no
    # lookup; the events it did not write are looked up in one query. An event
    # refused as another organization's stays refused (no probing of their ids).
    missing = [ev for ev in live if ev.event_id not in inserted]
    if missing:
        existing = dict(
            UsageEvent.objects.filter(
                event_id__in=[ev.event_id for ev in missing]
            ).values_list("event_id", "payload_digest")
        )
        for ev in missing:
            if ev.error and ev.error[0] == "forbidden":
                continue
            if ev.event_id in existing or ev.error is None:
                ev.error = (
                    ("duplicate", "")
                    if existing.get(ev.event_id) == ev.digest
                    else (
                        "conflict",
                        "This event_id was recorded with different data.",
                    )
                )
    recorded = [ev for ev in to_insert if ev.event_id in inserted]

    # Settle the open holds that recorded events name (each hold once).
    settling: dict[uuid.UUID, dict] = {}
    for ev in recorded:
        hold = holds.get(ev.hold_id) if ev.hold_id else None
        if hold and hold["status"] == Hold.Status.OPEN and ev.hold_id not in settling:
            settling[ev.hold_id] = hold
    released = _close_holds(list(settling.values()), Hold.Status.SETTLED, now)
    _add_usage(recorded, released)
    if recorded:
        # Auto-increase (SPEC §6.4) in the same transaction, on the counters just
        # updated: one query when nothing fires.
        auto_increase_for_batch(
            sorted(
                {
                    (ev.user.pk, ev.token_type, period_of(ev.occurred_at))
                    for ev in recorded
                }
            ),
            now=now,
        )
        # The organization-level rows are written by every batch of the
        # organization, so they are written last, to be locked only until the commit.
        _add_rollups(recorded)

    for ev in parsed:
        if ev.error is None:
            result.results[ev.index] = {"event_id": ev.event_id, "status": "recorded"}
        elif ev.error[0] == "duplicate":
            result.results[ev.index] = {"event_id": ev.event_id, "status": "duplicate"}
        else:
            result.results[ev.index] = {
                "event_id": ev.event_id,
                "status": "rejected",
                "error": ev.error[0],
                "detail": ev.error[1],
            }
    for ev in repeats:
        first = first_by_id[ev.event_id]
        same = first.digest == ev.digest
        result.results[ev.index] = (
            {"event_id": ev.event_id, "status": "duplicate"}
            if same
            else {
                "event_id": ev.event_id,
                "status": "rejected",
                "error": "conflict",
                "detail": "This event_id appears twice in the batch with "
                "different data.",
            }
        )
    return result


def _add_usage(recorded: list[_Event], released: dict[tuple, int]) -> None:
    """Counters (used, and held released by settled holds) and daily rollups for
    the events this batch wrote."""
    if not recorded and not released:
        return
    used: dict[tuple, int] = defaultdict(int)
    daily: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for ev in recorded:
        used[
            (
                ev.user.organization_id,
                ev.user.pk,
                ev.token_type,
                period_of(ev.occurred_at),
            )
        ] += ev.charge
        cell = daily[
            (ev.user.organization_id, ev.user.pk, ev.model.pk, ev.token_type, ev.day)
        ]
        cell[0] += ev.charge
        cell[1] += 1

    _update_counters(used, released)
    if not daily:
        return
    _case_update(
        DailyUsage,
        ("user_id", "model_id", "token_type", "day"),
        {key: {"tokens": cell[0], "events": cell[1]} for key, cell in daily.items()},
        by_organization=True,
    )


def _add_rollups(recorded: list[_Event]) -> None:
    """The organization-level rollups for the events this batch wrote: usage per
    organization, model, type and day, and per organization, user and month (one
    row: each type's tokens, events and last day with usage, and their totals),
    keyed by the organization the event is recorded under."""
    if not recorded:
        return
    org_daily: dict[tuple, dict[str, int]] = defaultdict(
        lambda: {"tokens": 0, "events": 0}
    )
    monthly: dict[tuple, dict] = {}
    for ev in recorded:
        org, day = ev.user.organization_id, ev.day
        cell = org_daily[(org, ev.model.pk, ev.token_type, day)]
        cell["tokens"] += ev.charge
        cell["events"] += 1
        cell = monthly.setdefault(
            (org, ev.user.pk, day.replace(day=1)),
            # A type without usage in this batch adds nothing and has no last day
            # (NULL: the upsert keeps the row's own).
            {
                f"{prefix}{column}": None if column == "last_day" else 0
                for prefix in ("", *(f"{t}_" for t in TYPES))
                for column in ("tokens", "events", "last_day")
            },
        )
        for prefix in ("", f"{ev.token_type}_"):
            cell[f"{prefix}tokens"] += ev.charge
            cell[f"{prefix}events"] += 1
            last = cell[f"{prefix}last_day"]
            cell[f"{prefix}last_day"] = day if last is None else max(last, day)
    _case_update(
        MonthlyUsage,
        ("user_id", "month"),
        monthly,
        by_organization=True,
        greatest=("last_day", "inference_last_day", "embedding_last_day"),
    )
    # Last: every batch of the organization writes these rows, so they stay locked
    # only until the commit.
    _case_update(
        OrgDailyUsage,
        ("model_id", "token_type", "day"),
        org_daily,
        by_organization=True,
    )
