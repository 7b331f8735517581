from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView

from accounts.access import PanelAccessMixin
from accounts.services import user_has_mfa


class MeView(LoginRequiredMixin, TemplateView):
    """A member's own page: profile now; balances and requests in later issues."""

    template_name = "tokens/me.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["has_mfa"] = user_has_mfa(self.request.user)
        return context


class PlaceholderPanelView(PanelAccessMixin, TemplateView):
    """A panel page whose issue is not done yet: an honest empty state."""

    template_name = "panel/placeholder.html"
    title = ""
    detail = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title=self.title, detail=self.detail)
        return context
