"""Management → Token Distribution (docs/product.md, Token Distribution): allocation
status, presets, the policy forms, preview and run, per-user overrides and the
rebalancing schedule.

One page (``DistributionView``) shows every section; each form posts to its own
POST-only view, which calls one service of ``tokens.services.distribution`` and
redirects back with a message, or renders the page again with the form's errors
(status 400) and nothing changed.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View
from django.views.generic import TemplateView

from accounts.access import PanelAccessMixin
from accounts.models import Organization
from tokens import selectors
from tokens.forecasts import org_forecasts
from tokens.forms import (
    AutoIncreaseForm,
    DistributionRunForm,
    FloorCeilingForm,
    OverrideForm,
    PresetForm,
    ReclamationForm,
    ScheduleForm,
    amount_text,
    percent,
    percent_text,
)
from tokens.models import DistributionPolicy, DistributionRun, TokenType, UserOverride
from tokens.services import distribution
from tokens.services.allocations import fmt, type_label

Preset = DistributionPolicy.Preset
BumpMode = DistributionPolicy.BumpMode

BEST_FOR = {
    Preset.CONSERVATIVE: gettext_lazy("Cost-conscious organizations"),
    Preset.STANDARD: gettext_lazy("Balanced teams"),
    Preset.AGGRESSIVE: gettext_lazy("High-trust power users"),
    Preset.DYNAMIC: gettext_lazy("Large organizations with mixed usage"),
    Preset.CUSTOM: gettext_lazy("Anything else: your own numbers"),
}

# The datalist of emails in the override form is offered up to this many users;
# beyond it the field is a plain email input (still validated against the org).
EMAIL_SUGGESTIONS = 500


# --- reads (scoped to the organization) --------------------------------------------


def overrides_in(org: Organization):
    return (
        UserOverride.objects.filter(organization=org)
        .select_related("user")
        .order_by("user__email")
    )


def recent_runs(org: Organization):
    """The org's runs, newest first, with who started them and how many limits
    each changed."""
    return (
        DistributionRun.objects.filter(organization=org)
        .select_related("actor")
        .annotate(change_count=Count("allocation_changes"))
        .order_by("-started_at", "-id")
    )


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


def policy_values(policy: DistributionPolicy) -> dict:
    return {name: getattr(policy, name) for name in distribution.PRESET_FIELDS}


def preset_cards(policy: DistributionPolicy) -> list[dict]:
    cards = []
    for preset in Preset:
        values = distribution.PRESETS.get(preset) or {}
        active = policy.preset == preset
        if preset == Preset.CUSTOM:
            rows = describe(policy_values(policy)) if active else []
        else:
            rows = describe(values)
        cards.append(
            {
                "value": preset.value,
                "label": preset.label,
                "best_for": BEST_FOR[preset],
                "rows": rows,
                "active": active,
            }
        )
    return cards


# --- the page ----------------------------------------------------------------------


class DistributionPanelMixin(PanelAccessMixin):
    nav_active = "distribution"

    def org_url(self, name: str, fragment: str = "", **kwargs) -> str:
        url = reverse(name, kwargs=kwargs or None) + self.panel_context()["org_query"]
        return f"{url}#{fragment}" if fragment else url

    def page_url(self) -> str:
        # "#top" scrolls to the top (where the message is) even when the form was
        # posted to an address with a section fragment.
        return self.org_url("tokens:distribution", "top")


class DistributionView(DistributionPanelMixin, TemplateView):
    template_name = "tokens/distribution.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        policy = distribution.policy_ensure(organization=self.org)
        now = timezone.now()
        runs = list(recent_runs(self.org)[:10])
        users = selectors.users_in(self.org).order_by("email")
        emails = list(users.values_list("email", flat=True)[: EMAIL_SUGGESTIONS + 1])
        context.update(
            policy=policy,
            preset_label=policy.get_preset_display(),
            summary=selectors.org_summary(self.org),
            forecasts=list(org_forecasts(self.org, now).values()),
            presets=preset_cards(policy),
            overrides=list(overrides_in(self.org)),
            runs=runs,
            last_run=runs[0] if runs else None,
            next_run=distribution.next_run_at(policy, after=now),
            email_suggestions=emails if len(emails) <= EMAIL_SUGGESTIONS else [],
        )
        context.setdefault("preset_form", PresetForm())
        context.setdefault("floor_form", self.floor_form(policy))
        context.setdefault("auto_form", self.auto_form(policy))
        context.setdefault("reclamation_form", self.reclamation_form(policy))
        context.setdefault("schedule_form", self.schedule_form(policy))
        if "override_form" not in context:
            context.update(self.override_editing())
        context["editing"] = context.get("editing") or _override_editing_email(
            context["override_form"]
        )
        context["form_errors"] = [
            (anchor, title)
            for key, anchor, title in SECTIONS
            if context[key].is_bound and context[key].errors
        ]
        return context

    @staticmethod
    def floor_form(policy: DistributionPolicy) -> FloorCeilingForm:
        return FloorCeilingForm(
            initial={
                "floor_inference": policy.floor_inference,
                "floor_embedding": policy.floor_embedding,
                "ceiling": policy.ceiling,
                "ceiling_unlimited": policy.ceiling is None,
            }
        )

    @staticmethod
    def auto_form(policy: DistributionPolicy) -> AutoIncreaseForm:
        return AutoIncreaseForm(
            initial={
                "auto_increase_enabled": policy.auto_increase_enabled,
                "triggers": percent_text(policy.triggers),
                "cooldown_minutes": policy.cooldown_minutes,
                "bump_mode": policy.bump_mode,
                "bump_value": amount_text(policy.bump_value),
                "tier_bumps": percent_text(policy.tier_bumps),
                "bump_cap_at_current": policy.bump_cap_at_current,
            }
        )

    @staticmethod
    def reclamation_form(policy: DistributionPolicy) -> ReclamationForm:
        return ReclamationForm(
            initial={
                "reclamation_enabled": policy.reclamation_enabled,
                "lookback_days": policy.lookback_days,
                "headroom_percent": policy.headroom_percent,
            }
        )

    @staticmethod
    def schedule_form(policy: DistributionPolicy) -> ScheduleForm:
        return ScheduleForm(
            initial={
                "schedule": policy.schedule,
                "schedule_hour": policy.schedule_hour,
                "schedule_weekday": policy.schedule_weekday,
                "schedule_day": policy.schedule_day,
            }
        )

    def override_editing(self) -> dict:
        """The add form, or the edit form of ``?override=<user id>`` (the org's
        users only: another organization's user is a 404)."""
        users = selectors.users_in(self.org)
        user_id = self.request.GET.get("override", "")
        if not user_id.isdigit():
            return {"override_form": OverrideForm(users=users), "editing": None}
        member = get_object_or_404(users, pk=user_id)
        override = UserOverride.objects.filter(
            organization=self.org, user=member
        ).first()
        initial = {"email": member.email}
        if override:
            initial.update(
                floor=override.floor,
                ceiling=override.ceiling,
                exempt_auto_increase=override.exempt_auto_increase,
                exempt_reclamation=override.exempt_reclamation,
                note=override.note,
            )
        return {
            "override_form": OverrideForm(users=users, initial=initial),
            "editing": member.email,
        }


def _override_editing_email(form: OverrideForm) -> str | None:
    """A re-shown (invalid) override form edits the user it names, if any."""
    if form.is_bound:
        return form.data.get("email") or None
    return None


SECTIONS = [
    ("preset_form", "presets", gettext_lazy("Allocation presets")),
    ("floor_form", "floor-ceiling", gettext_lazy("Floor & ceiling")),
    ("auto_form", "auto-increase", gettext_lazy("Auto-increase")),
    ("reclamation_form", "reclamation", gettext_lazy("Schedule & reclamation")),
    ("schedule_form", "schedule", gettext_lazy("Auto-rebalancing schedule")),
    ("override_form", "overrides", gettext_lazy("Per-user overrides")),
]


def attach_errors(form, error: ValidationError) -> None:
    """A service's ValidationError on the form: field errors on the fields the form
    has, the rest above the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        target = field if field in form.fields else None
        if field == "user" and "email" in form.fields:
            target = "email"
        form.add_error(target, errors)


class DistributionFormView(DistributionView):
    """POST only: one form, one service call, then back to the page with a message;
    invalid input renders the page again with the errors (400), nothing changed."""

    http_method_names = ["post"]
    form_class = None
    context_name = ""

    def get_form(self):
        return self.form_class(self.request.POST)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = self.get_form()
        if form.is_valid():
            # A copy as it was: the service saves its own locked instance.
            before = distribution.policy_ensure(organization=self.org)
            try:
                message = self.save(form, before)
            except ValidationError as error:
                attach_errors(form, error)
            else:
                messages.success(request, message)
                return redirect(self.page_url())
        context = self.get_context_data(**{self.context_name: form})
        return self.render_to_response(context, status=400)

    def save(self, form, before: DistributionPolicy) -> str:
        raise NotImplementedError


class PolicySectionView(DistributionFormView):
    """One section of the policy through ``policy_update``."""

    saved = ""

    def save(self, form, before: DistributionPolicy) -> str:
        policy = self.updated = distribution.policy_update(
            actor=self.request.user, organization=self.org, changes=form.changes()
        )
        if policy.updated_at == before.updated_at:
            return _("Nothing to save: the values are the ones already in place.")
        message = str(self.saved)
        if policy.preset != before.preset:
            message += " " + _("The active preset is now %(preset)s.") % {
                "preset": policy.get_preset_display()
            }
        return message


class LimitsUpdateView(PolicySectionView):
    form_class = FloorCeilingForm
    context_name = "floor_form"
    saved = gettext_lazy("Floor and ceiling saved.")


class AutoIncreaseUpdateView(PolicySectionView):
    form_class = AutoIncreaseForm
    context_name = "auto_form"
    saved = gettext_lazy("Auto-increase saved.")


class ReclamationUpdateView(PolicySectionView):
    form_class = ReclamationForm
    context_name = "reclamation_form"
    saved = gettext_lazy("Reclamation saved.")


class ScheduleUpdateView(PolicySectionView):
    form_class = ScheduleForm
    context_name = "schedule_form"
    saved = gettext_lazy("Schedule saved.")

    def save(self, form, before: DistributionPolicy) -> str:
        message = super().save(form, before)
        upcoming = distribution.next_run_at(self.updated, after=timezone.now())
        if upcoming:
            message += " " + _("Next run: %(when)s UTC.") % {
                "when": upcoming.strftime("%Y-%m-%d %H:%M")
            }
        return message


class PresetApplyView(DistributionFormView):
    form_class = PresetForm
    context_name = "preset_form"

    def save(self, form, before: DistributionPolicy) -> str:
        policy = distribution.policy_apply_preset(
            actor=self.request.user,
            organization=self.org,
            preset=form.cleaned_data["preset"],
        )
        return _("%(preset)s preset applied.") % {"preset": policy.get_preset_display()}


class OverrideSetView(DistributionFormView):
    form_class = OverrideForm
    context_name = "override_form"

    def get_form(self):
        return OverrideForm(self.request.POST, users=selectors.users_in(self.org))

    def save(self, form, before: DistributionPolicy) -> str:
        data = form.cleaned_data
        distribution.override_set(
            actor=self.request.user,
            organization=self.org,
            user=data["user"],
            floor=data["floor"],
            ceiling=data["ceiling"],
            exempt_auto_increase=data["exempt_auto_increase"],
            exempt_reclamation=data["exempt_reclamation"],
            note=data["note"],
        )
        return _("Override for %(user)s saved.") % {"user": data["user"].email}


class OverrideRemoveView(DistributionPanelMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, user_id: int) -> HttpResponse:
        member = get_object_or_404(selectors.users_in(self.org), pk=user_id)
        try:
            distribution.override_remove(
                actor=request.user, organization=self.org, user=member
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(
                request,
                _("Override for %(user)s removed; the policy applies again.")
                % {"user": member.email},
            )
        return redirect(self.page_url())


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


class DistributionPreviewView(DistributionPanelMixin, TemplateView):
    """What "Run now" would change, per user; nothing changes here. The Run button
    lives on this page, so a run is always confirmed against its preview."""

    template_name = "tokens/distribution_preview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        equal = self.request.GET.get("equal") in ("1", "on", "true")
        policy = distribution.policy_ensure(organization=self.org)
        plan = distribution.distribution_plan(
            organization=self.org, distribute_equally=equal
        )
        effect = plan_effect(plan)
        context.update(
            policy=policy,
            plan=plan,
            changes=plan.changes,
            rows=[(change, signed(change.delta)) for change in plan.changes],
            effect=effect,
            shortfall=[row for row in effect if row["shortfall"]],
            equal=equal,
            run_form=DistributionRunForm(initial={"distribute_equally": equal}),
        )
        return context


class DistributionRunView(DistributionPanelMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = DistributionRunForm(request.POST)
        form.is_valid()  # a single checkbox: always valid
        equal = bool(form.cleaned_data.get("distribute_equally"))
        try:
            run = distribution.distribution_run(
                actor=request.user,
                organization=self.org,
                distribute_equally=equal,
                trigger=DistributionRun.Trigger.MANUAL,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            url = self.org_url("tokens:distribution_preview")
            if equal:
                url += ("&" if "?" in url else "?") + "equal=1"
            return redirect(url)
        messages.success(request, run_message(run))
        return redirect(self.page_url())


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
