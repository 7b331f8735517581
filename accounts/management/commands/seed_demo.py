from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import Organization, User

DEMO_ORG = "Northwind Federal Agency"
DEMO_DOMAIN = "northwind.example"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105  (demo only; refused in production)
MEMBERS = [
    ("Ava", "Thompson"),
    ("Liam", "Garcia"),
    ("Mia", "Chen"),
    ("Noah", "Patel"),
    ("Emma", "Johnson"),
    ("Lucas", "Nguyen"),
    ("Sofia", "Martinez"),
    ("Ethan", "Kim"),
    ("Isabella", "Brown"),
    ("Mason", "Davis"),
    ("Amara", "Okafor"),
    ("Oliver", "Wilson"),
]


class Command(BaseCommand):
    help = (
        "Create (or bring up to date) the demo: an active organization with an admin "
        "and a dozen members. Idempotent. Refused outside DEBUG/DEMO_MODE because it "
        "sets a published password."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--users", type=int, default=len(MEMBERS), help="Number of members."
        )

    def handle(self, *args, users: int, **options):
        if not (settings.DEBUG or settings.DEMO_MODE):
            raise CommandError(
                "seed_demo sets a published password: run it only with DEMO_MODE=true "
                "or DEBUG=true."
            )
        if users < 1:
            raise CommandError("--users must be at least 1.")
        with transaction.atomic():
            admin, members = self._seed(users)
        self.stdout.write(self.style.SUCCESS(f"Demo organization: {DEMO_ORG}"))
        self.stdout.write(f"  {len(members)} members, 1 admin.")
        self.stdout.write("Sign in at http://127.0.0.1:8000/accounts/login/ as:")
        self.stdout.write(f"  admin:  {admin.email} / {DEMO_PASSWORD}")
        self.stdout.write(f"  member: {members[0].email} / {DEMO_PASSWORD}")

    def _seed(self, count: int) -> tuple[User, list[User]]:
        now = timezone.now()
        org, _created = Organization.objects.get_or_create(
            name=DEMO_ORG,
            defaults={
                "status": Organization.Status.ACTIVE,
                "activated_at": now,
                "domain": DEMO_DOMAIN,
                "billing_address": "1 Federal Plaza, Washington, DC 20001",
                "country": "United States",
                "email": f"billing@{DEMO_DOMAIN}",
            },
        )
        admin = self._user(
            f"admin@{DEMO_DOMAIN}", "Grace", "Hopper", org, User.Role.ADMIN, now
        )
        names = [MEMBERS[i % len(MEMBERS)] for i in range(count)]
        members = [
            self._user(
                f"{first.lower()}.{last.lower()}{'' if i < len(MEMBERS) else i}"
                f"@{DEMO_DOMAIN}",
                first,
                last,
                org,
                User.Role.USER,
                now,
            )
            for i, (first, last) in enumerate(names)
        ]
        return admin, members

    def _user(self, email, first, last, org, role, now) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(
                email=email,
                password=DEMO_PASSWORD,
                first_name=first,
                last_name=last,
                organization=org,
                role=role,
                email_verified_at=now,
                terms_accepted_at=now,
            )
        return user
