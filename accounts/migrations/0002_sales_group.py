"""The "Sales" staff group: view users, manage organizations (purchases and
enterprise requests join it in the tokens migrations)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SALES_PERMISSIONS = [
    ("accounts", "view_user"),
    ("accounts", "view_organization"),
    ("accounts", "add_organization"),
    ("accounts", "change_organization"),
]


def create_sales_group(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _created = Group.objects.get_or_create(name="Sales")
    for app_label, codename in SALES_PERMISSIONS:
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


def remove_sales_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Sales").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_sales_group, remove_sales_group)]
