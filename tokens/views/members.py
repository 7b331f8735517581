"""Management → User Management (docs/product.md, User Management): the table, limits,
row and bulk actions."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    QueryDict,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views import View
from django.views.generic import TemplateView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from accounts.access import PanelAccessMixin
from accounts.selectors import table_columns_of
from accounts.services import (
    data_export_record,
    table_columns_set,
    user_has_mfa,
    user_mark_verified,
)
from asksage_admin.lib.csv import csv_response
from asksage_admin.lib.next_url import safe_next
from tokens import selectors, services
from tokens.filtersets.members import UserFilterSet
from tokens.forms.members import BulkActionForm, LimitForm
from tokens.selectors.forecasts import with_limit_projection
from tokens.services.pool import fmt, type_label
from tokens.tables.columns import PAGE_SIZES
from tokens.tables.members import CHOOSABLE_USER_COLUMNS, UserTable
from tokens.views.bulk_review import BulkEffect, bulk_preview


class UsersPanelMixin(PanelAccessMixin):
    nav_active = "users"

    def org_url(self, name: str, **kwargs) -> str:
        return reverse(name, kwargs=kwargs or None) + self.panel_context()["org_query"]

    def get_user(self, pk: int):
        """The org's user or 404: another organization's user does not exist here."""
        return get_object_or_404(selectors.users_in(self.org), pk=pk)

    def back_url(self, default: str) -> str:
        return safe_next(self.request, default)


class UserListView(UsersPanelMixin, SingleTableMixin, FilterView):
    template_name = "tokens/user_list.html"
    table_class = UserTable
    filterset_class = UserFilterSet

    def get_queryset(self):
        # "Likely to hit the limit" (docs/forecasts.md): a sortable projection.
        return with_limit_projection(selectors.users_for_panel(self.org), self.org)

    def get_table_kwargs(self):
        return {
            "org_query": self.panel_context()["org_query"],
            "chosen": table_columns_of(self.request.user, "users"),
        }

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.copy()
        query.pop("page", None)
        context.update(
            summary=selectors.org_summary(self.org),
            user_count=selectors.users_in(self.org).count(),
            page_sizes=PAGE_SIZES,
            current_query=query.urlencode(),
            bulk_form=BulkActionForm(),
            filtered_count=self.object_list.count(),
            column_choices=column_choices(context["table"]),
        )
        return context


def column_choices(table) -> list[tuple[str, str, bool]]:
    """(name, label, shown) of every column the admin may show or hide."""
    return [
        (name, table.columns[name].header, table.columns[name].visible)
        for name in CHOOSABLE_USER_COLUMNS
    ]


class UserColumnsView(UsersPanelMixin, View):
    """Save the admin's choice of User Management columns (their own display
    preference, not audited: docs/product.md, User Management)."""

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            table_columns_set(
                user=request.user,
                table="users",
                columns=request.POST.getlist("columns"),
                choosable=CHOOSABLE_USER_COLUMNS,
            )
        except ValidationError as error:
            for message in error.messages:
                messages.error(request, message)
        else:
            messages.success(request, _("Columns saved."))
        return redirect(self.back_url(self.org_url("tokens:user_list")))


class UserExportView(UsersPanelMixin, View):
    """The filtered table as CSV (same columns), streamed."""

    def get(self, request: HttpRequest) -> StreamingHttpResponse:
        filterset = UserFilterSet(
            request.GET, queryset=selectors.users_for_panel(self.org)
        )
        rows = filterset.qs.order_by("email") if filterset.is_valid() else []
        data_export_record(
            actor=request.user,
            organization=self.org,
            what="users",
            filters={k: v for k, v in request.GET.items() if k != "org"},
        )
        return csv_response(
            filename=f"users-{self.org.pk}-{timezone.now():%Y-%m-%d}.csv",
            header=[
                "ID",
                "Name",
                "Email",
                "MFA",
                "Type",
                "Paid",
                "Banned",
                "Verified",
                "Max Inference Tokens",
                "Max Embedding Tokens",
                "Monthly Inference",
                "Prev Month Inference",
                "Total Usage",
                "Last active",
            ],
            rows=(
                [
                    u.pk,
                    u.get_full_name(),
                    u.email,
                    _yes(u.has_mfa),
                    u.get_role_display(),
                    _yes(u.is_paid),
                    _yes(u.is_banned),
                    _yes(u.email_verified_at),
                    u.max_inference,
                    u.max_embedding,
                    u.monthly_inference,
                    u.prev_month_inference,
                    u.total_usage,
                    u.last_active.isoformat() if u.last_active else "",
                ]
                for u in (rows.iterator(chunk_size=2000) if rows else rows)
            ),
        )


def _yes(value) -> str:
    return "yes" if value else "no"


class UserDetailView(UsersPanelMixin, TemplateView):
    template_name = "tokens/user_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        member = get_object_or_404(
            selectors.users_in(self.org).annotate(
                last_active=selectors.last_active(self.org)
            ),
            pk=self.kwargs["pk"],
        )
        context.update(
            member=member,
            has_mfa=user_has_mfa(member),
            balances=selectors.user_balances(self.org, member),
            changes=selectors.allocation_history(self.org, member)[:50],
            activity=selectors.recent_usage(self.org, member)[:20],
        )
        return context


class UserLimitEditView(UsersPanelMixin, TemplateView):
    """One user's Max Inference / Max Embedding Tokens, one type per save."""

    template_name = "tokens/user_limit_form.html"

    def dispatch_user(self):
        self.member = self.get_user(self.kwargs["pk"])
        self.token_type = self.kwargs["token_type"]
        if self.token_type not in selectors.TYPES:
            raise Http404(_("No such token type."))
        self.balance = selectors.user_balance(self.org, self.member, self.token_type)

    def get(self, request, *args, **kwargs):
        self.dispatch_user()
        return self.render(LimitForm(initial={"limit": self.balance.limit}))

    def post(self, request, *args, **kwargs):
        self.dispatch_user()
        form = LimitForm(request.POST)
        if form.is_valid():
            try:
                services.allocation_set_limit(
                    actor=request.user,
                    user=self.member,
                    token_type=self.token_type,
                    limit=form.cleaned_data["limit"],
                    allow_below_minimum=form.cleaned_data["confirm_below_minimum"],
                )
            except ValidationError as error:
                form.add_error("limit", error)
            else:
                summary = selectors.org_summary(self.org)[self.token_type]
                messages.success(
                    request,
                    _(
                        "%(user)s: max %(type)s tokens set to %(limit)s. Unallocated "
                        "%(type)s tokens now: %(free)s."
                    )
                    % {
                        "user": self.member.email,
                        "type": type_label(self.token_type),
                        "limit": fmt(form.cleaned_data["limit"]),
                        "free": fmt(summary.unallocated),
                    },
                )
                return redirect(self.back_url(self.org_url("tokens:user_list")))
        return self.render(form, status=400)

    def render(self, form, status=200):
        summary = selectors.org_summary(self.org)[self.token_type]
        context = self.get_context_data(
            form=form,
            member=self.member,
            token_type=self.token_type,
            type_label=type_label(self.token_type),
            balance=self.balance,
            unallocated=summary.unallocated,
            maximum=self.balance.limit + summary.unallocated,
            minimum=settings.MIN_USER_TOKENS,
            next=self.back_url(""),
        )
        return self.response_class(
            self.request, self.template_name, context, status=status
        )


