from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from accounts import views as account_views
from api.admin import admin_api
from api.base import not_found
from api.gateway import gateway_api
from asksage_admin import views

admin.site.site_header = "Enterprise Account · Staff"
admin.site.site_title = "Enterprise Account staff"
admin.site.index_title = "Sales and operations"

urlpatterns = [
    path("", account_views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("terms/", views.terms, name="terms"),
    path("accounts/", include("accounts.urls")),
    # The APIs (docs/admin-api.md, docs/gateway-api.md); any other /api/ path is a
    # JSON 404.
    path("api/v1/admin/", admin_api.urls),
    path("api/v1/", gateway_api.urls),
    re_path(r"^api/", not_found, name="api_not_found"),
    path("panel/api-tokens/", include("api.urls")),
    path(
        "panel/",
        RedirectView.as_view(pattern_name="tokens:user_list", query_string=True),
        name="panel",
    ),
    path("", include("tokens.urls")),
    path("", include("analytics.urls")),
    path("staff/", admin.site.urls),
]

handler500 = "asksage_admin.views.server_error"
