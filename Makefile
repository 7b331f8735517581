# The two commands of the README: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
# Links in e-mails and the sign-in address printed by seed_demo follow HOST and PORT.
DEMO_ENV = DEMO_MODE=true SITE_URL=http://$(HOST):$(PORT)

.PHONY: run test test-fast lint fmt venv clean migrate seed bench litellm-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q ".[dev]"
	touch $@

# LiteLLM (for tests/integrations and bench B8) in a virtualenv of its own: it is
# heavy, and the project's stays light. The callback itself is ./integrations.
LITELLM_VENV ?= .venv-litellm
LITELLM_VERSION ?= 1.108.7
litellm-venv: $(LITELLM_VENV)/.installed

$(LITELLM_VENV)/.installed: integrations/pyproject.toml
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/pip install -q --upgrade pip
	$(LITELLM_VENV)/bin/pip install -q "litellm[proxy]==$(LITELLM_VERSION)" ./integrations
	touch $@

migrate: venv
	$(DEMO_ENV) $(PY) manage.py migrate --noinput

seed: migrate
	$(DEMO_ENV) $(PY) manage.py seed_demo

run: seed
	$(DEMO_ENV) $(PY) manage.py collectstatic --noinput -v0
	@echo
	@echo "Serving the demo on http://$(HOST):$(PORT)/ (MFA off; Ctrl-C stops)."
	@echo "Sign in with the admin shown above."
	$(DEMO_ENV) $(VENV)/bin/gunicorn asksage_admin.wsgi -c gunicorn.conf.py --bind $(HOST):$(PORT) \
		--workers 2 --threads 4 --access-logfile - --log-level info

# The whole suite (browser tests included; they skip without Chromium outside CI).
test: venv
	$(VENV)/bin/pytest -n auto -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(LITELLM_VENV) staticfiles db.sqlite3 db.sqlite3-*

# Performance harness (PostgreSQL required; creates and drops its own database).
# SCALE=full make bench for the full dataset; ONLY=B1,B3 to pick benchmarks.
SCALE ?= small
ONLY ?=
bench: venv
	$(PY) -m bench --scale $(SCALE) $(if $(ONLY),--only $(ONLY),)