# --- row actions: a confirmation page (GET) where the change is destructive, then
# one POST-only view per action ---------------------------------------------------

CONFIRMATIONS = {
    "deactivate": (
        _("Deactivate %(user)s?"),
        _(
            "Paid will be switched off: this user's limits drop to %(disabled)s tokens "
            "per type and the rest returns to the pool. You can reactivate later."
        ),
        _("Deactivate"),
    ),
    "ban": (
        _("Ban %(user)s?"),
        _(
            "A banned user cannot sign in and the gateway refuses their requests. "
            "Their data is kept. You can unban later."
        ),
        _("Ban user"),
    ),
}


class UserActionConfirmView(UsersPanelMixin, TemplateView):
    template_name = "tokens/user_action_confirm.html"
    action = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        member = self.get_user(self.kwargs["pk"])
        title, body, button = CONFIRMATIONS[self.action]
        names = {"user": member.email, "disabled": fmt(settings.DISABLED_USER_TOKENS)}
        context.update(
            member=member,
            title=title % names,
            body=body % names,
            button=button,
            action_url=self.org_url(f"tokens:user_{self.action}", pk=member.pk),
            next=self.back_url(""),
        )
        return context


class UserActionView(UsersPanelMixin, View):
    """POST only: run one service on one user, then back with a message."""

    http_method_names = ["post"]
    service = None
    done = ""

    def post(self, request, pk: int) -> HttpResponse:
        member = self.get_user(pk)
        try:
            self.service(actor=request.user, user=member)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, self.message(member))
        return redirect(self.back_url(self.org_url("tokens:user_detail", pk=pk)))

    def message(self, member) -> str:
        return self.done % {"user": member.email}


