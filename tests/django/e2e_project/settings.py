"""Settings of the keyroll end-to-end Django project (tests only).

Everything that varies comes from the environment:

- ``KEYROLL_E2E_DB``: ``sqlite:/abs/path.db``, ``postgres:<dbname>`` or
  ``mysql:<dbname>`` (MySQL/MariaDB on 127.0.0.1:3306, user ``root``, no password;
  ``KEYROLL_E2E_MYSQLHOST``/``KEYROLL_E2E_MYSQLPORT`` override);
  (PostgreSQL on 127.0.0.1, user ``postgres``, trust auth; ``KEYROLL_E2E_PGHOST``
  and ``KEYROLL_E2E_PGPORT`` override host and port);
- ``SECRET_KEY``; ``SECRET_KEY_FALLBACKS``: a JSON list of strings (default none).
"""

import json
import os

_db = os.environ.get("KEYROLL_E2E_DB", "")
if _db.startswith("sqlite:"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _db[len("sqlite:") :],
        }
    }
elif _db.startswith("postgres:"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _db[len("postgres:") :],
            "HOST": os.environ.get("KEYROLL_E2E_PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("KEYROLL_E2E_PGPORT", "5432"),
            "USER": "postgres",
            "PASSWORD": "",
        }
    }
elif _db.startswith("mysql:"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": _db[len("mysql:") :],
            "HOST": os.environ.get("KEYROLL_E2E_MYSQLHOST", "127.0.0.1"),
            "PORT": os.environ.get("KEYROLL_E2E_MYSQLPORT", "3306"),
            "USER": "root",
            "PASSWORD": "",
        }
    }
else:
    raise RuntimeError("KEYROLL_E2E_DB must be sqlite:/path.db, postgres:<dbname> or mysql:<dbname>, got %r" % _db)

SECRET_KEY = os.environ["SECRET_KEY"]
SECRET_KEY_FALLBACKS = json.loads(os.environ.get("SECRET_KEY_FALLBACKS") or "[]")
if not isinstance(SECRET_KEY_FALLBACKS, list) or not all(isinstance(k, str) for k in SECRET_KEY_FALLBACKS):
    raise RuntimeError("SECRET_KEY_FALLBACKS must be a JSON list of strings")

DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.db"
USE_TZ = True
TIME_ZONE = "UTC"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    # Django logs "Session data corrupted" for each session it cannot verify;
    # e2e.py check reports those itself (``verifies``), one line per session is noise.
    "loggers": {"django.security.SuspiciousSession": {"handlers": ["null"], "propagate": False}},
}
