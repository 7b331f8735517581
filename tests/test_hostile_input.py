"""Hostile and boundary input on every page and every form (issue 14, defect 7):
never a 5xx, and a refusal (4xx) saves nothing.

Every URL of the project (from the resolver) is either a PAGE opened with GET as the
person who works there (the org admin with MFA on the panel, a member on ``/me/``,
staff on ``/staff/``, anonymous on the sign-in pages), a FORM_TARGET reached through a
form found on one of those pages, or EXCLUDED with the reason. A URL added without
being placed fails ``test_every_url_is_covered``.

For each page, every value of ``HOSTILE`` goes into every query parameter the page
reads (the fields of its GET forms plus the common ones: paging, sorting, cursors,
tabs, periods); then every form found on the page (its fields read from the
rendered HTML, so a field added to a form class is covered without touching this
file) is posted with each hostile value in all its fields at once, and with the most
dangerous values (64-bit overflow, NUL, a 10 KB string, an impossible date) in each
field on its own. Runs on SQLite and on PostgreSQL, which refuses NUL in text and
integers beyond 64 bits.
"""

import html.parser
from urllib.parse import quote_plus, urlsplit

import pytest
from django.contrib import admin
from django.db.models import Q
from django.urls import resolve, reverse

from accounts.models import AuditEvent
from tests.conftest import sign_in
from tests.test_authorization_matrix import ROUTES, project_url_names, world  # noqa: F401
from tokens.models import AllocationChange

pytestmark = pytest.mark.django_db

SURROGATE = "\ud800"  # sent as the raw UTF-8-ish bytes %ED%A0%80
TEN_KB = "x" * 10_240
HOSTILE = [
    "",
    " ",
    "-1",
    "0",
    str(2**63),
    str(2**64),
    "1e309",
    "NaN",
    "1,000",
    TEN_KB,
    "\x00",
    "a\x00b",
    SURROGATE,
    "<script>alert(1)</script>",
    "' OR 1=1--",
    "2026-02-30",
    "2026-13-01T00:00:00_5",
    "１２３",  # fullwidth digits
    "٥٠٠",  # Arabic-Indic digits
    "lıam.garcıa@acme.example",  # dotless i
]
# Each alone in every field (the values that overflowed or broke storage before).
PER_FIELD = [str(2**63), "\x00", TEN_KB]
COMMON_QUERY = [
    "page",
    "per_page",
    "sort",
    "after",
    "before",
    "tab",
    "status",
    "next",
    "org",
    "override",
    "equal",
    "period",
    "month",
    "start",
    "end",
    "token_type",
    "q",
    "o",
    "p",
    "e",
    "all",
]

# --- where each URL is exercised ------------------------------------------------------

ADMIN, MEMBER, OUTSIDER, ANON, STAFF = "admin", "member", "outsider", "anon", "staff"

