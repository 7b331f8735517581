"""Settings of the benchmark server and harness: the product settings, unchanged,
except ``STATIC_ROOT``, which points at the run's own folder (the harness runs
``collectstatic`` there, so the manifest always matches the templates without
touching the project's ``staticfiles/``). Everything else comes from the
environment the harness sets (DATABASE_URL, SECRET_KEY, DEBUG, DEMO_MODE, …)."""

import os

from asksage_admin.settings import *  # noqa: F403

STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]
