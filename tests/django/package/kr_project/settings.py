"""Settings of the package tests' project (keys are overridden per test).

KEYROLL_TEST_DB=postgres|mysql puts the database on the server at
127.0.0.1:5432 (user postgres) or 127.0.0.1:3306 (user root); Django's test
runner makes a database of the run's own there and drops it at the end.
KEYROLL_TEST_SQLITE_FILE=PATH: a SQLite file instead of the in-memory one
(used to make a table for the `keyroll` command line, and by the browser test).
KEYROLL_TEST_RING=PATH: keys from that ring file, followed as it changes.
"""

import os
import tempfile

SECRET_KEY = "key-A-" + "a" * 44
SECRET_KEY_FALLBACKS = []
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
USE_TZ = True
ROOT_URLCONF = "kr_project.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "keyroll.django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "keyroll.django.middleware.ResignMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
_run = "keyroll_pkg_%d" % os.getpid()
_db = os.environ.get("KEYROLL_TEST_DB", "sqlite")
if _db == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "postgres",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "TEST": {"NAME": "test_" + _run},
        }
    }
elif _db == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
            "TEST": {"NAME": "test_" + _run, "CHARSET": "utf8mb4"},
        }
    }
elif os.environ.get("KEYROLL_TEST_SQLITE_FILE"):
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["KEYROLL_TEST_SQLITE_FILE"]}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Used by the tests on real stores (test_real_stores), which skip when
    # Redis is not answering and delete their own keys (under this prefix).
    "redis": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "KEY_PREFIX": "keyroll-pkg-test-%s" % _run,
        "TIMEOUT": 600,
    },
    "files": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": tempfile.mkdtemp(prefix="keyroll-filecache-"),
    },
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
if os.environ.get("KEYROLL_TEST_RING"):  # the real-browser test (tests/browser/django.sh)
    from keyroll.django import secret_key_settings

    KEYROLL_RING = os.environ["KEYROLL_TEST_RING"]
    KEYROLL_RING_CHECK_INTERVAL = 0
    SECRET_KEY, SECRET_KEY_FALLBACKS = secret_key_settings(KEYROLL_RING)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/private/"
SESSION_ENGINE = "keyroll.django.sessions.db"
SESSION_FILE_PATH = tempfile.mkdtemp(prefix="keyroll-sessions-")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
