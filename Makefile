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
test: install-test browser nginx
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest

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
BENCH_VENV := bench/.work/venv-bench
BENCH_ARGS ?=

# LitServe and py-spy live in their own venv; a .pth file lets it import .venv's TensorFlow and Keras.
$(BENCH_VENV)/.installed: bench/requirements-bench.txt $(VENV)/.testing
	test -x $(BENCH_VENV)/bin/python || $$($(PY) -c 'import sys; print(sys._base_executable)') -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements-bench.txt
	$(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > \
	  $$($(BENCH_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_aiserver_venv.pth
	touch $@

.PHONY: bench bench-smoke
## Benchmark aiserver against the seed's design, LitServe and the offline limit (bench/RESULTS.md), and a new
## instance's cold start from a folder and from an S3 bucket (bench/COLDSTART.md).
bench: install-test $(BENCH_VENV)/.installed
	command -v wrk >/dev/null || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y wrk; }
	$(PY) -m bench.run --profile $(BENCH_ARGS)
	$(PY) -m bench.coldstart

## A few seconds of the benchmark against our server only (Python load generator; no wrk, no peers).
bench-smoke: install
	$(PY) -m bench.run --smoke --out bench/.work/RESULTS-smoke.md
