"""How Token Distribution's numbers read: short token amounts, durations, a policy
as the preset comparison's rows, a plan's effect and a run's message."""

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from tokens import selectors
from tokens.forms.distribution import (
    percent,
)
from tokens.models import DistributionPolicy, DistributionRun, TokenType
from tokens.services.pool import fmt, type_label

Preset = DistributionPolicy.Preset
BumpMode = DistributionPolicy.BumpMode


# --- how the numbers read -----------------------------------------------------------


def short_tokens(n) -> str:
    """200000 → "200K", 5000000 → "5M", 1250000 → "1.25M"."""
    if n is None:
        return _("Unlimited")
    n = int(n)
    for size, suffix in ((1_000_000, "M"), (1_000, "K")):
        if n >= size and n % (size // 100) == 0:
            return f"{n / size:.2f}".rstrip("0").rstrip(".") + suffix
    return fmt(n)


def duration(minutes) -> str:
    """240 → "4 h", 30 → "30 min", 90 → "1 h 30 min"."""
    hours, rest = divmod(int(minutes), 60)
    if hours and rest:
        return _("%(h)d h %(m)d min") % {"h": hours, "m": rest}
    if hours:
        return _("%(h)d h") % {"h": hours}
    return _("%(m)d min") % {"m": rest}


def describe_bump(values: dict) -> str:
    mode = values.get("bump_mode")
    value = values.get("bump_value")
    if mode == BumpMode.FLAT:
        text = _("Flat +%(n)s") % {"n": short_tokens(value)}
    elif mode == BumpMode.PERCENT_POOL:
        text = _("%(p)s%% of the remaining pool") % {"p": percent(value)}
    elif mode == BumpMode.TIERS:
        tiers = zip(
            values.get("triggers") or [], values.get("tier_bumps") or [], strict=False
        )
        text = ", ".join(
            _("+%(bump)s%% at %(trigger)s%%")
            % {"bump": percent(b), "trigger": percent(t)}
            for t, b in tiers
        )
    else:
        text = _("+%(p)s%% of the current limit") % {"p": percent(value)}
    if values.get("bump_cap_at_current") and mode != BumpMode.PERCENT_CURRENT:
        text += _(", at most the current limit")
    return text


def describe(values: dict) -> list[tuple[str, str]]:
    """A policy (or a preset's values) as the rows of the preset comparison."""
    triggers = values.get("triggers") or []
    trigger_text = ", ".join(f"{percent(t)}%" for t in triggers) or "—"
    if len(triggers) > 1 and values.get("bump_mode") != BumpMode.TIERS:
        trigger_text = _("Tiers %(list)s") % {"list": trigger_text}
    if not values.get("auto_increase_enabled", True):
        trigger_text = _("Off")
    return [
        (
            _("Floor"),
            _("%(inference)s / %(embedding)s")
            % {
                "inference": short_tokens(values.get("floor_inference")),
                "embedding": short_tokens(values.get("floor_embedding")),
            },
        ),
        (_("Ceiling"), short_tokens(values.get("ceiling"))),
        (_("Trigger"), trigger_text),
        (_("Cooldown"), duration(values.get("cooldown_minutes") or 0)),
        (_("Bump"), describe_bump(values)),
        (
            _("Reclamation"),
            _("On") if values.get("reclamation_enabled") else _("Off"),
        ),
    ]


# --- preview and run ---------------------------------------------------------------


def plan_effect(plan) -> list[dict]:
    """Per type: the limits a run changes, tokens raised to floors, reclaimed and
    shared equally, and the unallocated pool before and after."""
    rows = []
    for token_type in selectors.TYPES:
        totals = plan.totals.get(token_type) or {}
        rows.append(
            {
                "token_type": token_type,
                "label": TokenType(token_type).label,
                "count": sum(1 for c in plan.changes if c.token_type == token_type),
                "raised": totals.get("raised", 0),
                "reclaimed": totals.get("reclaimed", 0),
                "distributed": totals.get("distributed", 0),
                "unallocated_before": totals.get("unallocated_before", 0),
                "unallocated_after": totals.get("unallocated_after", 0),
                "shortfall": (plan.shortfall or {}).get(token_type, 0),
            }
        )
    return rows


def run_message(run: DistributionRun) -> str:
    """One line from the run's summary: how many limits changed, and per type the
    tokens raised to floors, reclaimed and shared."""
    summary = run.summary or {}
    count = summary.get("changes", 0)
    if not count:
        return _("Distribution run finished: every limit already fits the policy.")
    parts = []
    for token_type in selectors.TYPES:
        totals = summary.get(token_type) or {}
        moves = [
            template % {"n": fmt(totals[key])}
            for key, template in (
                ("raised", _("+%(n)s to floors")),
                ("reclaimed", _("%(n)s reclaimed")),
                ("distributed", _("+%(n)s shared equally")),
            )
            if totals.get(key)
        ]
        if moves:
            parts.append(
                _("%(type)s: %(moves)s")
                % {"type": type_label(token_type), "moves": ", ".join(moves)}
            )
    users = summary.get("users_changed", 0)
    message = _("Distribution run finished: %(limits)s for %(users)s.") % {
        "limits": ngettext("%(n)d limit changed", "%(n)d limits changed", count)
        % {"n": count},
        "users": ngettext("%(n)d user", "%(n)d users", users) % {"n": users},
    }
    if parts:
        message += " " + _("%(details)s.") % {"details": "; ".join(parts)}
    return message


def signed(n: int) -> str:
    """+1,000 / −1,000 (a real minus sign) / 0."""
    if n > 0:
        return f"+{n:,}"
    return f"−{-n:,}" if n < 0 else "0"
