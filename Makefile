# Two commands: `make demo` and `make test`. Both create .venv on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
SERVE  ?= 1

.PHONY: demo serve test lint format install clean vendor-charts

demo: $(STAMP) ## set up, import the sample, sit the council on its last week, then the stack (Ctrl-C stops)
	$(BIN)/aitrader demo
ifneq ($(SERVE),0)
	$(BIN)/aitrader up --host $(HOST) --port $(PORT)
endif

serve: $(STAMP) ## the realtime process alone
	$(BIN)/aitrader serve --host $(HOST) --port $(PORT)

test: lint ## lint, type-check, then the whole suite (SQLite and Postgres)
	$(BIN)/pytest -n 3 --dist loadgroup

lint: $(STAMP) ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "AITrader needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ml]'
	touch $(STAMP)

LWC_VERSION = 5.2.1
LWC_SHA256 = 64310292298df4dd527494865e5d91d447f8bb397b68de3912c2a6465025ee5e
vendor-charts: ## re-fetch the dashboard's chart library from npm (checked), into api/web/static/vendor
	rm -rf .vendor && mkdir -p .vendor
	curl -fsSL -o .vendor/lwc.tgz https://registry.npmjs.org/lightweight-charts/-/lightweight-charts-$(LWC_VERSION).tgz
	echo "$(LWC_SHA256)  .vendor/lwc.tgz" | sha256sum -c -
	tar -xzf .vendor/lwc.tgz -C .vendor
	cp .vendor/package/dist/lightweight-charts.standalone.production.mjs api/web/static/vendor/
	cp .vendor/package/LICENSE api/web/static/vendor/lightweight-charts.LICENSE
	rm -rf .vendor

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
