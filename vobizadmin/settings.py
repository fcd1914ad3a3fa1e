"""Settings for Vobiz Endpoints Admin: one module, everything from the environment.

Local defaults are safe and need nothing (SQLite in the project, the embedded Vobiz sandbox);
with ``DJANGO_DEBUG`` off the settings are strict and refuse to start without a real secret.
"""

import ipaddress
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win

DEBUG = env.bool("DJANGO_DEBUG", default=False)

_DEV_SECRET = "dev-only-insecure-secret-key-change-me"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET if DEBUG else "")
if not SECRET_KEY or (not DEBUG and (SECRET_KEY == _DEV_SECRET or len(SECRET_KEY) < 50)):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of at least 50 characters when "
        "DJANGO_DEBUG is off."
    )

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
if not DEBUG:
    # The container's health check calls http://127.0.0.1:8000/healthz from inside.
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, "127.0.0.1", "localhost"]
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "vobizadmin",  # migrate also creates the database cache table (vobizadmin/apps.py)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "endpoints",
    "vobizadmin.sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "endpoints.middleware.SessionTimeoutMiddleware",
    "endpoints.middleware.NoStoreForLoggedInMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "endpoints.middleware.SecurityHeadersMiddleware",
    "endpoints.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "vobizadmin.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "endpoints.context_processors.dashboard",
            ],
        },
    }
]

WSGI_APPLICATION = "vobizadmin.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Tests use a file, not the shared in-memory database: live-server tests read while a
    # background sync thread writes, which a shared-cache memory database answers with
    # "database table is locked". One file per test process, so parallel runs don't collide.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"vobizadmin-test-{os.getpid()}.sqlite3")
    }
    # WAL lets the web process read while the sync worker writes; busy timeout rides out
    # the short write locks of batched upserts instead of failing with "database is locked".
    # A 32 MB page cache per connection (SQLite's default is 2 MB) keeps the indexes of
    # 100,000 endpoints in memory: a full sync writes ~2x faster, list pages read less;
    # sorts that need a temporary b-tree build it in memory.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA cache_size=-32000; PRAGMA temp_store=MEMORY;"
        ),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One cache shared by every web process: the login throttle and the create form's nonces must
# see what the other processes wrote. Redis when REDIS_URL is set, otherwise Django's database
# cache (the table is made by `migrate`, see vobizadmin/apps.py). There is deliberately no
# process-local option: with several gunicorn workers each would count failures on its own.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "vobizadmin",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
            # Culling (past MAX_ENTRIES) deletes entries at random, login-failure counters
            # included: leave room for far more keys than a dashboard makes.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Every authenticate() call (the dashboard's login, Django's admin login) goes through the
