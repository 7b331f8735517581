import pytest
from django.urls import reverse

PANEL_PAGES = [
    "tokens:user_list",
    "tokens:distribution",
    "tokens:request_list",
    "analytics:statistics",
    "analytics:activity",
]

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", PANEL_PAGES)
def test_anonymous_is_sent_to_sign_in(anon_client, name):
    url = reverse(name)
    response = anon_client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"


@pytest.mark.parametrize("name", PANEL_PAGES)
def test_member_is_forbidden(member_client, name):
    assert member_client.get(reverse(name)).status_code == 403


@pytest.mark.parametrize("name", PANEL_PAGES)
def test_admin_sees_the_page_of_their_organization(admin_client, name):
    response = admin_client.get(reverse(name))
    assert response.status_code == 200
    assert "Acme Corp" in response.content.decode()
    assert response.context["nav_active"]


def test_admin_of_another_org_sees_only_their_org(other_admin_client):
    response = other_admin_client.get(reverse("tokens:user_list"))
    assert response.status_code == 200
    assert response.context["org"].name == "Globex"


def test_org_admin_cannot_switch_org_with_query(admin_client, other_org):
    response = admin_client.get(reverse("tokens:user_list"), {"org": other_org.pk})
    assert response.context["org"].name == "Acme Corp"


def test_superuser_opens_any_org_panel(superuser_client, org, other_org):
    chooser = superuser_client.get(reverse("tokens:user_list"))
    assert chooser.status_code == 200
    assert "Choose an organization" in chooser.content.decode()
    response = superuser_client.get(reverse("tokens:user_list"), {"org": other_org.pk})
    assert response.context["org"] == other_org
    assert (
        superuser_client.get(reverse("tokens:user_list"), {"org": 99999}).status_code
        == 404
    )


def test_admin_of_suspended_org_is_forbidden(admin_user, admin_client):
    admin_user.organization.status = "suspended"
    admin_user.organization.save()
    assert admin_client.get(reverse("tokens:user_list")).status_code == 403


def test_sales_staff_without_org_role_is_forbidden(sales_client):
    assert sales_client.get(reverse("tokens:user_list")).status_code == 403


def test_panel_root_redirects_to_user_management(admin_client):
    response = admin_client.get(reverse("panel"))
    assert response["Location"] == reverse("tokens:user_list")


def test_home_routes_each_persona(anon_client, member_client, admin_client):
    assert anon_client.get("/")["Location"] == reverse("accounts:login")
    assert member_client.get("/")["Location"] == reverse("tokens:me")
    assert admin_client.get("/")["Location"] == reverse("panel")


def test_me_requires_sign_in(anon_client):
    response = anon_client.get(reverse("tokens:me"))
    assert response.status_code == 302


def test_sidebar_lists_both_sections_and_six_pages(admin_client):
    body = admin_client.get(reverse("tokens:user_list")).content.decode()
    for label in [
        "Management",
        "Analytics",
        "User Management",
        "Token Distribution",
        "Token Requests",
        "Alerts",
        "Token Statistics",
        "Activity Logs",
        "Back to Chat",
    ]:
        assert label in body
