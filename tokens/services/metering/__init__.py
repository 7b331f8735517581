"""Metering for the gateway (docs/gateway-api.md; docs/architecture.md, Concurrency and
locks): authorize, usage, release, expiry.

- An authorization is a conditional update of the user's counter row
  (used + held + n ≤ limit) plus a hold; users never contend with each other and the
  org pool needs no lock (allocated ≤ pool already bounds the organization).
- A usage batch runs a constant number of queries whatever its size: one lookup per
  kind of thing (users, models, holds), one insert with ON CONFLICT
  (organization, org_key, event_id) DO NOTHING RETURNING (an event_id is unique
  per reporting scope) (then one lookup of the events it did not insert, if any),
  and for counters and rollups one upsert each (INSERT … ON CONFLICT DO UPDATE
  SET n = n + excluded.n), plus one UPDATE of ``held`` when holds were settled.
- Locks follow the product's one lock order (``tokens/locks.py``): holds in id
  order, then counters, then rollups, each in the order of their unique key (the
  upsert takes its row locks in the order of its VALUES, which are sorted); a batch
  in which an auto-increase is due runs again with the organization and the
  allocations locked first, and an authorization that does not fit runs again
  expiring the user's due holds before it touches the counter.
- An authorization writes its hold before the conditional update of the counter, so
  the user's counter row (the hot row) stays locked only from that UPDATE to the
  commit.
- Every public function is one transaction (what commits; a first run rolled back
  to take locks in order, above, leaves nothing), retried on serialization failure
  or deadlock up to 3 times; if it still fails, ``ServiceUnavailable``.

Layout (import from the package; patch a name where it is looked up, in the
module that calls it):

- ``_common``: constants, ``MeteringError`` (the domain errors' base,
  ``asksage_admin/lib/errors.py``: refusals carry a code, never an HTTP status;
  ``api/errors.py`` maps them), ``ServiceUnavailable``,
  ``with_retries``, and the user/model resolution shared by authorize, balance
  and usage.
- ``counters``: counter and hold helpers (``_ensure_counters``,
  ``_update_counters``, ``_close_holds``, ``_expire_due``) and the upsert SQL
  (``_rows_source``, ``_sql_value``, ``_case_update``).
- ``holds``: ``authorize`` (and its conditional update), ``hold_release``,
  ``holds_expire``, ``balance``.
- ``events``: usage event parsing, the charge, the events' rows and their insert.
- ``usage``: the batch (``usage_record``), counters, daily usage and rollups.
"""

from tokens.services.metering._common import (
    EXCERPT_CHARS,
    FUTURE_SKEW,
    MAX_BATCH,
    MAX_ID,
    RETRIES,
    TYPES,
    MeteringError,
    ServiceUnavailable,
    resolve_user,
    resolve_user_and_model,
    with_retries,
)
from tokens.services.metering.events import UsageResult, digest_of
from tokens.services.metering.holds import (
    Authorization,
    authorize,
    balance,
    hold_release,
    holds_expire,
)
from tokens.services.metering.usage import usage_record

__all__ = [
    "EXCERPT_CHARS",
    "FUTURE_SKEW",
    "MAX_BATCH",
    "MAX_ID",
    "RETRIES",
    "TYPES",
    "Authorization",
    "MeteringError",
    "ServiceUnavailable",
    "UsageResult",
    "authorize",
    "balance",
    "digest_of",
    "hold_release",
    "holds_expire",
    "resolve_user",
    "resolve_user_and_model",
    "usage_record",
    "with_retries",
]
