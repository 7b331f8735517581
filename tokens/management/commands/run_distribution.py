from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import Organization
from tokens.models import TOKEN_TYPES, DistributionRun
from tokens.services.distribution import (
    distribution_plan,
    last_due_at,
    run_due_distributions,
)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _counts(summary: dict) -> str:
    """E.g. "1 change for 1 user (inference: +200,000 to floors, 9,500,000
    unallocated; embedding: 9,500,000 unallocated)"."""
    parts = []
    for token_type in TOKEN_TYPES:
        totals = summary.get(token_type) or {}
        moves = [
            f"{sign}{totals.get(key, 0):,} {what}"
            for key, sign, what in (
                ("reclaimed", "-", "reclaimed"),
                ("raised", "+", "to floors"),
                ("distributed", "+", "shared equally"),
            )
            if totals.get(key)
        ]
        moves.append(f"{totals.get('unallocated_after', 0):,} unallocated")
        parts.append(f"{token_type}: {', '.join(moves)}")
    return (
        f"{_plural(summary.get('changes', 0), 'change')} for "
        f"{_plural(summary.get('users_changed', 0), 'user')} ({'; '.join(parts)})"
    )


class Command(BaseCommand):
    help = (
        "Run the auto-rebalancing schedule of every active organization whose run is "
        "due: the latest due time (daily, weekly or monthly at the "
        "policy's hour, UTC) at or before now, after the organization's activation, "
        "that has no run yet. A run reclaims (when reclamation is on), then raises "
        "users below the floor. Each due time runs exactly once, even when two "
        "copies run at the same moment (an advisory lock and a unique key). Run it "
        "from cron every few minutes; --dry-run only reports what would run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", type=int, help="Only this organization (id).")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what would run and what it would change; change nothing.",
        )

    def handle(self, *args, **options):
        org_id, dry_run = options["org"], options["dry_run"]
        if org_id is not None and not Organization.objects.filter(pk=org_id).exists():
            raise CommandError(f"No organization with id {org_id}.")
        now = timezone.now()
        results = run_due_distributions(now=now, org_id=org_id, dry_run=dry_run)
        tally = {"ran": 0, "would run": 0, "skipped": 0, "failed": 0}
        for organization, status in results:
            line = f"{organization.name} (id {organization.pk}): {status}"
            if status == "ran":
                tally["ran"] += 1
                run = (
                    DistributionRun.objects.filter(
                        organization=organization,
                        trigger=DistributionRun.Trigger.SCHEDULED,
                    )
                    .order_by("-started_at", "-id")
                    .first()
                )
                self.stdout.write(
                    self.style.SUCCESS(f"{line} — {_counts(run.summary)}")
                )
            elif status == "would run":
                tally["would run"] += 1
                plan = distribution_plan(organization=organization)
                policy = organization.distribution_policy
                due = last_due_at(policy, now=now)
                summary = {
                    "changes": len(plan.changes),
                    "users_changed": len({c.user_id for c in plan.changes}),
                    **plan.totals,
                }
                self.stdout.write(
                    f"{line} (due {due:%Y-%m-%d %H:%M} UTC) — {_counts(summary)}"
                )
            elif status.startswith("failed"):
                tally["failed"] += 1
                self.stderr.write(self.style.ERROR(line))
            else:
                tally["skipped"] += 1
                self.stdout.write(line)
        verb = "would run" if dry_run else "ran"
        count = tally["would run"] if dry_run else tally["ran"]
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(results)} organization{'' if len(results) == 1 else 's'} "
                f"considered: {count} {verb}, {tally['skipped']} skipped"
                + (f", {tally['failed']} failed" if tally["failed"] else "")
                + (" (dry run: nothing changed)." if dry_run else ".")
            )
        )
        if tally["failed"]:
            raise CommandError(f"{tally['failed']} scheduled run(s) failed.")
