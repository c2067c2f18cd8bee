"""Settings of the keyroll side-by-side Django app (tests only).

Sessions live in the cookie itself (``signed_cookies`` backend), so there is
no database. Keys come from the environment:

- ``SECRET_KEY``;
- ``SECRET_KEY_FALLBACKS``: a JSON list of strings (default none).
"""

import json
import os

SECRET_KEY = os.environ["SECRET_KEY"]
SECRET_KEY_FALLBACKS = json.loads(os.environ.get("SECRET_KEY_FALLBACKS") or "[]")
if not isinstance(SECRET_KEY_FALLBACKS, list) or not all(isinstance(k, str) for k in SECRET_KEY_FALLBACKS):
    raise RuntimeError("SECRET_KEY_FALLBACKS must be a JSON list of strings")

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = []
DATABASES = {}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_SECURE = False
USE_TZ = True
TIME_ZONE = "UTC"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    # A cookie that does not verify is a fresh session; Django says nothing
    # about it (signed_cookies.load swallows the error), errors still show.
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
}