PAGES = {
    # name: the person who works there (kwargs and query from the authorization
    # matrix's ROUTES)
    "tokens:me": MEMBER,
    "tokens:enterprise_request": OUTSIDER,
    "tokens:user_list": ADMIN,
    "tokens:user_export": ADMIN,
    "tokens:user_detail": ADMIN,
    "tokens:user_limit_edit": ADMIN,
    "tokens:user_deactivate_confirm": ADMIN,
    "tokens:user_ban_confirm": ADMIN,
    "tokens:distribution": ADMIN,
    "tokens:distribution_preview": ADMIN,
    "tokens:request_list": ADMIN,
    "tokens:request_approve": ADMIN,
    "tokens:request_deny": ADMIN,
    "tokens:alerts": ADMIN,
    "analytics:statistics": ADMIN,
    "analytics:statistics_export_monthly": ADMIN,
    "analytics:statistics_export_users": ADMIN,
    "analytics:statistics_export_models": ADMIN,
    "analytics:statistics_export_events": ADMIN,
    "analytics:activity": ADMIN,
    "analytics:activity_export": ADMIN,
    "accounts:login": ANON,
    "accounts:register": ANON,
    "accounts:password_reset": ANON,
    "accounts:password_reset_done": ANON,
    "accounts:password_reset_complete": ANON,
    "accounts:password_reset_confirm": ANON,
    "api_panel:token_list": ADMIN,
    "api_panel:docs": ADMIN,
}
# POST-only URLs: the page whose form posts there (the page's test fails if the
# form is not found on it).
FORM_TARGETS = {
    "tokens:request_submit": "tokens:me",
    "tokens:user_bulk": "tokens:user_list",
    "tokens:user_columns": "tokens:user_list",
    "tokens:user_deactivate": "tokens:user_deactivate_confirm",
    "tokens:user_ban": "tokens:user_ban_confirm",
    "tokens:distribution_preset_apply": "tokens:distribution",
    "tokens:distribution_limits_update": "tokens:distribution",
    "tokens:distribution_auto_increase_update": "tokens:distribution",
    "tokens:distribution_reclamation_update": "tokens:distribution",
    "tokens:distribution_schedule_update": "tokens:distribution",
    "tokens:distribution_override_set": "tokens:distribution",
    "tokens:distribution_override_remove": "tokens:distribution",
    "tokens:distribution_run": "tokens:distribution_preview",
    "tokens:request_auto_approval": "tokens:request_list",
    "tokens:alert_settings_update": "tokens:alerts",
    "analytics:activity_excerpts": "analytics:activity",
    "api_panel:token_create": "api_panel:token_list",
}
EXCLUDED = {
    "home": "redirects by role; reads no input",
    "panel": "redirects to User Management; reads no input",
    "healthz": "reads no input",
    "favicon": "a redirect to a static file; reads no input",
    "terms": "a static page; reads no input",
    "accounts:logout": "ends the session (its own tests); no fields",
    "accounts:verify_email": "the signed token is the whole input: bad tokens are "
    "tested in tests/accounts/test_registration.py",
    "accounts:mfa_setup": "MFA enrolment (tests/accounts/test_mfa.py sends bad codes)",
    "accounts:mfa_backup_codes": "shows codes once; no fields",
    "accounts:mfa_verify": "MFA code form (tests/accounts/test_mfa.py)",
    "accounts:verify_resend": "one POST without fields (a button on /me/ while the "
    "email is unverified)",
    "tokens:user_reactivate": "one POST without fields (a button on the user page)",
    "tokens:user_unban": "one POST without fields (a button on the user page)",
    "tokens:user_verify": "one POST without fields (a button on the user page)",
    "tokens:alert_webhook_test": "one POST without fields (a button on the Alerts "
    "page, shown once a webhook is saved)",
    "gateway_api:authorize": "JSON API: fuzzed by tests/tokens/test_api_fuzz.py",
    "gateway_api:usage": "JSON API: fuzzed by tests/tokens/test_api_fuzz.py",
    "gateway_api:balance": "JSON API: fuzzed by tests/tokens/test_api_fuzz.py",
    "gateway_api:hold_release": "JSON API: fuzzed by tests/tokens/test_api_fuzz.py",
    "gateway_api:openapi-json": "a generated document",
    "tokens:request_withdraw": "one POST without fields (a button on /me/ beside a "
    "pending request; tests/tokens/test_withdrawal.py)",
    "tokens:enterprise_request_withdraw": "one POST without fields (a button beside "
    "a pending request; tests/tokens/test_withdrawal.py)",
    "api_not_found": "JSON 404 for any path",
    "api_panel:token_revoke": "one POST without fields (a button on the tokens page)",
    "admin_api:api-root": "JSON 404",
    "gateway_api:api-root": "JSON 404",
    "admin_api:openapi-json": "a generated document",
    **{
        f"admin_api:{name}": "JSON API: fuzzed by tests/api/test_admin_api_fuzz.py"
        for name in (
            "token_info",
            "user_list",
            "user_detail",
            "user_set_limit",
            "user_set_paid",
            "user_ban",
            "user_unban",
            "users_bulk_set_limit",
            "request_list",
            "request_approve",
            "request_deny",
            "policy_read",
            "policy_update",
            "preset_apply",
            "plan_preview",
            "run_now",
            "usage_summary",
            "usage_events_csv",
            "audit_list",
        )
    },
}
# Django's own wording, which must never reach a person: every field says what is
# allowed in words of the product (docs/product.md, Numbers and dates).
RAW_FRAMEWORK_TEXT = [
    "Ensure this value",
    "Ensure that there are no more than",
    "9223372036854775807",
    "Select a valid choice",
    "is not one of the available choices",
    "Enter a number.",
    "Enter a valid date.",
    "Enter a valid date/time.",
]
# Forms on a page that post elsewhere and are not the page's to fuzz.
SKIP_ACTIONS = {"accounts:logout"}


