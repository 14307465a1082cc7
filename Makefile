# One-command workflows. Every target installs what it needs into .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test install demo migrate clean

$(VENV)/.installed: requirements.txt requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

demo: install
	$(PY) manage.py build_demo_models

## Set up everything and serve the demo apps on 0.0.0.0:$(PORT) (plain HTTP unless DJANGO_HTTPS=1).
run: migrate demo
	$(PY) manage.py ensure_admin
	DJANGO_HTTPS=$${DJANGO_HTTPS:-0} PORT=$(PORT) $(VENV)/bin/gunicorn -c aiserver/gunicorn.conf.py aiserver.wsgi

## Run the whole test suite (slow-marked tests included).
test: install
	$(PY) -m pytest

clean:
	rm -rf $(VENV) data
