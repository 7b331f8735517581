from django.core.management.base import BaseCommand

from tokens.services.metering import holds_expire


class Command(BaseCommand):
    help = (
        "Expire every open hold past its expiry time and give its tokens back to the "
        "user's counter (the scheduled form of the lazy expiry done at authorization; "
        "run it from cron). Idempotent: a hold is expired once; nothing else changes."
    )

    def handle(self, *args, **options):
        count = holds_expire()
        self.stdout.write(
            self.style.SUCCESS(f"Expired {count:,} hold{'' if count == 1 else 's'}.")
        )