def test_every_url_is_covered():
    names, _unnamed = project_url_names()
    placed = PAGES.keys() | FORM_TARGETS.keys() | EXCLUDED.keys()
    assert not sorted(names - placed), (
        "URLs not covered by the hostile-input test: add them to PAGES, "
        "FORM_TARGETS or EXCLUDED in tests/test_hostile_input.py"
    )
    assert not sorted(placed - names)
    assert not (PAGES.keys() & FORM_TARGETS.keys() & EXCLUDED.keys())


# --- reading the forms of a page ------------------------------------------------------


class FormParser(html.parser.HTMLParser):
    """Every <form>: method, action and its fields with their current values."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._form = None
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {
                "method": (a.get("method") or "get").lower(),
                "action": a.get("action") or "",
                "fields": {},
            }
            self.forms.append(self._form)
        elif self._form is None or not a.get("name"):
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form["fields"][a["name"]] = a.get("value", "on")
                else:
                    self._form["fields"].setdefault(a["name"], None)
            elif kind not in ("submit", "button", "image", "file", "reset"):
                self._form["fields"][a["name"]] = a.get("value", "")
        elif tag == "button":
            self._form["fields"].setdefault(a["name"], a.get("value", ""))
        elif tag == "select":
            self._select = a["name"]
            self._form["fields"].setdefault(self._select, None)
        elif tag == "option" and self._select:
            fields = self._form["fields"]
            if fields.get(self._select) is None or "selected" in a:
                fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self._form["fields"][self._textarea] = ""

    def handle_data(self, data):
        if self._textarea and self._form is not None:
            self._form["fields"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def forms_of(response) -> list[dict]:
    if "html" not in response.get("Content-Type", ""):
        return []
    parser = FormParser()
    parser.feed(response.content.decode())
    return parser.forms


def encode(data: dict) -> str:
    """Form encoding that can carry a lone surrogate (as its raw bytes)."""
    parts = []
    for key, values in data.items():
        for value in values if isinstance(values, list) else [values]:
            raw = str(value).encode("utf-8", "surrogatepass")
            parts.append(f"{quote_plus(key)}={quote_plus(raw)}")
    return "&".join(parts)


# --- sending --------------------------------------------------------------------------


def saved_state() -> tuple:
    """What a refusal must not change (sign-in bookkeeping and audited reads
    such as exports aside)."""
    writes = AuditEvent.objects.exclude(
        Q(action__startswith="auth.")
        | Q(action__startswith="mfa.")
        | Q(action=AuditEvent.Action.DATA_EXPORTED)
    )
    return writes.count(), AllocationChange.objects.count()


class Prober:
    def __init__(self, client, *, check_wording: bool = True):
        self.client = client
        self.check_wording = check_wording
        self.client.raise_request_exception = False
        self.problems: list[str] = []
        self.sent = 0

    def send(self, method: str, path: str, data: dict, what: str):
        before = saved_state()
        self.sent += 1
        try:
            if method == "get":
                url = f"{path}?{encode(data)}" if data else path
                response = self.client.get(url)
            else:
                response = self.client.post(
                    path, encode(data), content_type="application/x-www-form-urlencoded"
                )
        except Exception as error:
            self.problems.append(f"{what}: {type(error).__name__}: {error}"[:300])
            return None
        if response.status_code >= 500:
            self.problems.append(f"{what}: HTTP {response.status_code}")
        elif self.check_wording and "html" in response.get("Content-Type", ""):
            body = response.content.decode(errors="replace")
            raw = [text for text in RAW_FRAMEWORK_TEXT if text in body]
            if raw:
                self.problems.append(f"{what}: framework wording {raw}")
        elif response.status_code >= 400 and saved_state() != before:
            self.problems.append(f"{what}: refused ({response.status_code}) but saved")
        return response


def short(value: str) -> str:
    return repr(value if len(value) < 30 else value[:12] + f"…({len(value)})")


def client_for(persona: str, w, django_user_model):
    if persona == ANON:
        from django.test import Client

        return Client()
    if persona == ADMIN:
        return sign_in(w.admin, mfa=True)
    if persona == MEMBER:
        return sign_in(w.member)
    if persona == OUTSIDER:
        from tests.factories import UserFactory

        return sign_in(UserFactory(email="outsider@example.com", organization=None))
    raise AssertionError(persona)


def probe_page(prober: Prober, path: str, query: dict, label: str) -> list[dict]:
    """GET the page clean (its forms are read from it), then with every hostile
    value in every query parameter it reads."""
    response = prober.send("get", path, query, f"{label} GET clean")
    assert response is not None and response.status_code in (200, 302), (
        label,
        response and response.status_code,
        prober.problems,
    )
    forms = forms_of(response)
    names = set(COMMON_QUERY) | set(query)
    for form in forms:
        if form["method"] == "get":
            names |= set(form["fields"])
    for value in HOSTILE:
        prober.send(
            "get",
            path,
            {**query, **dict.fromkeys(names, value)},
            f"{label} GET all={short(value)}",
        )
    return forms


def probe_forms(prober: Prober, page_path: str, forms: list[dict], label: str) -> set:
    """POST every form of the page: all fields hostile at once, then the most
    dangerous values one field at a time. Returns the URL names posted to."""
    targets, seen = set(), set()
    for form in forms:
        if form["method"] != "post":
            continue
        action = form["action"] or page_path
        split = urlsplit(action)
        match = resolve(split.path)
        # One form per target and set of fields (a table repeats its row forms).
        key = (match.view_name, tuple(sorted(form["fields"])))
        if match.view_name in SKIP_ACTIONS or key in seen:
            continue
        seen.add(key)
        targets.add(match.view_name)
        path = split.path + (f"?{split.query}" if split.query else "")
        base = {k: v for k, v in form["fields"].items() if v is not None}
        fields = [k for k in form["fields"] if k != "csrfmiddlewaretoken"]
        where = f"{label} → {match.view_name}"
        for value in HOSTILE:
            data = {**base, **dict.fromkeys(fields, value)}
            prober.send("post", path, data, f"{where} all={short(value)}")
        for field in fields:
            for value in PER_FIELD:
                prober.send(
                    "post",
                    path,
                    {**base, field: value},
                    f"{where} {field}={short(value)}",
                )
    return targets


@pytest.mark.parametrize("name", sorted(PAGES))
def test_hostile_input_on_every_page_and_form(world, django_user_model, name):  # noqa: F811
    route = ROUTES[name]
    persona = PAGES[name]
    prober = Prober(client_for(persona, world, django_user_model))
    path = reverse(name, kwargs=route.kwargs(world) or None)
    forms = probe_page(prober, path, dict(route.query(world)), name)
    posted = probe_forms(prober, path, forms, name)
    expected = {t for t, page in FORM_TARGETS.items() if page == name}
    assert expected <= posted, f"forms not found on {name}: {expected - posted}"
    assert not prober.problems, "\n".join(prober.problems[:40])


def staff_pages(w) -> list[tuple[str, str]]:
    pages = [
        (label, reverse(f"admin:{label.replace('.', '_')}_changelist"))
        for label in sorted(m._meta.label_lower for m in admin.site._registry)
    ]
    pages += [
        ("purchase-add", reverse("admin:tokens_purchase_add")),
        (
            "organization-add-member",
            reverse("admin:accounts_organization_add_member", args=[w.org.pk]),
        ),
        ("user-change", reverse("admin:accounts_user_change", args=[w.target.pk])),
        (
            "organization-change",
            reverse("admin:accounts_organization_change", args=[w.org.pk]),
        ),
    ]
    return pages


def test_hostile_input_on_the_staff_site(world, superuser):  # noqa: F811
    """Every changelist of ``/staff/`` (search, ordering, paging, filters) and the
    forms of its add and change pages, as a superuser."""
    prober = Prober(sign_in(superuser, mfa=True))
    for label, path in staff_pages(world):
        forms = probe_page(prober, path, {}, f"staff {label}")
        if not label.endswith("changelist") and "." not in label:
            probe_forms(prober, path, forms, f"staff {label}")
    assert not prober.problems, "\n".join(prober.problems[:40])
