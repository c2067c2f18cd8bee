"""The rotation end to end through Django's real LoginView and a
login_required page, on real stores: the `cache` engine on Redis
(127.0.0.1:6379, Django's RedisCache) and on the file cache (FileBasedCache),
the `db` engine on the run's database (SQLite; PostgreSQL or MariaDB when
runtests.py runs with KEYROLL_TEST_DB=postgres|mysql).

The same scenario twice, keyroll's engine and Django's own (the control):

1. stock Django (its engine and middleware) under key A: anonymous visitors
   store data, users log in through LoginView, and one more user logs in
   whose password is then changed elsewhere;
2. the keys become {B, fallback A}; each session visits once, with the engine
   under test, a view that reads only request.session or nothing at all;
3. stock Django with B alone: each visitor's data (a view reading the
   session) and each login (the login_required page) is counted.

Each run prints one `rotation:` line with its counts. A server not answering
prints `SKIPPED: …` and skips, unless KEYROLL_REQUIRE_SERVICES=1 (then fails).
"""

import os
import socket
import unittest

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection
from django.test import Client, TransactionTestCase

A = "key-A-" + "a" * 44
B = "key-B-" + "b" * 44
N = 4  # anonymous visitors, and users who log in
OURS = "keyroll.django.sessions."
STOCK = "django.contrib.sessions.backends."
STOCK_MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.startswith("keyroll.")]


COUNTS = []  # one `rotation:` line per scenario run, printed at the end


def tearDownModule():
    print("\n" + "\n".join(sorted(COUNTS)), flush=True)


def service_or_skip(what, host, port):
    """Skips (or, with KEYROLL_REQUIRE_SERVICES=1, fails) when nothing answers."""
    try:
        socket.create_connection((host, port), timeout=2).close()
        return
    except OSError as e:
        reason = "%s on %s:%d is not answering (%s)" % (what, host, port, e)
    if os.environ.get("KEYROLL_REQUIRE_SERVICES") == "1":
        raise AssertionError(reason + " and KEYROLL_REQUIRE_SERVICES=1")
    print("SKIPPED: " + reason, flush=True)
    raise unittest.SkipTest(reason)


class RealRotation(TransactionTestCase):
    engine = None  # "db" or "cache"
    cache_alias = "default"
    store = None  # what the counts line calls the store

    def phase(self, ours, primary, fallbacks=()):
        return self.settings(
            SESSION_ENGINE=(OURS if ours else STOCK) + self.engine,
            MIDDLEWARE=settings.MIDDLEWARE if ours else STOCK_MIDDLEWARE,
            SESSION_CACHE_ALIAS=self.cache_alias,
            SECRET_KEY=primary,
            SECRET_KEY_FALLBACKS=list(fallbacks),
        )

    @staticmethod
    def later(client):
        """The same browser (its cookies) in a new Client: a Client keeps the
        middleware (and so the session engine) of its first request."""
        c = Client()
        c.cookies = client.cookies
        return c

    def log_in(self, username, password):
        c = Client()
        self.assertEqual(c.get("/accounts/login/").status_code, 200)
        r = c.post("/accounts/login/", {"username": username, "password": password})
        self.assertEqual((r.status_code, r["Location"]), (302, "/private/"), "LoginView logged in")
        return c

    def logged_in_as(self, client):
        r = client.get("/private/")
        if r.status_code == 302:
            self.assertTrue(r["Location"].startswith(settings.LOGIN_URL))
            return None
        self.assertEqual(r.status_code, 200)
        return r.content.decode().removeprefix("hello ")

    def rotate(self, ours):
        """Returns (anonymous sessions kept, logins kept, changed-password logins revived)."""
        users = {"user%d" % i: "pw-%d" % i for i in range(N)}
        for u, p in users.items():
            get_user_model().objects.create_user(u, password=p)
        get_user_model().objects.create_user("moved", password="pw-moved")
        with self.phase(False, A):
            anon = []
            for i in range(N):
                c = Client()
                for _ in range(i + 1):
                    c.get("/remember/")
                self.assertEqual(c.get("/peek/").json()["n"], i + 1)
                anon.append(c)
            logins = {u: self.log_in(u, p) for u, p in users.items()}
            for u, c in logins.items():
                self.assertEqual(self.logged_in_as(c), u)
            moved = self.log_in("moved", "pw-moved")
        user = get_user_model().objects.get(username="moved")
        user.set_password("changed-elsewhere")
        user.save()
        anon, moved = [self.later(c) for c in anon], self.later(moved)
        logins = {u: self.later(c) for u, c in logins.items()}
        with self.phase(ours, B, [A]):
            for i, c in enumerate(anon + list(logins.values()) + [moved]):
                # Alternately a view that reads only the session, and one that touches nothing.
                self.assertEqual(c.get("/peek/" if i % 2 else "/plain/").status_code, 200)
        anon, moved = [self.later(c) for c in anon], self.later(moved)
        logins = {u: self.later(c) for u, c in logins.items()}
        with self.phase(False, B):
            kept_anon = sum(c.get("/peek/").json()["n"] == i + 1 for i, c in enumerate(anon))
            kept_logins = sum(self.logged_in_as(c) == u for u, c in logins.items())
            revived = int(self.logged_in_as(moved) is not None)
        COUNTS.append(
            "rotation: %s engine on %s, %s: anonymous kept %d/%d, logins kept %d/%d, changed-password revived %d/1"
            % (self.engine, self.store, "keyroll" if ours else "stock Django", kept_anon, N, kept_logins, N, revived)
        )
        return kept_anon, kept_logins, revived

    def test_keyroll_keeps_every_session_and_revives_no_changed_password(self):
        if self.engine is None:
            return
        self.assertEqual(self.rotate(ours=True), (N, N, 0))

    def test_stock_django_loses_the_logins(self):
        if self.engine is None:
            return
        kept_anon, kept_logins, revived = self.rotate(ours=False)
        self.assertEqual((kept_logins, revived), (0, 0))
        # The cache engine stores an unsigned dict: its data survives, its login hash does not.
        self.assertEqual(kept_anon, N if self.engine == "cache" else 0)


