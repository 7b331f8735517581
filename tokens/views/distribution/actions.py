"""The POST-only views of Token Distribution: each form posts to its own view,
which calls one service of ``tokens.services.distribution`` and redirects back
with a message, or renders the page again with the form's errors (status 400) and
nothing changed; the preview and the run."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import TemplateView

from tokens import selectors
from tokens.forms.distribution import (
    AutoIncreaseForm,
    DistributionRunForm,
    FloorCeilingForm,
    OverrideForm,
    PresetForm,
    ReclamationForm,
    ScheduleForm,
)
from tokens.models import DistributionPolicy, DistributionRun
from tokens.services import distribution
from tokens.views.distribution.page import DistributionPanelMixin, DistributionView
from tokens.views.distribution.text import plan_effect, run_message, signed

Preset = DistributionPolicy.Preset
BumpMode = DistributionPolicy.BumpMode


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
