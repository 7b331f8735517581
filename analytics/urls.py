from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path(
        "panel/statistics/",
        views.PlaceholderPanelView.as_view(
            nav_active="statistics",
            title="Token Statistics",
            detail="Usage dashboards, charts and CSV exports.",
        ),
        name="statistics",
    ),
    path(
        "panel/activity/",
        views.PlaceholderPanelView.as_view(
            nav_active="activity",
            title="Activity Logs",
            detail="User activity and the audit trail.",
        ),
        name="activity",
    ),
]
