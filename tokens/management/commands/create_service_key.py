from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from accounts.services import service_key_create


class Command(BaseCommand):
    help = (
        "Create a gateway service key for /api/v1/ and print its secret once (only a "
        "hash is stored). With --org the key acts only for that organization's users; "
        "without it, it is the platform gateway's key and may act for any user."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="What the key is for.")
        parser.add_argument(
            "--org", type=int, metavar="ID", help="Bind the key to this organization."
        )

    def handle(self, *args, name: str, org: int | None = None, **options):
        organization = None
        if org is not None:
            organization = Organization.objects.filter(pk=org).first()
            if organization is None:
                raise CommandError(f"No organization with id {org}.")
        try:
            key, secret = service_key_create(
                actor=None, name=name, organization=organization
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        scope = (
            f"organization {organization.name} (id {organization.pk})"
            if organization
            else "any user (platform gateway, unbound)"
        )
        self.stdout.write(
            self.style.SUCCESS(f"Created service key {key.name!r} for {scope}.")
        )
        self.stdout.write(secret)
        self.stdout.write(
            self.style.WARNING(
                "Copy this secret now: it is stored only as a hash and cannot be "
                "shown again. Send it as 'Authorization: Bearer <secret>'."
            )
        )
