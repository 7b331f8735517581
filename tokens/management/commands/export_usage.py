import csv
import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from asksage_admin.lib.csv import write_rows
from tokens.selectors import EXPORT_COLUMNS, usage_events_for_export

CHUNK = 2000


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"{value!r} is not a date: use YYYY-MM-DD.") from error


class Command(BaseCommand):
    help = (
        "Write an organization's usage events from --from to --to (whole UTC days, "
        "both included) as CSV, oldest first, streamed in chunks. Columns: "
        + ", ".join(EXPORT_COLUMNS)
        + ". Cells starting with =, +, -, @, tab or carriage return are prefixed with "
        "' so spreadsheets do not run them. Read-only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", type=int, required=True, metavar="ID")
        parser.add_argument("--from", dest="start", required=True, metavar="DATE")
        parser.add_argument("--to", dest="end", required=True, metavar="DATE")
        parser.add_argument(
            "--output", metavar="FILE", help="Write here instead of standard output."
        )

    def handle(self, *args, org: int, start: str, end: str, output=None, **options):
        organization = Organization.objects.filter(pk=org).first()
        if organization is None:
            raise CommandError(f"No organization with id {org}.")
        first, last = _date(start), _date(end)
        if first > last:
            raise CommandError("--from must be on or before --to.")
        rows = (
            (
                event_id,
                occurred_at.astimezone(dt.UTC).isoformat(),
                *rest,
            )
            for event_id, occurred_at, *rest in usage_events_for_export(
                organization, first, last
            ).iterator(chunk_size=CHUNK)
        )
        if output:
            try:
                with open(output, "w", newline="", encoding="utf-8") as handle:
                    count = self._write(handle, rows)
            except OSError as error:
                raise CommandError(
                    f"Cannot write {output}: {error.strerror}."
                ) from error
            self.stdout.write(
                self.style.SUCCESS(f"Exported {count:,} usage events to {output}.")
            )
        else:
            # The CSV owns standard output; the summary goes to standard error.
            count = self._write(self.stdout, rows)
            self.stderr.write(f"Exported {count:,} usage events.")

    def _write(self, handle, rows) -> int:
        writer = csv.writer(handle)
        writer.writerow(EXPORT_COLUMNS)
        return write_rows(writer, rows)
