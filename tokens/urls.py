"""Every URL of the tokens app: /me/, the enterprise intake and the
Management pages of the admin panel."""

from django.urls import path

from tokens.views import (
    alerts,
    distribution,
    enterprise,
    me,
    members,
    requests,
    withdrawal,
)

app_name = "tokens"

urlpatterns = [
    # Members
    path("me/", me.MeView.as_view(), name="me"),
    path(
        "enterprise/request/", enterprise.enterprise_request, name="enterprise_request"
    ),
    path(
        "enterprise/request/<int:pk>/withdraw/",
        withdrawal.enterprise_request_withdraw_view,
        name="enterprise_request_withdraw",
    ),
    path(
        "me/requests/<int:pk>/withdraw/",
        withdrawal.token_request_withdraw_view,
        name="request_withdraw",
    ),
    # Management → User Management (docs/product.md, User Management)
    path("panel/users/", members.UserListView.as_view(), name="user_list"),
    path(
        "panel/users/export.csv", members.UserExportView.as_view(), name="user_export"
    ),
    path("panel/users/bulk/", members.UserBulkView.as_view(), name="user_bulk"),
    path(
        "panel/users/columns/", members.UserColumnsView.as_view(), name="user_columns"
    ),
    path("panel/users/<int:pk>/", members.UserDetailView.as_view(), name="user_detail"),
    path(
        "panel/users/<int:pk>/limits/<str:token_type>/",
        members.UserLimitEditView.as_view(),
        name="user_limit_edit",
    ),
    path(
        "panel/users/<int:pk>/deactivate/confirm/",
        members.UserActionConfirmView.as_view(action="deactivate"),
        name="user_deactivate_confirm",
    ),
    path(
        "panel/users/<int:pk>/deactivate/",
        members.user_deactivate,
        name="user_deactivate",
    ),
    path(
        "panel/users/<int:pk>/reactivate/",
        members.user_reactivate,
        name="user_reactivate",
    ),
    path(
        "panel/users/<int:pk>/ban/confirm/",
        members.UserActionConfirmView.as_view(action="ban"),
        name="user_ban_confirm",
    ),
    path("panel/users/<int:pk>/ban/", members.user_ban, name="user_ban"),
    path("panel/users/<int:pk>/unban/", members.user_unban, name="user_unban"),
    path("panel/users/<int:pk>/verify/", members.user_verify, name="user_verify"),
    # Management → Token Distribution (docs/product.md, Token Distribution)
    path(
        "panel/distribution/",
        distribution.DistributionView.as_view(),
        name="distribution",
    ),
    path(
        "panel/distribution/preset/",
        distribution.PresetApplyView.as_view(),
        name="distribution_preset_apply",
    ),
    path(
        "panel/distribution/limits/",
        distribution.LimitsUpdateView.as_view(),
        name="distribution_limits_update",
    ),
    path(
        "panel/distribution/auto-increase/",
        distribution.AutoIncreaseUpdateView.as_view(),
        name="distribution_auto_increase_update",
    ),
    path(
        "panel/distribution/reclamation/",
        distribution.ReclamationUpdateView.as_view(),
        name="distribution_reclamation_update",
    ),
    path(
        "panel/distribution/schedule/",
        distribution.ScheduleUpdateView.as_view(),
        name="distribution_schedule_update",
    ),
    path(
        "panel/distribution/preview/",
        distribution.DistributionPreviewView.as_view(),
        name="distribution_preview",
    ),
    path(
        "panel/distribution/run/",
        distribution.DistributionRunView.as_view(),
        name="distribution_run",
    ),
    path(
        "panel/distribution/overrides/",
        distribution.OverrideSetView.as_view(),
        name="distribution_override_set",
    ),
    path(
        "panel/distribution/overrides/<int:user_id>/remove/",
        distribution.OverrideRemoveView.as_view(),
        name="distribution_override_remove",
    ),
    # Management → Token Requests (docs/product.md, Token Requests)
    path("panel/requests/", requests.RequestListView.as_view(), name="request_list"),
    path(
        "panel/requests/<int:pk>/approve/",
        requests.RequestApproveView.as_view(),
        name="request_approve",
    ),
    path(
        "panel/requests/<int:pk>/deny/",
        requests.RequestDenyView.as_view(),
        name="request_deny",
    ),
    path(
        "panel/requests/auto-approval/",
        requests.AutoApprovalUpdateView.as_view(),
        name="request_auto_approval",
    ),
    path(
        "me/requests/",
        requests.TokenRequestSubmitView.as_view(),
        name="request_submit",
    ),
    # Management → Alerts (docs/forecasts.md, Alerts)
    path("panel/alerts/", alerts.AlertsView.as_view(), name="alerts"),
    path(
        "panel/alerts/settings/",
        alerts.AlertSettingsUpdateView.as_view(),
        name="alert_settings_update",
    ),
    path(
        "panel/alerts/test/",
        alerts.AlertWebhookTestView.as_view(),
        name="alert_webhook_test",
    ),
]
