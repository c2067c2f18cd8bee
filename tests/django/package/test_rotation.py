"""The rotation scenario per session engine, against real Django: sessions
made under key A; the ring rotated to {B primary, A fallback}; each session
visits a view that touches neither request.user nor request.session; then A
is dropped. With keyroll's engines every session is still there and still
logged in; with Django's own engines (the control) they are lost."""

import os
import tempfile

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client, TransactionTestCase
from importlib import import_module

import keyroll

A = "key-A-" + "a" * 44
B = "key-B-" + "b" * 44
USERS = {"alice": "pw-alice", "bob": "pw-bob"}
OURS = "keyroll.django.sessions."
STOCK = "django.contrib.sessions.backends."


class Scenario(TransactionTestCase):
    name = None  # engine module name: db, cached_db, cache, file, signed_cookies

    def setUp(self):
        cache.clear()
        for u, p in USERS.items():
            get_user_model().objects.create_user(u, password=p)

    def keys(self, engine, primary, fallbacks=()):
        return self.settings(SESSION_ENGINE=engine, SECRET_KEY=primary, SECRET_KEY_FALLBACKS=list(fallbacks))

    def rotate(self, engine):
        """Returns (anonymous sessions kept, logged-in sessions kept)."""
        anon, users = [Client(), Client()], {}
        with self.keys(engine, A):
            for c in anon:
                self.assertEqual(c.get("/remember/").status_code, 200)
            for u, p in USERS.items():
                c = Client()
                self.assertEqual(c.post("/login/", {"u": u, "p": p}).status_code, 200)
                users[u] = c
        with self.keys(engine, B, [A]):
            for c in anon + list(users.values()):
                self.assertEqual(c.get("/plain/").status_code, 200)
        with self.keys(engine, B):
            kept_anon = sum(c.get("/whoami/").json()["n"] == 1 for c in anon)
            kept_users = sum(c.get("/whoami/").json()["user"] == u for u, c in users.items())
        return kept_anon, kept_users

    def test_every_session_survives_the_rotation(self):
        if self.name is None:
            return
        self.assertEqual(self.rotate(OURS + self.name), (2, 2))

    def test_djangos_own_engine_loses_them(self):
        if self.name is None:
            return
        kept_anon, kept_users = self.rotate(STOCK + self.name)
        self.assertEqual(kept_users, 0, "the control: Django's engine logs users out")
        if self.name not in ("cache", "cached_db"):  # an unsigned cached dict survives there
            self.assertEqual(kept_anon, 0)

    def stored_login_hash(self, engine, client, *keys):
        """The _auth_user_hash the store holds for a client's session."""
        value = client.cookies[settings.SESSION_COOKIE_NAME].value
        with self.keys(engine, *keys):
            store = import_module(engine).SessionStore(value)
            return store.load().get("_auth_user_hash")

    def test_a_password_changed_elsewhere_is_never_revived(self):
        if self.name is None:
            return
        engine = OURS + self.name
        c = Client()
        with self.keys(engine, A):
            c.post("/login/", {"u": "alice", "p": USERS["alice"]})
        before = self.stored_login_hash(engine, c, A)
        user = get_user_model().objects.get(username="alice")
        user.set_password("changed-elsewhere")
        user.save()
        with self.keys(engine, B, [A]):
            c.get("/plain/")
        self.assertEqual(self.stored_login_hash(engine, c, B, [A]), before, "the hash was not re-made")
        with self.keys(engine, B, [A]):
            self.assertIsNone(c.get("/whoami/").json()["user"])


class ServerSide(Scenario):
    """Engines with a store: a logout racing a stale read is not undone."""

    def test_a_logout_during_a_stale_read_is_not_undone(self):
        if self.name is None:
            return
        engine = OURS + self.name
        module = import_module(engine)
        c = Client()
        with self.keys(engine, A):
            c.post("/login/", {"u": "alice", "p": USERS["alice"]})
        key = c.cookies[settings.SESSION_COOKIE_NAME].value

        class Racing(module.SessionStore):
            def _keyroll_remade_login_hash(self, data, now=None):
                remade = super()._keyroll_remade_login_hash(data, now)
                module.SessionStore(self.session_key).flush()  # the logout lands now
                return remade

        Racing.__qualname__ = "SessionStore"  # the key salt derives from it
        with self.keys(engine, B, [A]):
            self.assertEqual(Racing(key).load().get("_auth_user_id") is not None, True)
            self.assertFalse(module.SessionStore().exists(key), "the logout was undone")
            if self.name == "cached_db":
                self.assertIsNone(cache.get(module.SessionStore.cache_key_prefix + key))
        # Without the race the same read writes (so the check above can fail).
        c2 = Client()
        with self.keys(engine, A):
            c2.post("/login/", {"u": "bob", "p": USERS["bob"]})
        with self.keys(engine, B, [A]):
            c2.get("/plain/")
        with self.keys(engine, B):
            self.assertEqual(c2.get("/whoami/").json()["user"], "bob")