class UserReactivateView(UserActionView):
    """Reactivation says what it granted: the floor, or less when the pool is short."""

    def message(self, member) -> str:
        limits = selectors.user_limits(self.org, member)
        return _(
            "%(user)s reactivated: inference limit %(inference)s, embedding limit "
            "%(embedding)s (the user's floor, as far as the unallocated pool allows)."
        ) % {
            "user": member.email,
            "inference": fmt(limits["inference"]),
            "embedding": fmt(limits["embedding"]),
        }


def _action(service, done, view=UserActionView):
    return view.as_view(service=service, done=done)


user_deactivate = _action(
    services.user_deactivate, _("%(user)s deactivated: limits set to the minimum.")
)
user_reactivate = _action(
    services.user_reactivate, _("%(user)s reactivated."), view=UserReactivateView
)
user_ban = _action(services.user_ban, _("%(user)s banned."))
user_unban = _action(services.user_unban, _("%(user)s unbanned."))
user_verify = _action(user_mark_verified, _("%(user)s marked as verified."))


# --- bulk actions ------------------------------------------------------------------


class UserBulkView(UsersPanelMixin, View):
    """POST the selection (pks, or "all matching" with the filter query) and an
    action: first a confirmation page listing the users and the pool effect, then
    (with ``confirmed``) one transaction and a redirect with the count."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        form = BulkActionForm(request.POST)
        users = self.selected_users()
        list_url = self.org_url("tokens:user_list")
        if request.POST.get("query"):
            list_url += ("&" if "?" in list_url else "?") + request.POST["query"]
        if not form.is_valid():
            messages.error(request, " ".join(form.error_messages_flat()))
            return redirect(list_url)
        if not users:
            messages.error(request, _("Select at least one user first."))
            return redirect(list_url)
        if not request.POST.get("confirmed"):
            return TemplateResponse(
                request,
                "tokens/user_bulk_confirm.html",
                {
                    **self.panel_context(),
                    "form": form,
                    "users": users,
                    "effect": self.effect(form.cleaned_data, users),
                    "post": request.POST,
                    "selected_pks": request.POST.getlist("pk"),
                    "list_url": list_url,
                },
            )
        try:
            count = self.run(form.cleaned_data, users)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, self.done_message(form.cleaned_data, count))
        return redirect(list_url)

    def effect(self, data: dict, users: list) -> BulkEffect:
        """The pool effect, refused up front (the button disabled, the reason
        shown) when the selection includes the admin themselves and the action
        may not be taken on oneself: the service would refuse it whole."""
        return bulk_preview(self.org, self.request.user, users, data)

    def selected_users(self) -> list:
        users = selectors.users_in(self.org).order_by("email")
        if self.request.POST.get("select_all") == "1":
            filterset = UserFilterSet(
                QueryDict(self.request.POST.get("query", "")), queryset=users
            )
            return list(filterset.qs) if filterset.is_valid() else []
        pks = [pk for pk in self.request.POST.getlist("pk") if pk.isdigit()]
        return list(users.filter(pk__in=pks))

    def run(self, data: dict, users: list) -> int:
        action, actor = data["action"], self.request.user
        if action in ("paid_on", "paid_off"):
            changed = services.users_set_paid(
                actor=actor,
                organization=self.org,
                users=users,
                paid=action == "paid_on",
            )
        elif action in ("ban", "unban"):
            changed = services.users_set_banned(
                actor=actor, organization=self.org, users=users, banned=action == "ban"
            )
        else:
            changed = {
                c.user_id
                for c in services.allocations_bulk_set_limit(
                    actor=actor,
                    organization=self.org,
                    users=users,
                    token_type=data["token_type"],
                    limit=data["limit"],
                    allow_below_minimum=data["confirm_below_minimum"],
                )
            }
        return len(changed)

    def done_message(self, data: dict, count: int) -> str:
        templates = {
            "paid_on": ngettext(
                "Reactivated %(n)d user.", "Reactivated %(n)d users.", count
            ),
            "paid_off": ngettext(
                "Deactivated %(n)d user.", "Deactivated %(n)d users.", count
            ),
            "ban": ngettext("Banned %(n)d user.", "Banned %(n)d users.", count),
            "unban": ngettext("Unbanned %(n)d user.", "Unbanned %(n)d users.", count),
            "set_limit": ngettext(
                "Changed the limit of %(n)d user.",
                "Changed the limit of %(n)d users.",
                count,
            ),
        }
        return templates[data["action"]] % {"n": count}
