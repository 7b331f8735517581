from django.urls import path, re_path

from tokens import api, enterprise_views, views

app_name = "tokens"

urlpatterns = [
    path("api/v1/authorize", api.authorize, name="api_authorize"),
    path("api/v1/usage", api.usage, name="api_usage"),
    path("api/v1/balance", api.balance, name="api_balance"),
    path(
        "api/v1/holds/<uuid:hold_id>/release",
        api.hold_release,
        name="api_hold_release",
    ),
    re_path(r"^api/", api.not_found, name="api_not_found"),
    path("me/", views.MeView.as_view(), name="me"),
    path(
        "enterprise/request/",
        enterprise_views.enterprise_request,
        name="enterprise_request",
    ),
    path(
        "panel/users/",
        views.PlaceholderPanelView.as_view(
            nav_active="users",
            title="User Management",
            detail="Users, their paid and banned status, and their token limits.",
        ),
        name="user_list",
    ),
    path(
        "panel/distribution/",
        views.PlaceholderPanelView.as_view(
            nav_active="distribution",
            title="Token Distribution",
            detail="Allocation presets, floors and ceilings, auto-increase and "
            "reclamation.",
        ),
        name="distribution",
    ),
    path(
        "panel/requests/",
        views.PlaceholderPanelView.as_view(
            nav_active="requests",
            title="Token Requests",
            detail="Users' requests for more tokens, to approve or deny.",
        ),
        name="request_list",
    ),
]
