# aiserver production image (docs/deploy.md): serving dependencies only, a non-root user, tini as PID 1,
# HTTP on 8000 (gunicorn) and gRPC on 8500 (`python manage.py grpcserve`: the same image, its own container).
#
#   docker build -t aiserver .                  podman build --format docker -t aiserver .
#   --build-arg BASE=<image>                    any Debian-based image with python3 (3.11) and its venv module
#
# tests/deploy/test_image.py checks that every file these steps need is in the build context and that the
# install step succeeds in an empty folder holding only the files copied before it.
ARG BASE=python:3.11-slim-bookworm

# -- build: a virtual environment with the serving requirements only (requirements-test.txt stays out)
FROM ${BASE} AS build
ENV VENV=/opt/venv PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt requirements-nodeps.txt ./
RUN python3 -m venv "$VENV" && "$VENV/bin/pip" install --quiet -r requirements.txt && "$VENV/bin/pip" install --quiet --no-deps -r requirements-nodeps.txt

# -- runtime: the virtual environment, the code, nothing else
FROM ${BASE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 aiserver \
    && useradd --system --uid 10001 --gid aiserver --home-dir /data --no-create-home --shell /usr/sbin/nologin aiserver \
    && mkdir -p /data /models \
    && chown aiserver:aiserver /data /models
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY manage.py ./
COPY aiserver/ aiserver/
COPY yyai/ yyai/
# The demo apps' app.toml files: `python manage.py build_demo_models` builds the demo weights into /models.
COPY model_store/ model_store/
COPY deploy/entrypoint.sh deploy/healthcheck.py deploy/
RUN /opt/venv/bin/python -m compileall -q manage.py aiserver yyai deploy
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/data \
    DJANGO_DEBUG=0 \
    YYAI_DATA_DIR=/data \
    YYAI_MODEL_STORE=/models \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001:10001
VOLUME ["/data", "/models"]
EXPOSE 8000 8500
# gunicorn stops gracefully on SIGTERM (in-flight requests finish, up to graceful_timeout = 30 s):
# give containers that long before SIGKILL (compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["python", "/app/deploy/healthcheck.py"]
# tini is PID 1: it forwards signals to the server and reaps orphaned children (upload validators, grpc threads).
ENTRYPOINT ["tini", "--", "/bin/sh", "/app/deploy/entrypoint.sh"]
CMD ["gunicorn", "-c", "aiserver/gunicorn.conf.py"]
