"""The benchmark dataset, built in SQL (generate_series, INSERT … SELECT), never
row by row through the ORM, and consistent with every ledger invariant
(docs/architecture.md, Invariants and check_ledger):

- Organizations (active, Standard policy) each with one purchase covering its
  allocations with 10 % to spare (1), and the audit events of the activation.
- Users, two allocations each (inference, embedding), every limit the sum of its
  AllocationChange rows (2), each change linked to one LIMIT_CHANGED audit event of
  the same organization (9): +1,000,000 per type at activation, and for every
  tenth user an admin's manual cut of the inference limit to 300,000 (below the
  Standard floor of 500,000, above the platform minimum (10): a distribution run
  raises them, which is what B6 measures).
- Usage events spread evenly over the last 365 days (per organization in time
  order, unique event ids (6), no holds), then ``UsageCounter.used`` and
  ``DailyUsage`` computed from them by SQL aggregates (3, 5), and ``OrgDailyUsage``
  and ``MonthlyUsage`` (one row per organization, user and month, a column per
  type) from ``DailyUsage`` (5b, 5c); no open holds (4).
- Pending token requests (1 % of the users, at least 30 per organization, so the
  queue's first page is full at both scales) and denied ones (1 %), with their
  audit events; filler audit events (sign-ins, sign-outs, exports) up to the
  organization's share.
- The big organization's "hot" user (B5) has no usage and an override exempting
  it from auto-increase; both panel admins have a confirmed TOTP device (MFA is
  required, as in production).

Bulk loading: foreign-key triggers are off for the session while the big tables
are filled (``session_replication_role = replica``; the rows reference what was
inserted just before, by construction), the secondary indexes of the three big
tables are dropped first and recreated after, then everything is VACUUM ANALYZEd.
"""

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field

PASSWORD = "bench-Password-1234"
MODELS = [
    # key, name, type, input rate, output rate
    ("gpt-4o", "GPT-4o", "inference", "1.0000", "3.0000"),
    ("gpt-4o-mini", "GPT-4o mini", "inference", "0.2500", "0.5000"),
    ("claude-sonnet", "Claude Sonnet", "inference", "1.2000", "4.0000"),
    ("llama-70b", "Llama 70B", "inference", "0.6000", "0.6000"),
    ("embed-large", "Embedding large", "embedding", "0.1000", "0.0000"),
    ("embed-small", "Embedding small", "embedding", "0.0200", "0.0000"),
]
# B1 and B5 settle exactly what they asked for with this model (rates 1 and 1).
FLAT_MODEL = ("bench-flat", "Bench flat rate", "inference", "1.0000", "1.0000")
LIMIT = 1_000_000
CUT_LIMIT = 300_000


@dataclass
class OrgSpec:
    users: int
    events: int
    audit: int
    hot: bool = False


@dataclass
class Scale:
    name: str
    orgs: list[OrgSpec]
    ref_index: int  # the 100-user organization: the baseline of B3 and B6
    b1_events: int
    b2_rows: int
    b5_pairs: int
    b5_extra: int  # authorizations attempted beyond the budget (must be refused)


def scale(name: str) -> Scale:
    if name == "small":
        return Scale(
            name="small",
            orgs=[OrgSpec(100, 10_000, 10_000, hot=True)]
            + [OrgSpec(10, 250, 100) for _ in range(4)],
            ref_index=0,
            b1_events=20_000,
            b2_rows=1_000_000,
            b5_pairs=640,
            b5_extra=160,
        )
    if name == "full":
        others = [OrgSpec(20, 5_000, 918) for _ in range(98)]
        big_audit = 1_000_000 - 10_000 - sum(o.audit for o in others)
        return Scale(
            name="full",
            orgs=[
                OrgSpec(10_000, 4_500_000, big_audit, hot=True),
                OrgSpec(100, 10_000, 10_000),
                *others,
            ],
            ref_index=1,
            b1_events=100_000,
            b2_rows=1_000_000,
            b5_pairs=3_200,
            b5_extra=320,
        )
    raise ValueError(f"unknown scale {name!r}")