class DbStore(RealRotation):
    engine = "db"

    @property
    def store(self):
        if connection.vendor == "mysql":
            return "MariaDB" if connection.mysql_is_mariadb else "MySQL"
        return {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(connection.vendor, connection.vendor)

    def test_the_sessions_are_in_the_database(self):
        from django.contrib.sessions.models import Session

        with self.phase(True, A):
            c = Client()
            c.get("/remember/")
        key = c.cookies[settings.SESSION_COOKIE_NAME].value
        self.assertTrue(Session.objects.filter(session_key=key).exists())


class RedisCacheStore(RealRotation):
    engine = "cache"
    cache_alias = "redis"
    store = "Redis (RedisCache)"

    def setUp(self):
        service_or_skip("Redis", "127.0.0.1", 6379)
        try:
            import redis
        except ImportError as e:
            if os.environ.get("KEYROLL_REQUIRE_SERVICES") == "1":
                raise
            print("SKIPPED: the redis Python package is not installed (%s)" % e, flush=True)
            raise unittest.SkipTest("no redis package")
        self.redis = redis.Redis.from_url(settings.CACHES["redis"]["LOCATION"])
        self.prefix = settings.CACHES["redis"]["KEY_PREFIX"]
        self.addCleanup(self.delete_own_keys)
        super().setUp()

    def own_keys(self):
        return list(self.redis.scan_iter(match=self.prefix + ":*", count=1000))

    def delete_own_keys(self):
        keys = self.own_keys()
        if keys:
            self.redis.delete(*keys)
        self.redis.close()

    def test_the_sessions_are_in_redis(self):
        with self.phase(True, A):
            Client().get("/remember/")
        self.assertEqual(len(self.own_keys()), 1)


class FileCacheStore(RealRotation):
    engine = "cache"
    cache_alias = "files"
    store = "the file cache (FileBasedCache)"

    def setUp(self):
        caches["files"].clear()
        self.addCleanup(caches["files"].clear)
        super().setUp()

    def test_the_sessions_are_files(self):
        with self.phase(True, A):
            Client().get("/remember/")
        self.assertEqual(len(os.listdir(settings.CACHES["files"]["LOCATION"])), 1)
