"""The Token Distribution page (``DistributionView``): allocation status, presets,
every policy form, overrides and recent runs."""

from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView

from accounts.access import PanelAccessMixin
from tokens import selectors
from tokens.forms.distribution import (
    AutoIncreaseForm,
    FloorCeilingForm,
    OverrideForm,
    PresetForm,
    ReclamationForm,
    ScheduleForm,
    amount_text,
    percent_text,
)
from tokens.models import DistributionPolicy, UserOverride
from tokens.selectors.distribution import overrides_in, recent_runs
from tokens.selectors.forecasts import org_forecasts
from tokens.services import distribution
from tokens.views.distribution.text import describe

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
