# Vobiz Endpoints Admin: production image. Build: docker build -t vobizadmin .
# Run: docker run -e DJANGO_SECRET_KEY=... -e VOBIZ_AUTH_ID=... -e VOBIZ_AUTH_TOKEN=... \
#        -e DATABASE_URL=postgres://... -e DJANGO_ALLOWED_HOSTS=endpoints.example.com -p 8000:8000 vobizadmin
# Sync worker from the same image: docker run ... vobizadmin python manage.py sync_endpoints --every 60

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN python -m venv /venv
COPY pyproject.toml README.md ./
RUN /venv/bin/pip install .
COPY manage.py ./
COPY vobizadmin ./vobizadmin
COPY endpoints ./endpoints
COPY templates ./templates
COPY static ./static
# collectstatic needs settings that load; these build-time values never reach the runtime image.
RUN DJANGO_SECRET_KEY=build-only VOBIZ_AUTH_ID=build VOBIZ_AUTH_TOKEN=build \
    /venv/bin/python manage.py collectstatic --noinput -v0

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/venv/bin:$PATH \
    DJANGO_DEBUG=false
RUN useradd --system --uid 10001 --home /app app
WORKDIR /app
COPY --from=build /venv /venv
COPY --from=build --chown=app:app /app /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn vobizadmin.wsgi:application --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-3} --threads 4 --access-logfile - --forwarded-allow-ips='*'"]
