from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from tokens.ledger import check_ledger, ledger_scope


class Command(BaseCommand):
    help = (
        "Verify the ledger invariants: allocated ≤ pool, limits = their "
        "changes, counters = usage events and open holds, daily rollups = events, "
        "organization daily and monthly rollups = daily rollups, "
        "unique ids, audited changes and the platform minimum. Prints each violation "
        "and exits with status 1 if there is any. Read-only."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--org", type=int, metavar="ID", help="Check only this organization."
        )

    def handle(self, *args, org: int | None = None, **options):
        organization = None
        if org is not None:
            organization = Organization.objects.filter(pk=org).first()
            if organization is None:
                raise CommandError(f"No organization with id {org}.")
        violations = check_ledger(organization=organization)
        for line in violations:
            self.stdout.write(self.style.ERROR(line))
        if violations:
            raise CommandError(
                f"{len(violations)} ledger violation(s); see the lines above."
            )
        scope = ledger_scope(organization=organization)
        self.stdout.write(
            self.style.SUCCESS(
                f"Ledger OK: {scope['organizations']:,} organizations, "
                f"{scope['users']:,} users, {scope['events']:,} usage events checked."
            )
        )
