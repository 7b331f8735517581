import json
import os
import sys
from dataclasses import dataclass, field

from django.core.management.base import BaseCommand, CommandError

from accounts.models import ServiceKey
from accounts.services import service_key_create
from tokens.services.metering import (
    MAX_BATCH,
    MeteringError,
    ServiceUnavailable,
    usage_record,
)

INTERNAL_KEY_NAME = "import_usage"
PROGRESS_EVERY = 10_000
MAX_LISTED = 100
BAR_WIDTH = 30


@dataclass
class Totals:
    lines: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    listed: int = 0
    reported: int = 0
    # (line number, parsed event or None, why the line is not an event)
    batch: list[tuple[int, object, str]] = field(default_factory=list)


class Command(BaseCommand):
    help = (
        "Record usage events from a JSON-lines file (one event object per line, as in "
        "POST /api/v1/usage; '-' reads stdin) with the API's rules and results: an "
        "event_id is recorded once, a repeat is a duplicate, a changed repeat is "
        "rejected as a conflict. Lines that are not JSON are rejected with their line "
        "number. Events are sent in batches of 1,000, each its own transaction, so a "
        "re-run is safe: what was recorded comes back as duplicates. The import acts "
        "as the platform gateway through an internal unbound service key named "
        "'import_usage' (created on first use), or as an existing key with "
        "--key-prefix (a key bound to an organization then refuses other users)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="JSON-lines file, or '-' for stdin.")
        parser.add_argument(
            "--key-prefix",
            metavar="PREFIX",
            help="Act as this existing service key (its prefix, as shown in /staff/).",
        )

    def handle(self, *args, file: str, key_prefix: str | None = None, **options):
        self.verbosity = options.get("verbosity", 1)
        key = self._key(key_prefix)
        if file == "-":
            stream, size = getattr(sys.stdin, "buffer", sys.stdin), None
        else:
            try:
                stream, size = open(file, "rb"), os.path.getsize(file)  # noqa: SIM115
            except OSError as error:
                raise CommandError(f"Cannot read {file}: {error.strerror}.") from error
        self.tty = self.stdout.isatty()
        totals = Totals()
        read = 0
        try:
            for number, line in enumerate(stream, start=1):
                read += len(line)
                self._take(totals, number, line)
                if len(totals.batch) >= MAX_BATCH:
                    self._flush(totals, key)
                    self._progress(totals, read, size)
            self._flush(totals, key)
            self._progress(totals, read, size, final=True)
        finally:
            if file != "-":
                stream.close()
        style = self.style.SUCCESS if not totals.rejected else self.style.WARNING
        self.stdout.write(
            style(
                f"Recorded {totals.recorded:,}, duplicates {totals.duplicates:,}, "
                f"rejected {totals.rejected:,} ({totals.lines:,} lines)."
            )
        )

    def _key(self, prefix: str | None) -> ServiceKey:
        if prefix:
            key = ServiceKey.objects.filter(
                prefix=prefix, revoked_at__isnull=True
            ).first()
            if key is None:
                raise CommandError(f"No active service key with prefix {prefix!r}.")
            return key
        key = (
            ServiceKey.objects.filter(
                name=INTERNAL_KEY_NAME,
                organization__isnull=True,
                revoked_at__isnull=True,
            )
            .order_by("id")
            .first()
        )
        if key is None:
            # The secret is never used: the key is only the import's identity.
            key, _secret = service_key_create(actor=None, name=INTERNAL_KEY_NAME)
        return key

    def _take(self, totals: Totals, number: int, line) -> None:
        """Parse one line into the batch; a line that is not JSON stays in the batch
        as a rejection, so rejections are reported in line order."""
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                totals.lines += 1
                totals.batch.append((number, None, "Not UTF-8 text."))
                return
        if not line.strip():
            return
        totals.lines += 1
        try:
            totals.batch.append((number, json.loads(line.strip()), ""))
        except json.JSONDecodeError as error:
            totals.batch.append(
                (number, None, f"Not valid JSON: {error.msg} at column {error.colno}.")
            )

    def _report(self, totals: Totals, number: int, code: str, detail: str) -> None:
        totals.listed += 1
        if totals.listed <= MAX_LISTED or self.verbosity >= 2:
            self.stderr.write(f"line {number}: rejected ({code}): {detail}")
        elif totals.listed == MAX_LISTED + 1:
            self.stderr.write(
                f"More rejected lines are not listed (first {MAX_LISTED} shown; "
                "--verbosity 2 lists all)."
            )

    def _flush(self, totals: Totals, key) -> None:
        batch, totals.batch = totals.batch, []
        parsed = [(number, event) for number, event, error in batch if not error]
        results = {}
        if parsed:
            try:
                result = usage_record(key=key, events=[event for _n, event in parsed])
            except (MeteringError, ServiceUnavailable) as error:
                raise CommandError(
                    f"Lines {batch[0][0]}–{batch[-1][0]} could not be recorded "
                    f"({error}); nothing of them was saved. Earlier lines were: "
                    "re-run the import, they will come back as duplicates."
                ) from error
            results = dict(zip([n for n, _e in parsed], result.results, strict=True))
        for number, _event, error in batch:
            item = results.get(number) or {
                "status": "rejected",
                "error": "invalid_json",
                "detail": error,
            }
            if item["status"] == "recorded":
                totals.recorded += 1
            elif item["status"] == "duplicate":
                totals.duplicates += 1
            else:
                totals.rejected += 1
                self._report(totals, number, item["error"], item.get("detail", ""))

    def _progress(self, totals: Totals, read: int, size: int | None, final=False):
        if self.verbosity < 1:
            return
        counts = (
            f"{totals.lines:,} lines: {totals.recorded:,} recorded, "
            f"{totals.duplicates:,} duplicates, {totals.rejected:,} rejected"
        )
        if self.tty:
            if size:
                done = min(1.0, read / size)
                filled = int(done * BAR_WIDTH)
                bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%} "
            else:
                bar = ""
            self.stdout.write(f"\r{bar}{counts}", ending="\n" if final else "")
            self.stdout.flush()
        elif not final and totals.lines // PROGRESS_EVERY > totals.reported:
            totals.reported = totals.lines // PROGRESS_EVERY
            self.stdout.write(f"Processed {counts}.")
