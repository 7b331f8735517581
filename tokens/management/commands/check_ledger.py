from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import ngettext

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
                ngettext(
                    "%(n)d ledger violation; see the lines above.",
                    "%(n)d ledger violations; see the lines above.",
                    len(violations),
                )
                % {"n": len(violations)}
            )
        scope = ledger_scope(organization=organization)
        self.stdout.write(
            self.style.SUCCESS(
                "Ledger OK: "
                + ", ".join(
                    ngettext(one, many, scope[key]) % {"n": f"{scope[key]:,}"}
                    for key, one, many in (
                        ("organizations", "%(n)s organization", "%(n)s organizations"),
                        ("users", "%(n)s user", "%(n)s users"),
                        ("events", "%(n)s usage event", "%(n)s usage events"),
                    )
                )
                + " checked."
            )
        )
