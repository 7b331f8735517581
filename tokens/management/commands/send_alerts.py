from django.core.management.base import BaseCommand

from tokens.models import Alert
from tokens.services.alerts import deliver, runout_check


class Command(BaseCommand):
    help = (
        "Alerts (docs/forecasts.md, Alerts): fire the 'projected to run out before "
        "month end' alert of each active organization whose pool of a type will be "
        "used up this month at the recent rate (once per organization, type and "
        "month), then deliver every undelivered alert (e-mail and webhook), oldest "
        "first. An alert being sent elsewhere is skipped (FOR NO KEY UPDATE SKIP "
        "LOCKED), a failed one stays undelivered with its error for the next run: "
        "safe to run from cron every few minutes, even two copies at once. "
        "--dry-run only counts what is undelivered."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count undelivered alerts; fire and send nothing.",
        )
        parser.add_argument(
            "--limit", type=int, default=500, help="At most this many alerts a run."
        )

    def handle(self, *args, **options):
        if options["dry_run"]:
            pending = Alert.objects.filter(delivered_at__isnull=True).count()
            self.stdout.write(f"{pending:,} undelivered alert(s); nothing sent.")
            return
        fired = runout_check()
        report = deliver(limit=options["limit"])
        self.stdout.write(
            f"{len(fired):,} run-out alert(s) fired; {report.delivered:,} delivered, "
            f"{report.failed:,} failed (kept for the next run), {report.skipped:,} "
            "skipped (delivered or being sent elsewhere)."
        )
