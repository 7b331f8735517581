"""Small HTML pieces of the tables (asksage_admin/lib/display.py; docs/product.md,
The panel shell): long emails wrap between their parts, and nothing is unescaped."""

from types import SimpleNamespace

from asksage_admin.lib.display import breakable_email, user_status_badges


def test_an_email_breaks_only_before_its_separators():
    html = breakable_email("ada.lovelace@research.acme.example")
    assert html == "ada<wbr>.lovelace<wbr>@research<wbr>.acme<wbr>.example"


def test_breakable_email_escapes_what_it_is_given():
    html = breakable_email('x<script>@"a".example')
    assert "<script>" not in html
    assert html == "x&lt;script&gt;<wbr>@&quot;a&quot;<wbr>.example"


def user(**flags):
    base = {
        "role": "user",
        "is_banned": False,
        "is_paid": True,
        "email_verified_at": "2026-01-01",
        "has_mfa": False,
    }
    return SimpleNamespace(**{**base, **flags})


def test_status_badges_fold_the_flags_into_one_cell():
    assert ">Paid<" in user_status_badges(user())
    assert "Banned" not in user_status_badges(user())
    everything = user_status_badges(
        user(
            role="admin",
            is_banned=True,
            is_paid=False,
            email_verified_at=None,
            has_mfa=True,
        )
    )
    labels = ["Admin", "Banned", "Unpaid", "Unverified", "MFA"]
    positions = [everything.index(f">{label}<") for label in labels]
    assert positions == sorted(positions)
    assert "badge-danger" in everything
