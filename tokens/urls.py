from django.urls import path

from tokens import views

app_name = "tokens"

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
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
