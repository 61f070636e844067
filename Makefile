PYTHON ?= python3
VENV := .venv
PORT ?= 8000
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: up test lint install bench migrate

up: install
	marketplan up --port $(PORT)$(if $(REPLICAS), --replicas $(REPLICAS))

# One worker per core (pytest-xdist); a file's tests run on one worker, in order, so its module
# fixtures (servers, databases) start once. The suite waits on servers and subprocesses much of
# the time: on CI's two cores it used ~1.2 of them with one process.
PYTEST_ARGS ?= -n auto --dist loadfile

test: install
	pytest $(PYTEST_ARGS)

lint: install
	ruff check .
	mypy

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $@

migrate: install
	marketplan migrate

bench: install
	$(VENV)/bin/pip install --quiet -e ".[test,bench]"
	command -v wrk >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }
	python bench/gateway.py
	python bench/optimizer.py
	python bench/scheduler.py
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }
	python bench/jobs.py
	python bench/throughput.py
