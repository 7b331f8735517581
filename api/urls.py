"""The panel's API pages (docs/admin-api.md)."""

from django.urls import path

from api import panel

app_name = "api_panel"

urlpatterns = [
    path("", panel.TokenListView.as_view(), name="token_list"),
    path("create/", panel.TokenCreateView.as_view(), name="token_create"),
    path("<int:pk>/revoke/", panel.TokenRevokeView.as_view(), name="token_revoke"),
    path("docs/", panel.ApiDocsView.as_view(), name="docs"),
]
