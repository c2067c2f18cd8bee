"""manage.py keyroll census / resign / doctor against real Django."""

import tempfile
from io import StringIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client, TransactionTestCase

from test_rotation import A, B, OURS, STOCK, USERS


def run(*args):
    out = StringIO()
    call_command("keyroll", *args, stdout=out)
    return out.getvalue()


class CensusAndResign(TransactionTestCase):
    def setUp(self):
        for u, p in USERS.items():
            get_user_model().objects.create_user(u, password=p)

    def bulk(self, engine):
        clients = [Client() for _ in range(3)]
        with self.settings(SESSION_ENGINE=engine, SECRET_KEY=A, SECRET_KEY_FALLBACKS=[]):
            clients[0].get("/remember/")
            clients[1].get("/remember/")
            clients[2].post("/login/", {"u": "alice", "p": USERS["alice"]})
        with self.settings(SESSION_ENGINE=engine, SECRET_KEY=B, SECRET_KEY_FALLBACKS=[A]):
            census = run("census")
            self.assertIn("stale sessions: 3", census)
            self.assertIn("resigned 2, auth-rehashed 1, already-current 0", run("resign"))
            self.assertIn("stale sessions: 0", run("census"))
            self.assertIn("resigned 0, auth-rehashed 0, already-current 3", run("resign"))
        with self.settings(SESSION_ENGINE=engine, SECRET_KEY=B, SECRET_KEY_FALLBACKS=[]):
            self.assertEqual([c.get("/whoami/").json()["n"] for c in clients[:2]], [1, 1])
            self.assertEqual(clients[2].get("/whoami/").json()["user"], "alice")

    def test_db(self):
        self.bulk(OURS + "db")

    def test_a_stock_engine_setting_is_served_too(self):
        self.bulk(STOCK + "db")

    def test_cached_db(self):
        self.bulk(OURS + "cached_db")

    def test_file(self):
        from keyroll.django.sessions.file import SessionStore

        def reset():
            # The engine caches its storage path on the class.
            for cls in SessionStore.__mro__:
                if "_storage_path" in cls.__dict__:
                    del cls._storage_path

        reset()
        try:
            with self.settings(SESSION_FILE_PATH=tempfile.mkdtemp()):
                self.bulk(OURS + "file")
        finally:
            reset()

    def test_engines_without_a_listing_are_refused_clearly(self):
        with self.settings(SESSION_ENGINE=OURS + "signed_cookies"):
            with self.assertRaisesMessage(CommandError, "cannot be enumerated"):
                run("census")


class Doctor(TransactionTestCase):
    def doctor(self, **overrides):
        with self.settings(**overrides):
            try:
                return 0, run("doctor")
            except CommandError as e:
                return e.returncode, str(e)

    def test_a_sound_configuration_passes(self):
        code, out = self.doctor(SECRET_KEY=B, SECRET_KEY_FALLBACKS=[A])
        self.assertEqual(code, 0, out)
        self.assertIn("PASSWORD_RESET_TIMEOUT", out)
        self.assertNotIn(A, out)

    def test_mistakes_are_errors(self):
        for fallbacks in ("a-string-not-a-list", [B], [A, A, B]):
            code, _ = self.doctor(SECRET_KEY=B, SECRET_KEY_FALLBACKS=fallbacks)
            self.assertEqual(code, 1, fallbacks)

    def test_warnings_do_not_fail(self):
        code, out = self.doctor(SECRET_KEY="short", SECRET_KEY_FALLBACKS=[A, A], SESSION_ENGINE=STOCK + "db")
        self.assertEqual(code, 0, out)
        self.assertIn("short or simple", out)
        self.assertIn("listed twice", out)
        self.assertIn("is not keyroll's", out)
