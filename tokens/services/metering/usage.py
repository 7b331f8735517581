"""The usage batch: ``usage_record`` (one transaction per batch of at most
1,000 events), then counters, daily usage and the organization-level rollups."""

import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.emails import canonical_email
from accounts.models import ServiceKey
from asksage_admin.lib.periods import period_of
from tokens.locks import LockFirst, lock_holds
from tokens.models import (
    ORG_DAILY_STRIPES,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    UsageEvent,
)
from tokens.services.alerts.detect import detect_for_batch
from tokens.services.distribution import auto_increase_for_batch
from tokens.services.distribution.auto_increase import lock_for_auto_increase
from tokens.services.metering import hot
from tokens.services.metering._common import (
    EXCERPT_CHARS,
    MAX_BATCH,
    TYPES,
    UNKNOWN_USER,
    MeteringError,
    hidden_from,
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
    # Organizations to lock first: an auto-increase found due in an organization
    # the batch had not locked (its holds and counters were locked by then, and
    # they come after the organization in the lock order) rolls the batch back,
    # and it runs again with that organization locked first. At most once per
    # organization of the batch; rare (once per increase).
    first: set[int] = set()
    while True:
        parsed = [_parse_event(i, raw, now) for i, raw in enumerate(events)]
        try:
            with transaction.atomic():
                return _record_batch(key, parsed, now, first)
        except LockFirst as needed:
            if needed.organizations <= first:
                raise AssertionError("LockFirst named no new organization") from None
            first |= needed.organizations


def _record_batch(
    key: ServiceKey, parsed: list[_Event], now: dt.datetime, first: set[int]
):
    result = UsageResult([{} for _ in parsed])
    # The scope of the batch's event ids: a key bound to an organization has its
    # own; the platform gateway's (unbound keys) is per organization too.
    org_key = key.organization_id is not None

    live = [ev for ev in parsed if ev.error is None]
    emails = {canonical_email(ev.raw["user"]) for ev in live}
    users = hot.members(emails)
    models = hot.rated_models({ev.raw["model"] for ev in live})
    if first:
        # Steps 1 and 3 of the lock order, before the holds (4) and counters (5).
        lock_for_auto_increase(first, list(users.values()))
    hold_ids = sorted({ev.hold_id for ev in live if ev.hold_id})
    holds = (
        {
            h["id"]: h
            for h in lock_holds(Hold.objects.filter(pk__in=hold_ids)).values(
                *_HOLD_FIELDS, "status"
            )
        }
        if hold_ids
        else {}
    )
    for ev in live:
        _resolve(key, ev, users, models, holds)

    # Repeats inside the batch (the same event_id in the same scope): the first
    # occurrence is processed, the others are duplicates (same payload) or
    # conflicts.
    first_by_id: dict[tuple, _Event] = {}
    repeats: list[_Event] = []
    for ev in live:
        if ev.scope in first_by_id:
            repeats.append(ev)
        else:
            first_by_id[ev.scope] = ev
    live = list(first_by_id.values())
    to_insert = [ev for ev in live if ev.error is None]

    inserted = _insert_events(_event_rows(to_insert, now, org_key=org_key))
    # Events already recorded in their scope (a retry, or a copy another batch
    # wrote first) are duplicates or conflicts whatever the checks above say of
    # them now. The insert's RETURNING tells which were written, so the common
    # path needs no lookup; the events it did not write are looked up in one
    # query, in their own scope only: another scope's ids are neither visible nor
    # in the way. An event refused as another organization's stays refused.
    missing = [
        ev
        for ev in live
        if ev.scope not in inserted
        and ev.organization_id is not None
        and not (ev.error and ev.error[0] == "forbidden")
    ]
    if missing:
        existing = {
            (o, e): digest
            for o, e, digest in UsageEvent.objects.filter(
                org_key=org_key,
                organization_id__in={ev.organization_id for ev in missing},
                event_id__in={ev.event_id for ev in missing},
            ).values_list("organization_id", "event_id", "payload_digest")
        }
        for ev in missing:
            if ev.scope in existing or ev.error is None:
                ev.error = (
                    ("duplicate", "")
                    if existing.get(ev.scope) == ev.digest
                    else (
                        "conflict",
                        "This event_id was recorded with different data.",
                    )
                )
    recorded = [ev for ev in to_insert if ev.scope in inserted]

    # Settle the open holds that recorded events name (each hold once).
    settling: dict[uuid.UUID, dict] = {}
    for ev in recorded:
        hold = holds.get(ev.hold_id) if ev.hold_id else None
        if hold and hold["status"] == Hold.Status.OPEN and ev.hold_id not in settling:
            settling[ev.hold_id] = hold
    released = _close_holds(list(settling.values()), Hold.Status.SETTLED, now)
    _add_usage(recorded, released)
    if recorded:
        # Auto-increase (docs/product.md, Token Distribution, auto-increase) in the same
        # transaction, on the counters just updated: one query when nothing fires.
        auto_increase_for_batch(
            sorted(
                {
                    (ev.user.pk, ev.token_type, period_of(ev.occurred_at))
                    for ev in recorded
                }
            ),
            locked=first,
            organizations={ev.organization_id for ev in recorded},
            now=now,
        )
        # The organization-level rows are written by every batch of the
        # organization, so they are written last, to be locked only until the commit.
        _add_rollups(recorded)
        # Alerts (docs/forecasts.md, Alerts), last: one statement for the batch's
        # usage of the current month; an insert only when a threshold is due.
        current = period_of(now)
        detect_for_batch(
            {
                (ev.organization_id, ev.user.pk, ev.token_type)
                for ev in recorded
                if period_of(ev.occurred_at) == current
            },
            current,
            now,
        )

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
        original = first_by_id[ev.scope]
        same = original.digest == ev.digest
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


def _resolve(
    key: ServiceKey, ev: _Event, users: dict, models: dict, holds: dict
) -> None:
    """The event's user, model and organization, or its refusal. The organization
    (the one charged, and the scope of its event_id) is the hold's when it settles
    one (the organization that authorized the usage), else the user's; a refused
    event keeps the scope it would have had (None when there is none), so a
    recorded copy is still reported as a duplicate."""
    user = users.get(canonical_email(ev.raw["user"]))
    if hidden_from(key, user):
        # No scope: its id is never looked up, so that an organization's key
        # learns neither users nor event ids outside it.
        ev.error = ("unknown_user", UNKNOWN_USER)
        return
    ev.organization_id = key.organization_id or user.organization_id
    if user.organization_id is None:
        ev.error = ("forbidden", "This user is not in an Enterprise Account.")
        return
    model = models.get(ev.raw["model"])
    if model is None:
        ev.error = ("unknown_model", f"No model {ev.raw['model']!r}.")
        return
    if ev.hold_id:
        hold = holds.get(ev.hold_id)
        if (
            hold is None
            or hold["user_id"] != user.pk
            or hold["token_type"] != ev.token_type
            # A bound key settles only its own organization's holds.
            or (key.organization_id and hold["organization_id"] != key.organization_id)
        ):
            ev.error = ("invalid_hold", "No such hold for this user and token type.")
            return
        ev.organization_id = hold["organization_id"]
    ev.user, ev.model = user, model
    ev.charge = _charge(ev)
    keep = user.store_prompt_excerpts
    ev.prompt_excerpt = (
        (ev.raw.get("prompt_excerpt") or "")[:EXCERPT_CHARS] if keep else ""
    )
    ev.response_excerpt = (
        (ev.raw.get("response_excerpt") or "")[:EXCERPT_CHARS] if keep else ""
    )


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
                ev.organization_id,
                ev.user.pk,
                ev.token_type,
                period_of(ev.occurred_at),
            )
        ] += ev.charge
        cell = daily[
            (ev.organization_id, ev.user.pk, ev.model.pk, ev.token_type, ev.day)
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
    organization, model, type, day and stripe, and per organization, user and month (one
    row: each type's tokens, events and last day with usage, and their totals),
    keyed by the organization the event is recorded under."""
    if not recorded:
        return
    org_daily: dict[tuple, dict[str, int]] = defaultdict(
        lambda: {"tokens": 0, "events": 0}
    )
    monthly: dict[tuple, dict] = {}
    for ev in recorded:
        org, day = ev.organization_id, ev.day
        stripe = ev.user.pk % ORG_DAILY_STRIPES
        cell = org_daily[(org, day, ev.token_type, ev.model.pk, stripe)]
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
    # Last, and striped by user: the batches of the organization's other users
    # write other rows (unless they share a stripe), each locked only until the
    # commit.
    _case_update(
        OrgDailyUsage,
        ("day", "token_type", "model_id", "stripe"),
        org_daily,
        by_organization=True,
    )
