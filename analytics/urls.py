from django.urls import path

from analytics.views import activity, statistics

app_name = "analytics"

urlpatterns = [
    # Analytics → Token Statistics (docs/product.md, Token Statistics)
    path("panel/statistics/", statistics.StatisticsView.as_view(), name="statistics"),
    path(
        "panel/statistics/export/monthly.csv",
        statistics.MonthlyExportView.as_view(),
        name="statistics_export_monthly",
    ),
    path(
        "panel/statistics/export/users.csv",
        statistics.UserExportView.as_view(),
        name="statistics_export_users",
    ),
    path(
        "panel/statistics/export/models.csv",
        statistics.ModelExportView.as_view(),
        name="statistics_export_models",
    ),
    path(
        "panel/statistics/export/events.csv",
        statistics.EventExportView.as_view(),
        name="statistics_export_events",
    ),
    # Analytics → Activity Logs (docs/product.md, Activity Logs)
    path("panel/activity/", activity.ActivityView.as_view(), name="activity"),
    path(
        "panel/activity/export/<str:tab>.csv",
        activity.ActivityExportView.as_view(),
        name="activity_export",
    ),
    path(
        "panel/activity/settings/excerpts/",
        activity.ExcerptSettingView.as_view(),
        name="activity_excerpts",
    ),
]
