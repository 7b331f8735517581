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
from asksage_admin.lib.errors import InvalidInput
from asksage_admin.lib.periods import period_of
from tokens.locks import LockFirst
from tokens.models import (
    ORG_DAILY_STRIPES,
    DailyUsage,
    Hold,
    MonthlyUsage,
    OrgDailyUsage,
    UsageEvent,
)
from tokens.services.alerts.detect import detect_for_batch, facts_statement
from tokens.services.distribution import auto_increase_for_batch
from tokens.services.distribution.auto_increase import lock_for_auto_increase
from tokens.services.metering import hot
from tokens.services.metering._common import (
    EXCERPT_CHARS,
    MAX_BATCH,
    TYPES,
    UNKNOWN_USER,
    hidden_from,
    with_retries,
)
from tokens.services.metering.counters import (
    _released,
    _update_counters,
    _upsert_sql,
)
from tokens.services.metering.events import (
    UsageResult,
    _charge,
    _Event,
    _event_rows,
    _insert_events,
    _parse_event,
)
from tokens.services.metering.hot import lock_holds_sql


@with_retries
def usage_record(*, key: ServiceKey, events: list[Any]) -> UsageResult:
    """Record a batch of at most 1,000 usage events, each exactly once."""
    if len(events) > MAX_BATCH:
        raise InvalidInput(
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
    hold_ids = sorted({ev.hold_id for ev in live if ev.hold_id})
    # The users, the models and the holds (locked: step 4 of the lock order) in
    # one round trip, unless an earlier run found an auto-increase due: then steps
    # 1 and 3 come first, between the reads and the holds.
    users_read, models_read, holds_read = hot.run_together(
        hot.members_sql(emails),
        hot.rated_models_sql({ev.raw["model"] for ev in live}),
        None if first else lock_holds_sql(hold_ids),
    )
    users = hot.members_of(users_read.rows)
    models = hot.rated_models_of(models_read.rows)
    if first:
        # Steps 1 and 3 of the lock order, before the holds (4) and counters (5).
        lock_for_auto_increase(first, list(users.values()))
        (holds_read,) = hot.run_together(lock_holds_sql(hold_ids))
    holds = hot.holds_of(holds_read.rows)
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
    _add_usage(recorded, list(settling.values()), now)
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
        # The rollups, then the read that decides the alerts (docs/forecasts.md,
        # Alerts) on the batch's usage of the current month, in one round trip;
        # the organization-level rows are written by every batch of the
        # organization, so they are written last, to be locked only until the
        # commit. An alert's INSERT follows only when a threshold is due.
        current = period_of(now)
        charged = {
            (ev.organization_id, ev.user.pk, ev.token_type)
            for ev in recorded
            if period_of(ev.occurred_at) == current
        }
        facts = _add_rollups(recorded, then=facts_statement(charged, current))
        detect_for_batch(charged, current, now, facts=facts.rows)

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


def _add_usage(recorded: list[_Event], settling: list[dict], now) -> None:
    """Settle the holds and update the counters (used, and held released by the
    settled holds) for the events this batch wrote, in one round trip."""
    if not recorded and not settling:
        return
    used: dict[tuple, int] = defaultdict(int)
    for ev in recorded:
        used[
            (
                ev.organization_id,
                ev.user.pk,
                ev.token_type,
                period_of(ev.occurred_at),
            )
        ] += ev.charge
    _update_counters(
        used,
        _released(settling),
        closing=hot.close_holds_sql(
            [h["id"] for h in settling], Hold.Status.SETTLED, now
        ),
    )


def _add_rollups(
    recorded: list[_Event], *, then: hot.Statement | None = None
) -> hot.Result:
    """The rollups of the events this batch wrote, in one round trip: usage per
    organization, user, model, type and day; per organization, user and month
    (one row: each type's tokens, events and last day with usage, and their
    totals); and per organization, model, type, day and stripe. Each is keyed by
    the organization the event is recorded under. ``then``: a statement to run
    last in the same round trip; its result is returned."""
    if not recorded:
        return hot.run_together(then)[0]
    daily: dict[tuple, dict[str, int]] = defaultdict(lambda: {"tokens": 0, "events": 0})
    org_daily: dict[tuple, dict[str, int]] = defaultdict(
        lambda: {"tokens": 0, "events": 0}
    )
    monthly: dict[tuple, dict] = {}
    for ev in recorded:
        org, day = ev.organization_id, ev.day
        cell = daily[(org, ev.user.pk, ev.model.pk, ev.token_type, day)]
        cell["tokens"] += ev.charge
        cell["events"] += 1
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
    *_, last = hot.run_together(
        _upsert_sql(
            DailyUsage,
            ("user_id", "model_id", "token_type", "day"),
            daily,
            by_organization=True,
        ),
        _upsert_sql(
            MonthlyUsage,
            ("user_id", "month"),
            monthly,
            by_organization=True,
            greatest=("last_day", "inference_last_day", "embedding_last_day"),
        ),
        # Last, and striped by user: the batches of the organization's other
        # users write other rows (unless they share a stripe), each locked only
        # until the commit.
        _upsert_sql(
            OrgDailyUsage,
            ("day", "token_type", "model_id", "stripe"),
            org_daily,
            by_organization=True,
        ),
        then,
    )
    return last
