"""A usage counter per (organization, user, type, month): usage is charged to the
organization that authorized it, so a user who moved keeps a counter in each.

Counters written before this change could hold another organization's usage (a
user who moved mid-month kept the first organization's row). For the users with
events in more than one organization, their counters are rebuilt from their events
and open holds, per organization."""

import datetime as dt
from collections import defaultdict

from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, DateField, Sum
from django.db.models.functions import Cast, TruncMonth


def split_counters(apps, schema_editor):
    UsageEvent = apps.get_model("tokens", "UsageEvent")
    UsageCounter = apps.get_model("tokens", "UsageCounter")
    Hold = apps.get_model("tokens", "Hold")
    movers = list(
        UsageEvent.objects.order_by()
        .values("user_id")
        .annotate(n=Count("organization_id", distinct=True))
        .filter(n__gt=1)
        .values_list("user_id", flat=True)
    )
    if not movers:
        return
    amounts = defaultdict(lambda: {"used": 0, "held": 0})
    month = Cast(TruncMonth("occurred_at", tzinfo=dt.UTC), output_field=DateField())
    for row in (
        UsageEvent.objects.filter(user_id__in=movers)
        .order_by()
        .values("organization_id", "user_id", "token_type", period=month)
        .annotate(total=Sum("tokens"))
    ):
        key = (row["organization_id"], row["user_id"], row["token_type"])
        amounts[(*key, row["period"])]["used"] = row["total"]
    for row in (
        Hold.objects.filter(user_id__in=movers, status="open")
        .order_by()
        .values("organization_id", "user_id", "token_type", "period")
        .annotate(total=Sum("tokens"))
    ):
        key = (row["organization_id"], row["user_id"], row["token_type"])
        amounts[(*key, row["period"])]["held"] = row["total"]
    UsageCounter.objects.filter(user_id__in=movers).delete()
    UsageCounter.objects.bulk_create(
        UsageCounter(
            organization_id=org, user_id=user, token_type=token_type, period=period,
            **values,
        )
        for (org, user, token_type, period), values in sorted(amounts.items())
    )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0006_audit_activity_pruned'),
        ('tokens', '0008_drop_redundant_indexes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='usagecounter',
            name='usagecounter_user_type_period_unique',
        ),
        migrations.AddConstraint(
            model_name='usagecounter',
            constraint=models.UniqueConstraint(fields=('organization', 'user', 'token_type', 'period'), name='counter_per_organization'),
        ),
        migrations.RunPython(split_counters, migrations.RunPython.noop),
    ]
