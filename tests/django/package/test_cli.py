"""The `keyroll` command line that `pip install` puts beside the venv's python
(the `keyroll = "keyroll._cli:main"` script): the same command as the
`keyroll-cli` crate's binary, run on a real Django session table."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata

from django.test import SimpleTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
KEYROLL = os.path.join(os.path.dirname(sys.executable), "keyroll")
A = "key-A-" + "a" * 44
B = "key-B-" + "b" * 44
DJANGO_ALPHABET = set("abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)")

# Run in a child python: a file SQLite database with Django's tables (migrate),
# sessions made by Django's own db engine under A (logins through the login
# view, anonymous ones with data), then BULK copies of one of them.
MAKE_TABLE = r"""
import os, sys
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client, override_settings

call_command("migrate", verbosity=0)
logins, anonymous, bulk = (int(x) for x in sys.argv[1:4])
stock = [m for m in settings.MIDDLEWARE if not m.startswith("keyroll.")]
with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.db", MIDDLEWARE=stock,
                       SECRET_KEY=sys.argv[4], SECRET_KEY_FALLBACKS=[]):
    for i in range(logins):
        get_user_model().objects.create_user("u%d" % i, password="pw")
        assert Client().post("/login/", {"u": "u%d" % i, "p": "pw"}).status_code == 200
    for i in range(anonymous):
        assert Client().get("/remember/").status_code == 200
one = Session.objects.first()
Session.objects.bulk_create(
    [Session(session_key="bulk%08d" % i, session_data=one.session_data, expire_date=one.expire_date)
     for i in range(bulk)], batch_size=5000)
print(Session.objects.count())
"""


def make_table(path, logins, anonymous, bulk=0):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="kr_project.settings", KEYROLL_TEST_SQLITE_FILE=path)
    out = subprocess.run(
        [sys.executable, "-c", MAKE_TABLE, str(logins), str(anonymous), str(bulk), A],
        cwd=HERE, env=env, capture_output=True, text=True, check=True,
    )
    return int(out.stdout.strip())


def rotating_env():
    env = {k: v for k, v in os.environ.items() if k not in ("KEYROLL_KEYRING", "DATABASE_URL")}
    env.update(SECRET_KEY=B, SECRET_KEY_FALLBACKS=json.dumps([A]))
    return env


def keyroll(*args, env=None, **kw):
    return subprocess.run([KEYROLL, *args], env=env or rotating_env(), capture_output=True, text=True, **kw)


class InstalledCommand(SimpleTestCase):
    def setUp(self):
        self.assertTrue(os.access(KEYROLL, os.X_OK), "pip installed no `keyroll` script at " + KEYROLL)
        self.dir = tempfile.TemporaryDirectory(prefix="keyroll-cli-")
        self.addCleanup(self.dir.cleanup)

    def test_version(self):
        r = keyroll("--version")
        self.assertEqual((r.returncode, r.stdout), (0, "keyroll %s\n" % metadata.version("keyroll")))

    def test_keygen(self):
        r = keyroll("keygen")
        self.assertEqual(r.returncode, 0, r.stderr)
        secret = r.stdout.rstrip("\n")
        self.assertEqual(len(secret), 50)
        self.assertLessEqual(set(secret), DJANGO_ALPHABET)
        self.assertNotEqual(keyroll("keygen").stdout, r.stdout)
        short = keyroll("keygen", "--length", "8")
        self.assertEqual((short.returncode, len(short.stdout)), (0, 9))
        self.assertIn("W009", short.stderr)

    def test_usage_errors_exit_2(self):
        for args in (["keygen", "--length", "0"], ["no-such-command"], []):
            r = keyroll(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertEqual(r.stdout, "")
            self.assertTrue(r.stderr.strip(), "a usage error says why")
        self.assertEqual(keyroll("census", "--database", "sqlite:///" + self.dir.name + "/none.db").returncode, 2)

    def test_census_and_resign_on_a_django_table(self):
        path = os.path.join(self.dir.name, "db.sqlite3")
        self.assertEqual(make_table(path, logins=2, anonymous=3), 5)
        url = "sqlite:///" + path
        census = keyroll("census", "--database", url, "--django", "--json")
        self.assertEqual(census.returncode, 0, census.stderr)
        c = json.loads(census.stdout)
        self.assertEqual(
            [(k["role"], k["rows"]) for k in c["keys"]], [("fallback", 5)], "A signed every row: " + census.stdout
        )
        self.assertEqual((c["unverifiable"], c["expired"]), (0, 0))
        resign = keyroll("resign", "--database", url, "--django")
        self.assertEqual(resign.returncode, 0, resign.stderr)
        self.assertTrue(resign.stdout.startswith("resigned 5, already-current 0, "), resign.stdout)
        self.assertIn("auth-rehashed 2", resign.stdout)
        c = json.loads(keyroll("census", "--database", url, "--django", "--json").stdout)
        self.assertEqual([(k["role"], k["rows"]) for k in c["keys"]], [("primary", 5)])
        # Without the old key every row is unverifiable: census warns, and says so (exit 0).
        only_a = dict(rotating_env(), SECRET_KEY=A, SECRET_KEY_FALLBACKS="[]")
        old = json.loads(keyroll("census", "--database", url, "--django", "--json", env=only_a).stdout)
        self.assertEqual(old["unverifiable"], 5)

    def test_a_closed_pipe_ends_the_command_quietly(self):
        tokens = os.path.join(self.dir.name, "tokens")
        with open(tokens, "w") as f:
            f.write("hello:bad\n" * 200000)
        r = subprocess.run(
            ["bash", "-c", '"$0" verify < "$1" | head -n 1; exit "${PIPESTATUS[0]}"', KEYROLL, tokens],
            env=rotating_env(), capture_output=True, text=True,
        )
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "bad\tsignature\n", ""))

    def test_ctrl_c_stops_resign_with_130(self):
        path = os.path.join(self.dir.name, "big.sqlite3")
        total = make_table(path, logins=0, anonymous=1, bulk=40000)
        child = subprocess.Popen(
            [KEYROLL, "resign", "--database", "sqlite:///" + path, "--django", "--batch", "5"],
            env=rotating_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        child.stderr.readline()  # `primary …, fallback …`: it has started
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        self.assertEqual(child.returncode, 130, out + err)
        self.assertTrue(out.startswith("interrupted: resigned "), out)
        self.assertIn("Run the same command again", err)
        done = int(out.split(",")[0].rsplit(" ", 1)[1])
        self.assertTrue(0 < done < total, out)
        again = keyroll("resign", "--database", "sqlite:///" + path, "--django")
        self.assertEqual(again.returncode, 0, again.stderr)
        resigned, current = (int(again.stdout.split(", ")[i].rsplit(" ", 1)[1]) for i in (0, 1))
        self.assertEqual(resigned + current, total, again.stdout)
        self.assertGreaterEqual(current, done, "what was counted as written was written")
