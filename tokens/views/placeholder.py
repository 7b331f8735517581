from django.views.generic import TemplateView

from accounts.access import PanelAccessMixin


class PlaceholderPanelView(PanelAccessMixin, TemplateView):
    """A panel page whose issue is not done yet: an honest empty state."""

    template_name = "panel/placeholder.html"
    title = ""
    detail = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(title=self.title, detail=self.detail)
        return context
