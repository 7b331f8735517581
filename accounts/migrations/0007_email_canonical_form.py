"""E-mails in one canonical form (accounts.emails): NFKC + casefold.

Addresses were stored lower-cased, which equals the canonical form for every ASCII
address; only an address with letters such as ``ſ``, ``ß`` or full-width ones
changes. Two stored addresses that become the same one would be one sign-in for
two accounts: the migration stops and names them instead of choosing.
"""

import unicodedata

from django.db import migrations, models

import accounts.emails


def _canonical(value: str) -> str:
    # A frozen copy of accounts.emails.canonical_email, as migrations must be.
    text = unicodedata.normalize("NFKC", value.strip())
    return unicodedata.normalize("NFKC", text.casefold())


def canonicalize(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    stored = dict(User.objects.values_list("email", "pk"))
    changes = {}
    for email, pk in stored.items():
        canonical = _canonical(email)
        if canonical == email:
            continue
        other = stored.get(canonical) or changes.get(canonical)
        if other is not None:
            raise RuntimeError(
                f"Users {pk} ({email!r}) and {other} ({canonical!r}) have the same "
                "e-mail address in its canonical form. Change one of them in "
                "/staff/, then run the migration again."
            )
        changes[canonical] = pk
    for canonical, pk in changes.items():
        User.objects.filter(pk=pk).update(email=canonical)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_audit_activity_pruned"),
    ]

    operations = [
        migrations.AlterField(
            model_name="user",
            name="email",
            field=models.EmailField(
                error_messages={"unique": "A user with this email already exists."},
                max_length=254,
                unique=True,
                validators=[accounts.emails.validate_plain_email],
                verbose_name="email",
            ),
        ),
        migrations.RunPython(canonicalize, migrations.RunPython.noop),
    ]
