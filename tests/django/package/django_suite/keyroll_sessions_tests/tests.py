"""Django's own session test suite (tests/sessions_tests/tests.py from the
Django sdist) run against keyroll's engines: each of Django's test classes,
subclassed with keyroll's SessionStore and engine name. Only these
subclasses are collected (Django's classes are reached through the module)."""

from django.test import override_settings
from sessions_tests import models as dj_models
from sessions_tests import tests as dj

from keyroll.django.sessions import cache, cached_db, db, file, signed_cookies


class KeyrollCustomDatabaseSession(db.SessionStore, dj_models.SessionStore):
    """keyroll's db engine over the suite's custom session model."""


KeyrollCustomDatabaseSession.__qualname__ = "SessionStore"  # the key salt derives from it

DB = "keyroll.django.sessions.db"


class DatabaseSessionTests(dj.DatabaseSessionTests):
    backend = db.SessionStore
    session_engine = DB


class DatabaseSessionWithTimeZoneTests(dj.DatabaseSessionWithTimeZoneTests):
    backend = db.SessionStore
    session_engine = DB


class CustomDatabaseSessionTests(dj.CustomDatabaseSessionTests):
    backend = KeyrollCustomDatabaseSession
    session_engine = "keyroll_sessions_tests.custom_engine"


class CacheDBSessionTests(dj.CacheDBSessionTests):
    backend = cached_db.SessionStore


class CacheDBSessionWithTimeZoneTests(dj.CacheDBSessionWithTimeZoneTests):
    backend = cached_db.SessionStore


def _own_storage_path():
    # The suite resets the storage path the engine class caches; keep
    # Django's class from lending ours its cached path.
    if "_storage_path" in dj.FileSession.__dict__:
        del dj.FileSession._storage_path


class FileSessionTests(dj.FileSessionTests):
    backend = file.SessionStore

    def setUp(self):
        _own_storage_path()
        super().setUp()


class FileSessionPathLibTests(dj.FileSessionPathLibTests):
    backend = file.SessionStore

    def setUp(self):
        _own_storage_path()
        super().setUp()


class CacheSessionTests(dj.CacheSessionTests):
    backend = cache.SessionStore


class CookieSessionTests(dj.CookieSessionTests):
    backend = signed_cookies.SessionStore


@override_settings(SESSION_ENGINE=DB)
class SessionMiddlewareTests(dj.SessionMiddlewareTests):
    pass