# throttle in this backend; it locks before a password is checked (endpoints/auth.py).
AUTHENTICATION_BACKENDS = ["endpoints.auth.ThrottledModelBackend"]
LOGIN_URL = "login"
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=15 * 60)
LOGIN_REDIRECT_URL = "endpoints:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production serves collected, hashed files (collectstatic at image build); local runs and
# tests serve straight from static/.
STATIC_MANIFEST = env.bool("DJANGO_STATIC_MANIFEST", default=not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST

# Sessions: a support tool on shared desks. A session ends after SESSION_IDLE_SECONDS without
# a request, SESSION_COOKIE_AGE after login in any case (both enforced on the server by
# endpoints.middleware.SessionTimeoutMiddleware), and when the browser closes.
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_AGE", default=8 * 3600)
SESSION_IDLE_SECONDS = env.int("DJANGO_SESSION_IDLE", default=30 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie; harmless
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# --- Behind the TLS proxy ---------------------------------------------------------------
# Only a peer in FORWARDED_ALLOW_IPS (addresses or networks; gunicorn reads the same variable)
# is believed about the scheme and the client address. The scheme: gunicorn sets
# wsgi.url_scheme from X-Forwarded-Proto for those peers only, so SECURE_PROXY_SSL_HEADER is
# deliberately not set (Django would read the header from any client). The client address:
# the TRUSTED_PROXY_HOPS-th entry from the right of X-Forwarded-For (each proxy appends the
# address it was connected from), and only when REMOTE_ADDR is a trusted proxy.
FORWARDED_ALLOW_IPS = env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1", "::1"])
try:
    TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network(a, strict=False) for a in FORWARDED_ALLOW_IPS]
except ValueError as error:
    raise ImproperlyConfigured(
        f"FORWARDED_ALLOW_IPS must list the proxy's addresses or networks, not '*' ({error})."
    ) from error
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=1)

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- Vobiz -------------------------------------------------------------------------------
VOBIZ_API_URL = env.str("VOBIZ_API_URL", default="https://api.vobiz.ai/api/v1").rstrip("/")
VOBIZ_AUTH_ID = env.str("VOBIZ_AUTH_ID", default="")
VOBIZ_AUTH_TOKEN = env.str("VOBIZ_AUTH_TOKEN", default="")
VOBIZ_CONNECT_TIMEOUT = env.float("VOBIZ_CONNECT_TIMEOUT", default=3.05)
VOBIZ_READ_TIMEOUT = env.float("VOBIZ_READ_TIMEOUT", default=10.0)
# GET/DELETE retries on 429/502/503/504; total wait for Retry-After is capped.
VOBIZ_MAX_RETRIES = env.int("VOBIZ_MAX_RETRIES", default=3)
VOBIZ_MAX_RETRY_WAIT = env.float("VOBIZ_MAX_RETRY_WAIT", default=10.0)
VOBIZ_SYNC_CONCURRENCY = env.int("VOBIZ_SYNC_CONCURRENCY", default=4)
# Where devices register (docs/vobiz-api.md, "Registration and clients"): the SIP settings
# card shows it, not the host of an endpoint's sip_uri.
VOBIZ_SIP_DOMAIN = env.str("VOBIZ_SIP_DOMAIN", default="sip.vobiz.ai")
if not DEBUG and (not VOBIZ_AUTH_ID or not VOBIZ_AUTH_TOKEN):
    raise ImproperlyConfigured(
        "VOBIZ_AUTH_ID and VOBIZ_AUTH_TOKEN must be set in production (DJANGO_DEBUG off)."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_vobiz_url = urlsplit(VOBIZ_API_URL)
if not DEBUG and not (
    _vobiz_url.scheme == "https"
    or (_vobiz_url.scheme == "http" and _is_loopback(_vobiz_url.hostname or ""))
):
    # The token travels in a header on every call: plain HTTP only to this machine (the sandbox).
    raise ImproperlyConfigured(
        "VOBIZ_API_URL must be https:// in production (http:// only for a loopback address)."
    )
# With no credentials in a local run, `make run` starts the sandbox and passes its URL and
# demo credentials in the environment; the dashboard itself never imports the sandbox.

# --- background work ---------------------------------------------------------------------
# Django's task framework (the django-tasks backport). The queue lives in the database and a
# worker is `manage.py db_worker`; another backend (RQ on Redis, Celery) is a settings change
# only: TASKS_BACKEND=dotted.path.to.Backend. "immediate" runs tasks inside the request (the
# test suite's default; never for production: a request would wait for a whole sync).
_TASK_BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
    # RQ on Redis: `pip install django-tasks-rq`; a worker is
    # `manage.py rqworker default --job-class django_tasks_rq.Job`.
    "rq": "django_tasks_rq.RQBackend",
}
_task_backend = env.str("TASKS_BACKEND", default="database")
TASKS = {"default": {"BACKEND": _TASK_BACKENDS.get(_task_backend, _task_backend),
                     "QUEUES": ["default"]}}
if _task_backend == "rq":
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    RQ_QUEUES = {"default": {"URL": REDIS_URL or "redis://127.0.0.1:6379/0"}}
# A sync every this many seconds, kept scheduled by the workers (endpoints.periodic).
VOBIZ_SYNC_INTERVAL = env.int("VOBIZ_SYNC_INTERVAL", default=60)
PERIODIC_TICK_SECONDS = env.float("PERIODIC_TICK_SECONDS", default=15)
# Queued work no worker has picked up for this long: the dashboard says no worker runs.
WORKER_MISSING_SECONDS = env.int("WORKER_MISSING_SECONDS", default=30)
# Bulk jobs: endpoints in flight at once per job; a runner silent this long is presumed dead
# and another carries on; this many failures in a row pause the job; a bulk reset's
# passwords are kept (encrypted) this long for their one download.
JOB_CONCURRENCY = env.int("JOB_CONCURRENCY", default=4)
JOB_STALE_SECONDS = env.int("JOB_STALE_SECONDS", default=60)
JOB_FAILURE_LIMIT = env.int("JOB_FAILURE_LIMIT", default=20)
JOB_CREDENTIALS_SECONDS = env.int("JOB_CREDENTIALS_SECONDS", default=3600)
# A view-once setup link (one new endpoint's settings and password) expires after this long.
CREDENTIAL_LINK_HOURS = env.int("CREDENTIAL_LINK_HOURS", default=72)
# Registration history (endpoints.history): recorded unless switched off, kept this long,
# pruned by the periodic task.
REGISTRATION_HISTORY = env.bool("REGISTRATION_HISTORY", default=True)
REGISTRATION_HISTORY_DAYS = env.int("REGISTRATION_HISTORY_DAYS", default=90)

# Error pages and error reports hide what views and services mark sensitive (SIP passwords)
# in DEBUG too, not only in production.
DEFAULT_EXCEPTION_REPORTER_FILTER = "endpoints.debug.AlwaysSafeExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        # urllib3 logs full URLs at DEBUG; our client logs its own safe lines instead.
        "urllib3": {"level": "WARNING"},
    },
}
