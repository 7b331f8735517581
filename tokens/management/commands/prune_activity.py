from django.core.management.base import BaseCommand, CommandError

from tokens.services.retention import DEFAULT_RETENTION_DAYS, activity_prune


class Command(BaseCommand):
    help = (
        "Delete audit and usage events older than the retention period (default "
        f"{DEFAULT_RETENTION_DAYS} days = 3 years), with the counters and "
        "rollups of the pruned months. Audit events behind an allocation change are "
        "kept. The only path allowed past the append-only triggers; audited."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-days", type=int, default=DEFAULT_RETENTION_DAYS
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count only; change nothing."
        )

    def handle(self, *args, older_than_days: int, dry_run: bool, **options):
        if older_than_days < 1:
            raise CommandError("--older-than-days must be at least 1.")
        counts = activity_prune(older_than_days=older_than_days, dry_run=dry_run)
        verb = "Would remove" if dry_run else "Removed"
        for name, count in counts.items():
            self.stdout.write(f"{verb} {count:,} {name.replace('_', ' ')}")
        total = sum(counts.values())
        style = self.style.WARNING if dry_run else self.style.SUCCESS
        self.stdout.write(style(f"{verb} {total:,} rows in all."))