class DbEngine(ServerSide):
    name = "db"

    def test_expiry_is_kept_and_the_row_resigned(self):
        from django.contrib.sessions.models import Session

        c = Client()
        with self.keys(OURS + "db", A):
            c.get("/remember/")
        key = c.cookies[settings.SESSION_COOKIE_NAME].value
        before = Session.objects.get(session_key=key)
        with self.keys(OURS + "db", B, [A]):
            c.get("/plain/")
        after = Session.objects.get(session_key=key)
        self.assertEqual(after.expire_date, before.expire_date)
        self.assertNotEqual(after.session_data, before.session_data)
        v = keyroll.Ring.from_django(B).loads_raw(after.session_data, keyroll.DB_SESSION_SALT)
        self.assertEqual(v.role, "primary")
        # Its timestamp is the original one.
        self.assertEqual(after.session_data.split(":")[1], before.session_data.split(":")[1])


class CachedDbEngine(ServerSide):
    name = "cached_db"


class CacheEngine(ServerSide):
    name = "cache"


class FileEngine(ServerSide):
    name = "file"

    def test_the_files_modification_time_is_kept(self):
        c = Client()
        with self.keys(OURS + "file", A):
            c.get("/remember/")
        key = c.cookies[settings.SESSION_COOKIE_NAME].value
        path = os.path.join(settings.SESSION_FILE_PATH, settings.SESSION_COOKIE_NAME + key)
        os.utime(path, (1, os.stat(path).st_mtime - 100))
        before = os.stat(path).st_mtime_ns
        with open(path) as f:
            old = f.read()
        with self.keys(OURS + "file", B, [A]):
            c.get("/plain/")
        with open(path) as f:
            self.assertNotEqual(f.read(), old)
        self.assertEqual(os.stat(path).st_mtime_ns, before)


class SignedCookiesEngine(Scenario):
    name = "signed_cookies"

    def test_the_cookie_is_reissued_with_its_timestamp_and_attributes(self):
        c = Client()
        engine = OURS + "signed_cookies"
        with self.keys(engine, A):
            c.get("/remember/")
        old = c.cookies[settings.SESSION_COOKIE_NAME].value
        with self.settings(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_SECURE=True):
            with self.keys(engine, B, [A]):
                r = c.get("/plain/")
        morsel = r.cookies[settings.SESSION_COOKIE_NAME]
        self.assertEqual(morsel.value.split(":")[1], old.split(":")[1], "original timestamp")
        self.assertEqual(morsel["samesite"], "Strict")
        self.assertTrue(morsel["secure"])
        self.assertTrue(morsel["httponly"])
        self.assertLessEqual(int(morsel["max-age"]), settings.SESSION_COOKIE_AGE)
        self.assertNotIn("Cookie", r.get("Vary", ""), "the view did not use the session")
        v = keyroll.Ring.from_django(B).loads_raw(morsel.value, keyroll.COOKIE_SESSION_SALT)
        self.assertEqual(v.role, "primary")


def write_private(path, text):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class RingFileFollowed(TransactionTestCase):
    """KEYROLL_RING: a change to the file is picked up without a restart."""

    def test_a_rotation_in_the_ring_file_reaches_running_workers(self):
        get_user_model().objects.create_user("alice", password=USERS["alice"])
        path = os.path.join(tempfile.mkdtemp(), "ring.toml")
        write_private(path, '[[keys]]\nrole = "primary"\nsecret = "%s"\n' % A)
        engine = OURS + "db"
        c = Client()
        with self.settings(KEYROLL_RING=path, KEYROLL_RING_CHECK_INTERVAL=0, SESSION_ENGINE=engine):
            c.post("/login/", {"u": "alice", "p": USERS["alice"]})
            self.assertEqual(settings.SECRET_KEY, A)
            write_private(
                path,
                '[[keys]]\nrole = "primary"\nsecret = "%s"\n\n[[keys]]\nrole = "fallback"\nsecret = "%s"\n'
                'retire_after = "2999-01-01T00:00:00Z"\n' % (B, A),
            )
            c.get("/plain/")
            self.assertEqual((settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS), (B, [A]))
            write_private(
                path,
                '[[keys]]\nrole = "primary"\nsecret = "%s"\n\n[[keys]]\nrole = "fallback"\nsecret = "%s"\n'
                'retire_after = "2001-01-01T00:00:00Z"\n' % (B, A),
            )
            self.assertEqual(c.get("/whoami/").json()["user"], "alice")
            self.assertEqual(settings.SECRET_KEY_FALLBACKS, [], "a retired fallback left settings")


    def test_a_ring_file_set_at_run_time_is_followed(self):
        from keyroll.django.ring import current_ring

        path = os.path.join(tempfile.mkdtemp(), "ring.toml")
        write_private(path, '[[keys]]\nrole = "primary"\nsecret = "%s"\n' % B)
        with self.settings(SECRET_KEY=A):
            self.assertEqual(current_ring().keys()[0][0], keyroll.key_id(A))  # no KEYROLL_RING: remembered
            settings.KEYROLL_RING = path
            self.assertEqual(current_ring().keys()[0][0], keyroll.key_id(B))
