# One-command workflows. Every target installs what it needs into .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test install install-test demo migrate clean browser nginx

# Serving needs only requirements*.txt without "-test"; the test tools come on top, for make test and make bench.
$(VENV)/.serving: requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

$(VENV)/.testing: $(VENV)/.serving requirements-test.txt requirements-test-nodeps.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-test-nodeps.txt
	touch $@

## The serving requirements only (what make run needs).
install: $(VENV)/.serving

## The serving requirements and the test tools.
install-test: $(VENV)/.testing

migrate: install
	$(PY) manage.py migrate --noinput

demo: install
	$(PY) manage.py build_demo_models

## Set up everything and serve the demo apps on 0.0.0.0:$(PORT) (plain HTTP unless DJANGO_HTTPS=1).
run: migrate demo
	$(PY) manage.py ensure_admin
	DJANGO_HTTPS=$${DJANGO_HTTPS:-0} PORT=$(PORT) $(VENV)/bin/gunicorn -c aiserver/gunicorn.conf.py

## Check the layers (.importlinter), then run the whole test suite (slow-marked tests included).
test: install-test browser nginx lint
	$(PY) -m pytest

.PHONY: lint format
## The tree's layers (.importlinter) and style (ruff.toml); `make format` applies the style.
lint: install-test
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Debian's Chromium for the web page's browser test (apt; sudo when not root). Never downloads a browser.
browser:
	command -v chromium >/dev/null || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium; }

## Debian's nginx for the scale-out test (tests/deploy/test_nginx.py runs it in the foreground on its own port).
nginx:
	test -x /usr/sbin/nginx || command -v nginx >/dev/null || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y nginx; }

clean:
	rm -rf $(VENV) data

# -- benchmark (bench/) --------------------------------------------------------
BENCH_ARGS ?=

.PHONY: bench bench-smoke
## Benchmark aiserver against Triton, MLServer, KServe, BentoML, Ray Serve, LitServe, the seed's design and the
## offline limit (bench/RESULTS.md; each peer in a venv of its own under bench/.work, made by the bench), a
## new instance's cold start from a folder and from an S3 bucket (bench/COLDSTART.md), and 50 apps under a memory
## budget against everything loaded (bench/MANYAPPS.md).
bench: install-test
	command -v wrk >/dev/null || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y wrk; }
	$(PY) -m bench.run --profile $(BENCH_ARGS)
	$(PY) -m bench.coldstart
	$(PY) -m bench.many_apps

## A few seconds of the benchmark against our server only (Python load generator; no wrk, no peers).
bench-smoke: install
	$(PY) -m bench.run --smoke --out bench/.work/RESULTS-smoke.md
