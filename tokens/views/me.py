from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.views.generic import TemplateView

from accounts.models import EnterpriseAccountRequest
from accounts.services import user_has_mfa
from asksage_admin.lib.periods import period_of
from tokens import selectors
from tokens.forms.requests import TokenRequestForm
from tokens.models import TokenType
from tokens.selectors.forecasts import user_forecasts
from tokens.services.requests import check_requester


class MeView(LoginRequiredMixin, TemplateView):
    """A member's own page: profile, this month's balance per token type (limit,
    used, held, remaining, overage), the Request tokens form with the history of
    their requests, and this month's usage by model. A user outside an organization
    sees the profile and a note instead of balances."""

    template_name = "tokens/me.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context["has_mfa"] = user_has_mfa(user)
        if user.organization_id is None:
            context["enterprise_pending"] = (
                EnterpriseAccountRequest.objects.filter(
                    requested_by=user, status=EnterpriseAccountRequest.Status.PENDING
                )
                .order_by("-created_at")
                .first()
            )
            return context
        period = period_of()
        context["period"] = period
        balances = selectors.user_balances(user.organization, user, period)
        # The month-end projection (docs/forecasts.md): one query on the daily rollup.
        forecasts = {
            f.token_type: f
            for f in user_forecasts(
                user.organization, user, {b.token_type: b.limit for b in balances}
            )
        }
        context["balances"] = [
            {
                "forecast": forecasts.get(balance.token_type),
                "balance": balance,
                "label": TokenType(balance.token_type).label,
                # <progress> needs max > 0; spent is capped at the limit (the
                # overage is shown as a number).
                "meter_max": max(balance.limit, 1),
                "meter_value": min(balance.used + balance.held, balance.limit),
                "percent": (
                    round(100 * (balance.used + balance.held) / balance.limit)
                    if balance.limit
                    else 0
                ),
            }
            for balance in balances
        ]
        context["usage_by_model"] = selectors.user_usage_by_model(
            user.organization, user, period
        )
        context["request_form"] = kwargs.get("request_form") or TokenRequestForm()
        context["request_blocked"] = request_blocked_reason(user)
        context["token_requests"] = selectors.user_token_requests(
            user.organization, user
        )[:50]
        return context


def request_blocked_reason(user) -> str:
    """Why this member cannot request tokens now ("" when they can)."""
    try:
        check_requester(user)
    except ValidationError as refusal:
        return refusal.messages[0]
    return ""
