# Vobiz Endpoints Admin: production image. Build: docker build -t vobizadmin .
# Run: docker run -e DJANGO_SECRET_KEY=... -e VOBIZ_AUTH_ID=... -e VOBIZ_AUTH_TOKEN=... \
#        -e DATABASE_URL=postgres://... -e DJANGO_ALLOWED_HOSTS=endpoints.example.com \
#        -e FORWARDED_ALLOW_IPS=<the TLS proxy's address> -p 8000:8000 vobizadmin
# Task worker from the same image (any number of them; they share the queue in the database):
#   docker run ... vobizadmin sh -c "python manage.py start_periodic && exec python manage.py db_worker"
# It runs the syncs (periodic and "Refresh from Vobiz") and the bulk jobs; start_periodic keeps
# the periodic chain alive (safe to run on every worker start: the newest chain wins).

# The base image, pinned by digest so that a rebuild gets the same bytes. To move to a newer
# python:3.11-slim-bookworm: `docker buildx imagetools inspect python:3.11-slim-bookworm`
# (or `docker pull` it and read "Digest:"), and put the new digest here.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python -m venv /venv
# Runtime dependencies only, exactly as locked (make lock), every file checked against its hash.
COPY requirements/base.txt ./requirements/base.txt
RUN /venv/bin/pip install --require-hashes --no-deps -r requirements/base.txt
COPY manage.py ./
COPY vobizadmin ./vobizadmin
COPY endpoints ./endpoints
COPY templates ./templates
COPY static ./static
# collectstatic needs settings that load; these build-time values never reach the runtime image.
RUN DJANGO_SECRET_KEY=build-only-secret-never-used-at-runtime-0123456789abcdef \
    VOBIZ_AUTH_ID=build VOBIZ_AUTH_TOKEN=build \
    /venv/bin/python manage.py collectstatic --noinput -v0

FROM ${PYTHON_IMAGE}
# FORWARDED_ALLOW_IPS: the TLS proxy's addresses or networks (gunicorn and the settings both
# read it); only these peers are believed about X-Forwarded-Proto and X-Forwarded-For.
# TRUSTED_PROXY_HOPS: how many proxies every request passes (each appends to X-Forwarded-For).
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/venv/bin:$PATH \
    DJANGO_DEBUG=false FORWARDED_ALLOW_IPS=127.0.0.1,::1 TRUSTED_PROXY_HOPS=1
RUN useradd --system --uid 10001 --home /app app
WORKDIR /app
COPY --from=build /venv /venv
COPY --from=build --chown=app:app /app /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
# migrate also creates the database cache table (createcachetable) when it is missing.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn vobizadmin.wsgi:application --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-3} --threads 4 --access-logfile -"]