@dataclass
class Context:
    """What the benchmarks need to know about the dataset (kept in the bench DB,
    so ``--reuse-db`` can run again on a kept database)."""

    scale: str
    big_org: int
    ref_org: int
    big_admin: str
    ref_admin: str
    hot_user: str
    password: str
    service_key: str
    models: list[str]
    flat_model: str
    counts: dict = field(default_factory=dict)
    build_seconds: float = 0.0


def _emails(idx: int) -> tuple[str, str]:
    return f"admin@org{idx}.bench.example", f"hot@org{idx}.bench.example"


def _log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def _secondary_indexes(cursor, table: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX …) of the table's indexes that back no constraint."""
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
        ORDER BY i.relname
        """,
        [table],
    )
    return list(cursor.fetchall())


def build(spec: Scale) -> Context:
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import Organization, User
    from accounts.services import service_key_create
    from tokens.models import ORG_DAILY_STRIPES, AIModel, DistributionPolicy
    from tokens.services.distribution import PRESETS, override_set

    began = time.monotonic()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    t0 = now - dt.timedelta(days=400)  # activation and purchases
    events_from = now - dt.timedelta(days=365)
    events_to = now - dt.timedelta(minutes=10)
    lot = 2_000_000

    with transaction.atomic():
        models = AIModel.objects.bulk_create(
            [
                AIModel(
                    key=k,
                    name=n,
                    token_type=t,
                    input_rate=i,
                    output_rate=o,
                    provider="bench",
                )
                for k, n, t, i, o in [*MODELS, FLAT_MODEL]
            ]
        )
        orgs = Organization.objects.bulk_create(
            [
                Organization(
                    name=f"Bench Org {i:03d}"
                    + (
                        " (big)"
                        if i == 0
                        else " (reference)"
                        if i == spec.ref_index
                        else ""
                    ),
                    domain=f"org{i}.bench.example",
                    email=f"billing@org{i}.bench.example",
                    status=Organization.Status.ACTIVE,
                    activated_at=t0,
                    created_at=t0 - dt.timedelta(days=3),
                )
                for i in range(len(spec.orgs))
            ]
        )
        DistributionPolicy.objects.bulk_create(
            [
                DistributionPolicy(
                    organization=o,
                    preset=DistributionPolicy.Preset.STANDARD,
                    updated_at=t0,
                    **PRESETS[DistributionPolicy.Preset.STANDARD],
                )
                for o in orgs
            ]
        )
    password = make_password(PASSWORD)

    with connection.cursor() as c:
        c.execute("SET synchronous_commit = off")
        c.execute("SET work_mem = '256MB'")
        c.execute("SET maintenance_work_mem = '512MB'")
        c.execute("SELECT setseed(0.42)")
        c.execute(
            "CREATE TEMP TABLE bench_org (idx int, org_id bigint, ubase bigint, "
            "n_users int, ev_users int, ev_base bigint, n_events int, "
            "ev_step interval, audit_target int, hot boolean)"
        )
        ubase = ev_base = 0
        rows = []
        for i, (o, s) in enumerate(zip(orgs, spec.orgs, strict=True)):
            step = (events_to - events_from) / max(1, s.events)
            ev_users = s.users - (1 if s.hot else 0)
            org_row = [i, o.pk, ubase, s.users, ev_users, ev_base]
            rows.append([*org_row, s.events, step, s.audit, s.hot])
            ubase += s.users
            ev_base += s.events
        c.executemany(
            "INSERT INTO bench_org VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows
        )
        c.execute("CREATE TEMP TABLE bench_model (idx int, id bigint)")
        c.executemany(
            "INSERT INTO bench_model VALUES (%s, %s)",
            [(n + 1, m.pk) for n, m in enumerate(models[: len(MODELS)])],
        )
        c.execute("SET session_replication_role = replica")

        def step(label: str, sql: str, params=None) -> None:
            t = time.monotonic()
            c.execute(sql, params or {})
            _log(f"  {label}: {c.rowcount:,} rows in {time.monotonic() - t:.1f} s")

        dropped = {}
        for table in ("tokens_usageevent", "tokens_dailyusage", "accounts_auditevent"):
            dropped[table] = _secondary_indexes(c, table)
            for name, _sql in dropped[table]:
                c.execute(f'DROP INDEX "{name}"')

        # --- users, allocations and their history -------------------------------
        step(
            "users",
            """
            INSERT INTO accounts_user (id, password, last_login, is_superuser, email,
                first_name, last_name, role, is_paid, is_banned, email_verified_at,
                terms_accepted_at, last_active_at, is_staff, is_active, date_joined,
                organization_id)
            SELECT o.ubase + g, %(pw)s, NULL, false,
                CASE WHEN g = 1 THEN 'admin'
                     WHEN o.hot AND g = o.n_users THEN 'hot'
                     ELSE 'user' || g END || '@org' || o.idx || '.bench.example',
                (ARRAY['Ava','Ben','Chloe','Dan','Eve','Finn','Gia','Hugo','Ines',
                       'Jon','Kim','Leo','Mia','Noah','Olga','Paul'])[1 + g %% 16],
                (ARRAY['Smith','Jones','Brown','Garcia','Miller','Davis','Lopez',
                       'Wilson','Moore','Clark','Lee'])[1 + (g / 16) %% 11],
                CASE WHEN g = 1 THEN 'admin' ELSE 'user' END, true, false,
                %(t0)s, %(t0)s, %(now)s - random() * interval '30 days',
                false, true, %(t0)s - interval '1 day', o.org_id
            FROM bench_org o CROSS JOIN LATERAL generate_series(1, o.n_users) g
            """,
            {"pw": password, "t0": t0, "now": now},
        )
        c.execute(
            "CREATE TEMP TABLE bench_user AS SELECT o.idx, o.org_id, o.ubase + g AS "
            "user_id, g AS pos, o.ubase + 1 AS admin_id, (g > 1 AND g %% 10 = 5 AND "
            "NOT (o.hot AND g = o.n_users)) AS cut FROM bench_org o CROSS JOIN "
            "LATERAL generate_series(1, o.n_users) g",
            {},
        )
        # Pending token requests: 1 % of the users, and at least 30 per organization
        # (users 2 to 31), so the queue's first page (25 rows) is full at every scale.
        c.execute("ALTER TABLE bench_user ADD COLUMN pending boolean")
        c.execute(
            "UPDATE bench_user SET pending = (pos %% 100 = 7 OR pos BETWEEN 2 AND 31)",
            {},
        )
        step(
            "activation audit events",
            """
            INSERT INTO accounts_auditevent (time, organization_id, actor_id,
                actor_email, action, target_type, target_id, target_repr, before,
                after, message, ip, request_id)
            SELECT %(t0)s + u.pos * interval '1 millisecond', u.org_id, NULL,
                'sales@vendor.example', 'allocation.limit_changed', 'accounts.user',
                u.user_id::text, usr.email,
                '{"inference_limit": 0, "embedding_limit": 0}'::jsonb,
                jsonb_build_object('inference_limit', %(limit)s,
                                   'embedding_limit', %(limit)s),
                'Source: Activation.', '10.0.0.1', 'activation-' || u.org_id
            FROM bench_user u JOIN accounts_user usr ON usr.id = u.user_id
            ORDER BY u.user_id
            """,
            {"t0": t0, "limit": LIMIT},
        )
        step(
            "manual cuts audit events",
            """
            INSERT INTO accounts_auditevent (time, organization_id, actor_id,
                actor_email, action, target_type, target_id, target_repr, before,
                after, message, ip, request_id)
            SELECT %(t)s + u.pos * interval '1 millisecond', u.org_id, u.admin_id,
                adm.email, 'allocation.limit_changed', 'accounts.user',
                u.user_id::text, usr.email,
                jsonb_build_object('inference_limit', %(limit)s),
                jsonb_build_object('inference_limit', %(cut)s),
                'Source: Manual.', '10.0.0.2', 'cut-' || u.user_id
            FROM bench_user u JOIN accounts_user usr ON usr.id = u.user_id
            JOIN accounts_user adm ON adm.id = u.admin_id
            WHERE u.cut ORDER BY u.user_id
            """,
            {"t": t0 + dt.timedelta(days=1), "limit": LIMIT, "cut": CUT_LIMIT},
        )
        step(
            "allocation changes",
            """
            INSERT INTO tokens_allocationchange (organization_id, user_id, token_type,
                delta, new_limit, source, actor_id, note, token_request_id,
                distribution_run_id, audit_event_id, time)
            SELECT a.organization_id, a.target_id::bigint, t.token_type,
                CASE WHEN a.message = 'Source: Manual.' THEN %(cut)s - %(limit)s
                     ELSE %(limit)s END,
                CASE WHEN a.message = 'Source: Manual.' THEN %(cut)s
                     ELSE %(limit)s END,
                CASE WHEN a.message = 'Source: Manual.' THEN 'manual'
                     ELSE 'activation' END,
                a.actor_id,
                CASE WHEN a.message = 'Source: Manual.' THEN ''
                     ELSE 'Equal share on activation.' END,
                NULL, NULL, a.id, a.time
            FROM accounts_auditevent a
            CROSS JOIN (VALUES ('inference'), ('embedding')) t(token_type)
            WHERE a.action = 'allocation.limit_changed'
              AND (a.message = 'Source: Activation.' OR t.token_type = 'inference')
            ORDER BY a.id, t.token_type
            """,
            {"limit": LIMIT, "cut": CUT_LIMIT},
        )
        step(
            "allocations",
            """
            INSERT INTO tokens_allocation (organization_id, user_id, token_type,
                "limit", last_auto_increase_at, last_auto_increase_tier)
            SELECT organization_id, user_id, token_type, sum(delta), NULL, NULL
            FROM tokens_allocationchange GROUP BY 1, 2, 3 ORDER BY 2, 3
            """,
        )
        step(
            "purchases",
            """
            INSERT INTO tokens_purchase (organization_id, purchased_on, payer_email,
                comment, inference_tokens, embedding_tokens, starts_on, expires_on,
                recorded_by_id, created_at)
            SELECT organization_id, %(day)s, 'billing@bench.example',
                'Annual pool (bench).',
                ceil(sum("limit") FILTER (WHERE token_type = 'inference') * 1.1
                     / %(lot)s) * %(lot)s,
                ceil(sum("limit") FILTER (WHERE token_type = 'embedding') * 1.1
                     / %(lot)s) * %(lot)s,
                %(day)s, NULL, NULL, %(t)s
            FROM tokens_allocation GROUP BY organization_id ORDER BY organization_id
            """,
            {"day": t0.date(), "lot": lot, "t": t0 - dt.timedelta(hours=1)},
        )
        step(
            "org audit events",
            """
            INSERT INTO accounts_auditevent (time, organization_id, actor_id,
                actor_email, action, target_type, target_id, target_repr, before,
                after, message, ip, request_id)
            SELECT %(t)s - interval '1 hour' + k * interval '1 second',
                p.organization_id, NULL, 'sales@vendor.example',
                CASE k WHEN 0 THEN 'purchase.recorded' ELSE 'organization.activated'
                END,
                CASE k WHEN 0 THEN 'tokens.purchase' ELSE 'accounts.organization' END,
                CASE k WHEN 0 THEN p.id ELSE p.organization_id END::text,
                'Bench org ' || p.organization_id,
                NULL,
                CASE k WHEN 0 THEN jsonb_build_object(
                    'inference_tokens', p.inference_tokens,
                    'embedding_tokens', p.embedding_tokens)
                ELSE jsonb_build_object('status', 'active') END,
                '', '10.0.0.1', 'activation-' || p.organization_id
            FROM tokens_purchase p CROSS JOIN generate_series(0, 1) k
            ORDER BY 1, 2
            """,
            {"t": t0},
        )

        # --- token requests: 1 % pending, 1 % denied, with their audit events -------
        step(
            "token requests",
            """
            INSERT INTO tokens_tokenrequest (organization_id, user_id, token_type,
                amount, reason, limit_at_request, status, approved_amount,
                admin_note, hold_note, decided_by_id, decided_at, auto_approved,
                created_at)
            SELECT u.org_id, u.user_id, 'inference', 500000,
                'A project needs more tokens this month.', a."limit",
                CASE WHEN u.pending THEN 'pending' ELSE 'denied' END, NULL,
                CASE WHEN u.pending THEN '' ELSE 'Not this month.' END, '',
                CASE WHEN u.pending THEN NULL ELSE u.admin_id END,
                CASE WHEN u.pending THEN NULL
                     ELSE %(now)s - (u.pos %% 7) * interval '1 day' END,
                false, %(now)s - (u.pos %% 7 + 1) * interval '1 day'
            FROM bench_user u JOIN tokens_allocation a
              ON a.user_id = u.user_id AND a.token_type = 'inference'
            WHERE u.pending OR u.pos %% 100 = 17 ORDER BY u.user_id
            """,
            {"now": now},
        )
        step(
            "token request audit events",
            """
            INSERT INTO accounts_auditevent (time, organization_id, actor_id,
                actor_email, action, target_type, target_id, target_repr, before,
                after, message, ip, request_id)
            SELECT CASE k WHEN 0 THEN r.created_at ELSE r.decided_at END,
                r.organization_id,
                CASE k WHEN 0 THEN r.user_id ELSE r.decided_by_id END,
                CASE k WHEN 0 THEN usr.email ELSE adm.email END,
                CASE k WHEN 0 THEN 'token_request.submitted'
                     ELSE 'token_request.denied' END,
                'tokens.tokenrequest', r.id::text, usr.email || ' · 500000 inference',
                CASE k WHEN 0 THEN NULL ELSE '{"status": "pending"}'::jsonb END,
                CASE k WHEN 0 THEN '{"amount": 500000, "token_type": "inference"}'
                     ELSE '{"status": "denied"}' END::jsonb,
                CASE k WHEN 0 THEN '' ELSE 'Not this month.' END,
                '10.0.0.3', 'request-' || r.id || '-' || k
            FROM tokens_tokenrequest r
            JOIN accounts_user usr ON usr.id = r.user_id
            LEFT JOIN accounts_user adm ON adm.id = r.decided_by_id
            CROSS JOIN generate_series(0, 1) k
            WHERE k = 0 OR r.status = 'denied'
            ORDER BY 1
            """,
        )

        # --- usage events, then counters and rollups from them ----------------------
        step(
            "usage events",
            """
            INSERT INTO tokens_usageevent (id, event_id, organization_id, user_id,
                model_id, token_type, prompt_tokens, completion_tokens, tokens,
                input_rate, output_rate, occurred_at, received_at, hold_id,
                application, prompt_excerpt, response_excerpt, payload_digest,
                org_key)
            SELECT s.id, 'bench-' || s.id, s.org_id, s.user_id, m.id, m.token_type,
                s.p, k.c, ceil(s.p * m.input_rate + k.c * m.output_rate)::bigint,
                m.input_rate, m.output_rate, s.occ, s.occ + interval '1 second',
                NULL,
                CASE WHEN s.id %% 9973 = 0 THEN '=1+1'
                     ELSE (ARRAY['chat','chat','chat','api','notebook','search',''])
                          [1 + s.a] END,
                '', '', md5(s.id::text) || md5('bench' || s.id), false
            FROM (
                SELECT o.ev_base + g AS id, o.org_id,
                    o.ubase + 1 + floor(random() * o.ev_users)::bigint AS user_id,
                    1 + floor(random() * %(n_models)s)::int AS midx,
                    (20 + floor(random() * 3000))::bigint AS p,
                    floor(random() * 1500)::bigint AS c0,
                    %(start)s + (g - 1 + random()) * o.ev_step AS occ,
                    floor(random() * 7)::int AS a
                FROM bench_org o CROSS JOIN LATERAL generate_series(1, o.n_events) g
            ) s
            JOIN bench_model bm ON bm.idx = s.midx
            JOIN tokens_aimodel m ON m.id = bm.id
            CROSS JOIN LATERAL (
                SELECT CASE WHEN m.token_type = 'embedding' THEN 0 ELSE s.c0 END AS c
            ) k
            """,
            {"n_models": len(MODELS), "start": events_from},
        )
        step(
            "usage counters",
            """
            INSERT INTO tokens_usagecounter (organization_id, user_id, token_type,
                period, used, held)
            SELECT organization_id, user_id, token_type,
                date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date,
                sum(tokens), 0
            FROM tokens_usageevent GROUP BY 1, 2, 3, 4 ORDER BY 2, 3, 4
            """,
        )
        step(
            "daily usage",
            """
            INSERT INTO tokens_dailyusage (organization_id, user_id, model_id,
                token_type, day, tokens, events)
            SELECT organization_id, user_id, model_id, token_type,
                (occurred_at AT TIME ZONE 'UTC')::date, sum(tokens), count(*)
            FROM tokens_usageevent GROUP BY 1, 2, 3, 4, 5
            """,
        )
        step(
            "organization daily usage",
            """
            INSERT INTO tokens_orgdailyusage (organization_id, model_id, token_type,
                day, stripe, tokens, events)
            SELECT organization_id, model_id, token_type, day,
                user_id %% %(stripes)s, sum(tokens), sum(events)
            FROM tokens_dailyusage GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 4, 3, 2, 5
            """,
            {"stripes": ORG_DAILY_STRIPES},
        )
        step(
            "monthly usage",
            """
            INSERT INTO tokens_monthlyusage (organization_id, user_id, month,
                inference_tokens, inference_events, inference_last_day,
                embedding_tokens, embedding_events, embedding_last_day,
                tokens, events, last_day)
            SELECT organization_id, user_id, date_trunc('month', day)::date,
                coalesce(sum(tokens) FILTER (WHERE token_type = 'inference'), 0),
                coalesce(sum(events) FILTER (WHERE token_type = 'inference'), 0),
                max(day) FILTER (WHERE token_type = 'inference'),
                coalesce(sum(tokens) FILTER (WHERE token_type = 'embedding'), 0),
                coalesce(sum(events) FILTER (WHERE token_type = 'embedding'), 0),
                max(day) FILTER (WHERE token_type = 'embedding'),
                sum(tokens), sum(events), max(day)
            FROM tokens_dailyusage GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """,
        )

        # --- filler audit events up to each organization's share -------------------
        c.execute(
            "UPDATE bench_org o SET audit_target = greatest(0, o.audit_target - "
            "(SELECT count(*) FROM accounts_auditevent a WHERE a.organization_id = "
            "o.org_id))",
            {},
        )
        step(
            "filler audit events",
            """
            INSERT INTO accounts_auditevent (time, organization_id, actor_id,
                actor_email, action, target_type, target_id, target_repr, before,
                after, message, ip, request_id)
            SELECT f.t, f.org_id, usr.id, usr.email, f.action, 'accounts.user',
                usr.id::text, usr.email, NULL,
                CASE WHEN f.action = 'data.exported' THEN
                    '{"export": "users", "filters": {}}'::jsonb END,
                '', ('10.' || (f.g %% 250) || '.' || (f.g / 250 %% 250) || '.7')::inet,
                substr(md5(f.org_id || '-' || f.g), 1, 32)
            FROM (
                SELECT o.org_id, g,
                    o.ubase + 1 + floor(random() * o.n_users)::bigint AS user_id,
                    %(start)s + (g - 1 + random())
                        * ((%(end)s - %(start)s) / greatest(1, o.audit_target)) AS t,
                    (ARRAY['auth.sign_in','auth.sign_in','auth.sign_in',
                           'auth.sign_in','auth.sign_out','auth.sign_out',
                           'data.exported','auth.sign_in_failed'])
                        [1 + floor(random() * 8)::int] AS action
                FROM bench_org o
                CROSS JOIN LATERAL generate_series(1, o.audit_target) g
            ) f JOIN accounts_user usr ON usr.id = f.user_id
            ORDER BY f.org_id, f.t
            """,
            {"start": t0 + dt.timedelta(days=2), "end": now - dt.timedelta(minutes=5)},
        )
        c.execute("SET session_replication_role = DEFAULT")
        for table, indexes in dropped.items():
            t = time.monotonic()
            for _name, sql in indexes:
                c.execute(sql)
            _log(f"  indexes of {table}: {time.monotonic() - t:.1f} s")
        for table in (
            "accounts_user",
            "accounts_auditevent",
            "tokens_usageevent",
            "tokens_allocation",
            "tokens_allocationchange",
            "tokens_usagecounter",
            "tokens_dailyusage",
            "tokens_orgdailyusage",
            "tokens_monthlyusage",
            "tokens_tokenrequest",
            "tokens_purchase",
        ):
            c.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        # Foreign keys were not checked while loading: check the big tables now.
        c.execute(
            """
            SELECT
              (SELECT count(*) FROM tokens_usageevent e
                 LEFT JOIN accounts_user u ON u.id = e.user_id
                 WHERE u.id IS NULL OR u.organization_id <> e.organization_id),
              (SELECT count(*) FROM accounts_auditevent a
                 LEFT JOIN accounts_organization o ON o.id = a.organization_id
                 WHERE a.organization_id IS NOT NULL AND o.id IS NULL),
              (SELECT count(*) FROM tokens_allocationchange ch
                 LEFT JOIN accounts_auditevent a ON a.id = ch.audit_event_id
                 WHERE a.id IS NULL)
            """
        )
        orphans = c.fetchone()
        if any(orphans):
            raise RuntimeError(f"dataset has dangling references: {orphans}")

    # --- the pieces built with the product's own code ------------------------------
    big, ref = orgs[0], orgs[spec.ref_index]
    big_admin, hot_email = _emails(0)
    ref_admin = _emails(spec.ref_index)[0]
    admins = User.objects.filter(email__in=[big_admin, ref_admin])
    for admin in admins:
        TOTPDevice.objects.create(user=admin, name="bench", confirmed=True)
    hot = User.objects.get(email=hot_email)
    override_set(
        actor=User.objects.get(email=big_admin),
        organization=big,
        user=hot,
        floor=None,
        ceiling=None,
        exempt_auto_increase=True,
        exempt_reclamation=True,
        note="Benchmark hot user: its limit is set by the benchmark.",
    )
    _key, secret = service_key_create(
        actor=None, name="bench gateway", organization=big
    )
    t = time.monotonic()
    with connection.cursor() as c:
        for table in (
            "tokens_usageevent",
            "accounts_auditevent",
            "tokens_dailyusage",
            "tokens_orgdailyusage",
            "tokens_monthlyusage",
            "tokens_usagecounter",
            "tokens_allocation",
            "tokens_allocationchange",
            "accounts_user",
            "tokens_tokenrequest",
        ):
            c.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        c.execute("ANALYZE")
    _log(f"  vacuum analyze: {time.monotonic() - t:.1f} s")
    with connection.cursor() as c:
        counts = {}
        for label, table in (
            ("organizations", "accounts_organization"),
            ("users", "accounts_user"),
            ("usage events", "tokens_usageevent"),
            ("audit events", "accounts_auditevent"),
            ("daily usage rows", "tokens_dailyusage"),
            ("organization daily usage rows", "tokens_orgdailyusage"),
            ("monthly usage rows", "tokens_monthlyusage"),
            ("usage counters", "tokens_usagecounter"),
            ("allocation changes", "tokens_allocationchange"),
        ):
            c.execute(f"SELECT count(*) FROM {table}")
            counts[label] = c.fetchone()[0]
        c.execute(
            "SELECT count(*) FROM tokens_usageevent WHERE organization_id = %s",
            [big.pk],
        )
        counts["big org usage events"] = c.fetchone()[0]
        c.execute(
            "SELECT count(*) FROM accounts_auditevent WHERE organization_id = %s",
            [big.pk],
        )
        counts["big org audit events"] = c.fetchone()[0]
    context = Context(
        scale=spec.name,
        big_org=big.pk,
        ref_org=ref.pk,
        big_admin=big_admin,
        ref_admin=ref_admin,
        hot_user=hot_email,
        password=PASSWORD,
        service_key=secret,
        models=[m[0] for m in MODELS],
        flat_model=FLAT_MODEL[0],
        counts=counts,
        build_seconds=round(time.monotonic() - began, 1),
    )
    save_context(context)
    return context


def save_context(context: Context) -> None:
    from django.db import connection

    with connection.cursor() as c:
        c.execute("CREATE TABLE IF NOT EXISTS bench_meta (data jsonb NOT NULL)")
        c.execute("DELETE FROM bench_meta")
        c.execute("INSERT INTO bench_meta VALUES (%s)", [json.dumps(asdict(context))])


def load_context() -> Context:
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SELECT data FROM bench_meta")
        data = c.fetchone()[0]
    return Context(**(json.loads(data) if isinstance(data, str) else data))
