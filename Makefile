# pointsapp: two commands set everything up on a fresh machine.
#   make run    install, migrate a SQLite database under instance/, load the demo street, serve on :5000
#   make test   install the test requirements, run the suite on SQLite and (when reachable) PostgreSQL
#   make bench  build the benchmark databases and measure the app against pgbench (docs/PERFORMANCE.md)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := pointsapp
HOST ?= 127.0.0.1
PORT ?= 5000
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
export TEST_POSTGRES_URL
PYTEST_ARGS ?=
# Tests run in this many processes (pytest-xdist; each has its own database); 0 runs them in one.
PYTEST_WORKERS ?= 2

.PHONY: run test test-sqlite test-postgresql test-long install translations messages clean bench bench-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

translations: $(VENV)/.installed
	@if ls pointsapp/translations/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
		$(BIN)/pybabel -q compile -d pointsapp/translations; fi

# Domain errors take a plain English message as their first argument (gettext runs on it when
# the message is shown), so every PointsError class is an extraction keyword too.
CATALOGUE  := pointsapp/translations
ERROR_KEYWORDS := PointsError InvalidInput NotFound Forbidden AccountInactive InsufficientPoints \
	OutOfStock LimitReached RewardUnavailable RuleNotApplicable AlreadyDecided AlreadyRecorded \
	VoucherNotFound WrongMerchant VoucherAlreadyRedeemed VoucherJustRedeemed VoucherExpired VoucherCancelled CannotReverse \
	PeriodNotEnded PeriodClosed PaymentExceedsOwed VolunteerInactive NothingToDeduct BudgetExhausted \
	ApiError CheckinCodeExpired CheckinNotOpen CheckinNotForYou EventClosed EventNotEditable AlreadyVoted NotOnNotice ObjectionResolved \
	VoucherKeyMismatch PhotosUnavailable FundingFromAbove

# The Chinese catalogue's directory is named as Babel names the zh_CN locale (zh_Hans_CN):
# Flask-Babel looks for that directory, never for zh_CN/.
CHINESE    := zh_Hans_CN

# Extract the catalogue template and merge it into the Chinese catalogue (created the first time).
# Translate the new entries in $(CATALOGUE)/$(CHINESE)/LC_MESSAGES/messages.po afterwards.
messages: $(VENV)/.installed
	@mkdir -p $(CATALOGUE)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k lazy_pgettext:1c,2 -k lazy_ngettext:1,2 $(addprefix -k ,$(ERROR_KEYWORDS)) \
		--project pointsapp --no-location --sort-output -o $(CATALOGUE)/messages.pot .
	@if [ -f $(CATALOGUE)/$(CHINESE)/LC_MESSAGES/messages.po ]; then \
		$(BIN)/pybabel update -i $(CATALOGUE)/messages.pot -d $(CATALOGUE) -l $(CHINESE) --no-fuzzy-matching --ignore-obsolete; \
	else \
		$(BIN)/pybabel init -i $(CATALOGUE)/messages.pot -d $(CATALOGUE) -l $(CHINESE); \
	fi

run: $(VENV)/.installed translations
	$(BIN)/flask db upgrade
	$(BIN)/flask points seed-demo --if-empty
	$(BIN)/flask points demo-logins
	@echo "Serving on http://$(HOST):$(PORT)  (Ctrl-C to stop)"
	$(BIN)/flask run --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test translations
	$(MAKE) --no-print-directory test-sqlite
	@if $(BIN)/python -c "import sys, sqlalchemy as sa; e = sa.create_engine('$(TEST_POSTGRES_URL)'); c = e.connect(); c.close()" >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory test-postgresql; \
	elif [ -n "$$CI" ]; then \
		echo "*** PostgreSQL is not reachable at $(TEST_POSTGRES_URL): CI must test on it ***"; exit 1; \
	else \
		echo "*** PostgreSQL is not reachable at $(TEST_POSTGRES_URL): the PostgreSQL run was SKIPPED ***"; \
	fi

test-sqlite: $(VENV)/.installed-test
	@echo "=== test suite on SQLite ==="
	TEST_DATABASE=sqlite $(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-postgresql: $(VENV)/.installed-test
	@echo "=== test suite on PostgreSQL ==="
	TEST_DATABASE=postgresql $(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The long reliability run: the stateful ledger test with 2,000 examples of up to 100 steps, and
# a longer crash-under-load run, on SQLite and on PostgreSQL.
LONG_TESTS := tests/reliability/test_ledger_stateful.py tests/live/test_crash_under_load.py
test-long: $(VENV)/.installed-test translations
	POINTS_STATEFUL_EXAMPLES=$${POINTS_STATEFUL_EXAMPLES:-2000} POINTS_STATEFUL_STEPS=$${POINTS_STATEFUL_STEPS:-100} \
	POINTS_STATEFUL_RANDOM=$${POINTS_STATEFUL_RANDOM:-1} \
	POINTS_CRASH_LOAD_SECONDS=$${POINTS_CRASH_LOAD_SECONDS:-60} \
		$(MAKE) --no-print-directory test PYTEST_WORKERS=0 PYTEST_ARGS="-s $(LONG_TESTS) $(PYTEST_ARGS)"

# The benchmark suite (docs/PERFORMANCE.md): builds its databases, then measures the app under
# gunicorn against pgbench on the same PostgreSQL. Not part of `make test`; takes a few minutes.
# BENCH_ENTRIES=10000000 for the city-scale ledger (about ten minutes of loading on 2 cores).
BENCH_PG        ?= postgresql://postgres@127.0.0.1:5432
BENCH_VOLUNTEERS ?= 100000
BENCH_ENTRIES   ?= 1000000
BENCH_SECONDS   ?= 15
BENCH_CLIENTS   ?= 32
$(VENV)/.installed-bench: requirements.txt bench/requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $@

bench-data: $(VENV)/.installed-bench translations
	$(BIN)/python bench/generate.py --url $(BENCH_PG)/points_bench_large --volunteers $(BENCH_VOLUNTEERS) --entries $(BENCH_ENTRIES)
	$(BIN)/python bench/generate.py --url $(BENCH_PG)/points_bench_small --volunteers 2000 --entries 10000
	$(BIN)/python bench/generate.py --url sqlite:///$(CURDIR)/instance/bench_sqlite.db --volunteers 20000 --entries 100000

bench: bench-data
	$(BIN)/python bench/run.py --large $(BENCH_PG)/points_bench_large --small $(BENCH_PG)/points_bench_small \
		--sqlite sqlite:///$(CURDIR)/instance/bench_sqlite.db --seconds $(BENCH_SECONDS) --clients $(BENCH_CLIENTS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
