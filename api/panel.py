"""The panel's API pages (docs/admin-api.md): an admin's personal access tokens
(list, create with the secret shown once, revoke) and the admin API's reference,
rendered on the server from the generated OpenAPI document (no script, no CDN)."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import TemplateView

from accounts.access import PanelAccessMixin
from accounts.access_tokens import (
    EXPIRY_DAYS,
    access_token_create,
    access_token_revoke,
    access_tokens_of,
)
from accounts.models import AdminAccessToken


class AccessTokenForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    scope = forms.ChoiceField(
        label=gettext_lazy("Access"),
        choices=AdminAccessToken.Scope.choices,
        initial=AdminAccessToken.Scope.READ,
    )
    expires_in_days = forms.TypedChoiceField(
        label=gettext_lazy("Expires after"),
        choices=[(d, gettext_lazy("%(d)s days") % {"d": d}) for d in EXPIRY_DAYS],
        coerce=int,
        initial=90,
    )


class TokensPanelMixin(PanelAccessMixin):
    nav_active = "api"

    def list_url(self) -> str:
        return reverse("api_panel:token_list") + self.panel_context()["org_query"]


class TokenListView(TokensPanelMixin, TemplateView):
    template_name = "api/token_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", AccessTokenForm())
        context["tokens"] = access_tokens_of(self.org)
        return context


class TokenCreateView(TokensPanelMixin, View):
    """POST: create a token; the page shows its secret once (never stored)."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = AccessTokenForm(request.POST)
        secret = None
        if form.is_valid():
            try:
                _token, secret = access_token_create(
                    actor=request.user, **form.cleaned_data
                )
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
        context = {
            **self.panel_context(),
            "form": AccessTokenForm() if secret else form,
            "tokens": access_tokens_of(self.org),
            "secret": secret,
        }
        response = TemplateResponse(
            request, "api/token_list.html", context, status=200 if secret else 400
        )
        response["Cache-Control"] = "no-store"
        return response


class TokenRevokeView(TokensPanelMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        token = get_object_or_404(access_tokens_of(self.org), pk=pk)
        try:
            access_token_revoke(actor=request.user, token=token)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(
                request, _("Token “%(name)s” revoked.") % {"name": token.name}
            )
        return redirect(self.list_url())


def _operations(document: dict) -> list[dict]:
    """The document's operations in order, with their parameters, body and
    responses flattened for the template."""
    schemas = document.get("components", {}).get("schemas", {})

    def resolve(node: dict | None) -> dict:
        while node and "$ref" in node:
            node = schemas.get(node["$ref"].rsplit("/", 1)[1], {})
        return node or {}

    operations = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {})
            body_schema = resolve(next(iter(body.values()), {}).get("schema"))
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or [""])[0],
                    "write": method != "get",
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": resolve(p.get("schema")).get("type", ""),
                            "description": p.get("description", ""),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "body": [
                        {
                            "name": name,
                            "type": prop.get("type", ""),
                            "required": name in body_schema.get("required", []),
                        }
                        for name, prop in body_schema.get("properties", {}).items()
                    ],
                    "responses": sorted(op.get("responses", {})),
                }
            )
    return operations


class ApiDocsView(TokensPanelMixin, TemplateView):
    template_name = "api/docs.html"

    def get_context_data(self, **kwargs):
        from api.admin import admin_api

        context = super().get_context_data(**kwargs)
        document = admin_api.get_openapi_schema(path_prefix="/api/v1/admin")
        context.update(
            document=document,
            operations=_operations(document),
            openapi_url=reverse("admin_api:openapi-json"),
        )
        return context
