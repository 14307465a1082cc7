# aiserver image: the same make targets as a developer machine. Not exercised by CI here (no Docker engine).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt requirements-test.txt Makefile ./
RUN make install
COPY . .
ENV DJANGO_DEBUG=0 YYAI_DATA_DIR=/data YYAI_MODEL_STORE=/models PORT=8000
VOLUME ["/data", "/models"]
EXPOSE 8000
# migrate, create the admin user once, then serve; models come from the /models volume
CMD ["sh", "-c", "make migrate && .venv/bin/python manage.py ensure_admin && exec .venv/bin/gunicorn -c aiserver/gunicorn.conf.py"]
