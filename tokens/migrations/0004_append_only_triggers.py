"""Audit events and usage events are append-only (docs/operations.md, Append-only).

PostgreSQL: a row trigger refuses UPDATE and DELETE on both tables, except a DELETE
made by the retention command inside a transaction that holds a permit (a row in
asksage_prune_permit with its own transaction id; the row is invisible to every
other transaction and removed before commit). TRUNCATE, used only by test-database
flushes, is not a row operation and is not intercepted.

SQLite: a trigger refuses UPDATE. DELETE is not intercepted there, because Django's
test flush on SQLite deletes rows; SQLite is the demo and quick-test database, not
production.
"""

from django.db import migrations

TABLES = ("accounts_auditevent", "tokens_usageevent")

POSTGRES_UP = [
    "CREATE TABLE IF NOT EXISTS asksage_prune_permit (txid bigint PRIMARY KEY)",
    """
    CREATE OR REPLACE FUNCTION asksage_append_only() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND EXISTS (
            SELECT 1 FROM asksage_prune_permit WHERE txid = txid_current()
        ) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    *[
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION asksage_append_only()"
        for table in TABLES
    ],
]
POSTGRES_DOWN = [
    *[f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in TABLES],
    "DROP FUNCTION IF EXISTS asksage_append_only()",
    "DROP TABLE IF EXISTS asksage_prune_permit",
]
SQLITE_UP = [
    "CREATE TABLE IF NOT EXISTS asksage_prune_permit (txid integer PRIMARY KEY)",
    *[
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN "
        f"SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END"
        for table in TABLES
    ],
]
SQLITE_DOWN = [
    *[f"DROP TRIGGER IF EXISTS {table}_no_update" for table in TABLES],
    "DROP TABLE IF EXISTS asksage_prune_permit",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor, [])
        for statement in statements:
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_audit_activity_pruned"),
        ("tokens", "0003_distribution_and_requests"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
            _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}),
        )
    ]
