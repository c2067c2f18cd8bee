"""Drive the keyroll end-to-end Django project (real sessions, real logins).

Run with the pinned venv's python (tests/django/setup-venv.sh 5.2). Settings
come from the environment (see settings.py): KEYROLL_E2E_DB, SECRET_KEY,
SECRET_KEY_FALLBACKS. Every subcommand prints one JSON object on stdout;
diagnostics go to stderr.

    e2e.py setup --state FILE [--users N] [--second N] [--anon N] [--expired N] [--outsider N]
        migrate; create users; log them in through django.test.Client (real
        sessions, ``N`` users get a second session); anonymous sessions with
        data (/visit); a few expired rows; a few rows signed by an outsider
        key. Writes FILE: session key -> {kind, user, data, expire_date,
        expect_login}.
    e2e.py change-password USER --state FILE
        in USER's latest session, POST /change-password (set_password + save +
        update_session_auth_hash, as Django's PasswordChangeView does): that
        session is kept (under a new key), USER's OTHER sessions are logged out.
        Updates FILE.
    e2e.py check --state FILE [--data-only]
        with the keys in the environment: load every recorded session
        (SessionStore(key).load()), then request /whoami with its cookie.
        Reports what is intact and who is logged in, and ``problems``: every
        difference from what FILE expects after a rotation without logouts.
        --data-only skips /whoami (which flushes a session whose login hash
        fails, so it changes the table).
    e2e.py createdb NAME | dropdb NAME
        PostgreSQL (127.0.0.1, user postgres, via the ``test`` database).
    e2e.py createdb-mysql NAME | dropdb-mysql NAME
        MySQL/MariaDB (127.0.0.1:3306, user root, no password).
    e2e.py ensure-deps
        installs requirements.txt (psycopg) into this python if missing.
"""

import argparse
import datetime
import importlib
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SESSION_SALT = "django.contrib.sessions.SessionStore"
OUTSIDER_KEY = "keyroll-e2e-outsider-key-not-in-any-ring-0123456789abcdef"
PG_NAME = re.compile(r"^kr_e2e_[a-z0-9_]{1,40}$")


def log(*args):
    print("e2e:", *args, file=sys.stderr, flush=True)


def ensure_module(module, requirements):
    """Install a requirements file into this interpreter unless ``module`` imports.

    Idempotent; an exclusive lock in the venv keeps concurrent runs from
    installing over each other."""
    try:
        importlib.import_module(module)
        return
    except ImportError:
        pass
    import fcntl

    with open(os.path.join(sys.prefix, ".keyroll-e2e-deps.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        importlib.invalidate_caches()
        try:
            importlib.import_module(module)
            return
        except ImportError:
            pass
        req = os.path.join(HERE, requirements)
        log("installing", req, "into", sys.prefix)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", "-r", req],
            stdout=sys.stderr,
            check=True,
        )
    importlib.invalidate_caches()
    importlib.import_module(module)


def ensure_psycopg():
    """psycopg, for PostgreSQL (requirements.txt)."""
    ensure_module("psycopg", "requirements.txt")


def ensure_mysqlclient():
    """mysqlclient, for MySQL/MariaDB (requirements-mysql.txt; it builds
    against the system's MySQL client library: Debian's
    default-libmysqlclient-dev and pkg-config)."""
    ensure_module("MySQLdb", "requirements-mysql.txt")


def mysql_admin(sql):
    ensure_mysqlclient()
    import MySQLdb

    conn = MySQLdb.connect(
        host=os.environ.get("KEYROLL_E2E_MYSQLHOST", "127.0.0.1"),
        port=int(os.environ.get("KEYROLL_E2E_MYSQLPORT", "3306")),
        user="root",
        password="",
        database="test",
        connect_timeout=5,
    )
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def pg_admin(sql):
    ensure_psycopg()
    import psycopg

    conninfo = "host=%s port=%s user=postgres dbname=test connect_timeout=5" % (
        os.environ.get("KEYROLL_E2E_PGHOST", "127.0.0.1"),
        os.environ.get("KEYROLL_E2E_PGPORT", "5432"),
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql)


def checked_pg_name(name):
    if not PG_NAME.match(name):
        sys.exit("e2e: refusing database name %r (want kr_e2e_[a-z0-9_]+)" % name)
    return name


def django_setup():
    if os.environ.get("KEYROLL_E2E_DB", "").startswith("postgres:"):
        ensure_psycopg()
    if os.environ.get("KEYROLL_E2E_DB", "").startswith("mysql:"):
        ensure_mysqlclient()
    sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
    sys.path.insert(0, HERE)
    os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
    import django

    django.setup()
    from django.db.backends.signals import connection_created

    def fast_sqlite(sender, connection, **kwargs):
        # Test data only: no fsync per session save (hundreds of commits).
        if connection.vendor == "sqlite":
            connection.cursor().execute("PRAGMA synchronous = OFF")

    connection_created.connect(fast_sqlite, weak=False)


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).isoformat() if dt is not None else None


def session_row(key):
    from django.contrib.sessions.models import Session

    return Session.objects.filter(session_key=key).first()


def loaded(key):
    from django.contrib.sessions.backends.db import SessionStore

    return SessionStore(session_key=key).load()


def note_for(i):
    """Session data of every shape: plain ASCII, unicode (BMP and astral), long
    and repetitive (so Django compresses it), JSON-looking text."""
    return [
        "plain-%d" % i,
        "h\u00e9llo \u2713 \U0001f511 #%d" % i,
        ("compress me %d " % i) * 40,
        '{"not": "json", "n": %d}' % i,
        "",
    ][i % 5]


def record(state, key, kind, user):
    row = session_row(key)
    assert row is not None, "no row for session %s" % key
    state["sessions"][key] = {
        "kind": kind,
        "user": user,
        "data": loaded(key),
        "expire_date": iso(row.expire_date),
        "expect_login": kind == "login",
    }


def client_session_key(client):
    from django.conf import settings

    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME)
    assert cookie is not None and cookie.value, "no session cookie"
    return cookie.value


def login_session(username, password, note):
    from django.test import Client

    c = Client()
    assert c.login(username=username, password=password), "login failed for %s" % username
    r = c.get("/visit", {"note": note})
    assert r.status_code == 200, r
    return client_session_key(c)


def anon_session(note, visits):
    from django.test import Client

    c = Client()
    for _ in range(visits):
        r = c.get("/visit", {"note": note})
        assert r.status_code == 200, r
    return client_session_key(c)


def password_of(username):
    return "pw-" + username


def cmd_setup(a):
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.test import override_settings
    from django.utils import timezone

    call_command("migrate", verbosity=0, interactive=False)
    state = {"sessions": {}, "users": {}}
    names = ["user%04d" % i for i in range(a.users)]
    User.objects.bulk_create(
        [User(username=n, email=n + "@example.com", password=make_password(password_of(n))) for n in names]
    )
    for u in User.objects.filter(username__in=names):
        state["users"][u.username] = u.pk

    for i, n in enumerate(names):
        record(state, login_session(n, password_of(n), note_for(i)), "login", n)
    for i, n in enumerate(names[: a.second]):
        record(state, login_session(n, password_of(n), "second " + note_for(i + 1)), "login", n)
    for i in range(a.anon):
        record(state, anon_session(note_for(i), 1 + i % 3), "anon", None)

    # Expired rows: real sessions (logged in and anonymous) whose expiry passed.
    expired = []
    for i in range(a.expired):
        if i % 2 == 0 and names:
            n = names[i % len(names)]
            expired.append((login_session(n, password_of(n), "expired"), n))
        else:
            expired.append((anon_session("expired", 1), None))
    past = timezone.now() - datetime.timedelta(hours=1)
    Session.objects.filter(session_key__in=[k for k, _ in expired]).update(expire_date=past)
    for k, n in expired:
        state["sessions"][k] = {
            "kind": "expired",
            "user": n,
            "data": None,
            "expire_date": iso(past),
            "expect_login": False,
        }

    # Rows signed by a key in no ring: already invalid before the rotation.
    with override_settings(SECRET_KEY=OUTSIDER_KEY, SECRET_KEY_FALLBACKS=[]):
        outsiders = [anon_session("outsider %d" % i, 1) for i in range(a.outsider)]
    for k in outsiders:
        row = session_row(k)
        state["sessions"][k] = {
            "kind": "outsider",
            "user": None,
            "data": None,
            "expire_date": iso(row.expire_date),
            "expect_login": False,
        }

    with open(a.state, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    kinds = {}
    for s in state["sessions"].values():
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    print(
        json.dumps(
            {
                "users": len(names),
                "sessions": kinds,
                "rows": Session.objects.count(),
                "second_session_users": names[: a.second],
            },
            sort_keys=True,
        )
    )


def cmd_change_password(a):
    from django.contrib.auth.models import User
    from django.test import Client

    with open(a.state) as f:
        state = json.load(f)
    user = User.objects.get(username=a.user)
    mine = [k for k, s in state["sessions"].items() if s["kind"] == "login" and s["user"] == a.user]
    if len(mine) < 2:  # so that the change leaves another session behind
        k = login_session(a.user, password_of(a.user), "for the password change")
        record(state, k, "login", a.user)
        mine.append(k)
    # The latest session: the one a user changing their password would be in.
    latest = max(mine, key=lambda k: state["sessions"][k]["expire_date"])
    c = Client()
    c.cookies["sessionid"] = latest
    r = c.post("/change-password", {"new_password": password_of(a.user) + "-changed"})
    assert r.status_code == 200, (r.status_code, r.content)
    kept = client_session_key(c)
    assert kept != latest, "update_session_auth_hash should have cycled the session key"
    assert session_row(latest) is None
    del state["sessions"][latest]
    record(state, kept, "login", a.user)
    invalidated = [k for k in mine if k != latest]
    for k in invalidated:
        state["sessions"][k]["expect_login"] = False
    user.refresh_from_db()
    with open(a.state, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
    print(json.dumps({"user": a.user, "kept": kept, "replaced": latest, "invalidated": invalidated}))


def without_hash(d):
    from django.contrib.auth import HASH_SESSION_KEY

    return {k: v for k, v in (d or {}).items() if k != HASH_SESSION_KEY}


def cmd_check(a):
    from django.conf import settings
    from django.contrib.auth import HASH_SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.serializers import JSONSerializer
    from django.core import signing
    from django.test import Client
    from django.utils import timezone

    with open(a.state) as f:
        state = json.load(f)
    now = timezone.now()
    users = {u.username: u for u in User.objects.filter(username__in=list(state["users"]))}
    results = {}
    problems = []

    # Pass 1, read-only: what SessionStore.load() gives for each recorded key.
    for key, exp in state["sessions"].items():
        row = session_row(key)
        verifies = False
        if row is not None:
            try:
                signing.loads(row.session_data, salt=SESSION_SALT, serializer=JSONSerializer)
                verifies = True
            except signing.BadSignature:
                pass
        data = loaded(key)
        user = users.get(exp["user"]) if exp["user"] else None
        stored_hash = data.get(HASH_SESSION_KEY)
        results[key] = {
            "kind": exp["kind"],
            "user": exp["user"],
            "row": row is not None,
            "live": row is not None and row.expire_date > now,
            "verifies": verifies,
            "expire_date": iso(row.expire_date) if row is not None else None,
            "data": data,
            "intact": exp["data"] is not None and without_hash(data) == without_hash(exp["data"]) and bool(data),
            "auth_hash_current": (stored_hash == user.get_session_auth_hash()) if user and stored_hash else None,
            "auth_hash_unchanged": (stored_hash == exp["data"].get(HASH_SESSION_KEY)) if exp["data"] else None,
            "whoami": None,
        }

    # Pass 2: a real request through the middleware (a failing login hash flushes the row).
    if not a.data_only:
        for key, res in results.items():
            c = Client()
            c.cookies[settings.SESSION_COOKIE_NAME] = key
            r = c.get("/whoami")
            assert r.status_code == 200, (r.status_code, r.content)
            res["whoami"] = r.content.decode()

    # What a rotation without logouts must leave behind.
    for key, res in results.items():
        exp = state["sessions"][key]
        kind = exp["kind"]

        def problem(what):
            problems.append("%s session %s (user %s): %s" % (kind, key, exp["user"], what))

        if kind in ("login", "anon"):
            if not res["intact"]:
                problem("data not intact: got %r, want %r" % (res["data"], exp["data"]))
            if res["expire_date"] != exp["expire_date"]:
                problem("expire_date %s, want %s" % (res["expire_date"], exp["expire_date"]))
        else:
            if res["data"]:
                problem("an %s row loaded data %r" % (kind, res["data"]))
        if kind == "login" and exp["expect_login"]:
            if res["auth_hash_current"] is not True:
                problem("login hash is not the current key's hash of the current password")
        if kind == "login" and not exp["expect_login"]:
            if res["auth_hash_unchanged"] is not True:
                problem("login hash of a session a password change invalidated was rewritten")
        if not a.data_only:
            want = exp["user"] if exp["expect_login"] else "anonymous"
            if res["whoami"] != want:
                problem("/whoami says %r, want %r" % (res["whoami"], want))

    def count(pred):
        return sum(1 for r in results.values() if pred(r))

    logged_in_users = sorted({r["whoami"] for r in results.values() if r["whoami"] not in (None, "anonymous")})
    summary = {
        "sessions": len(results),
        "intact": count(lambda r: r["intact"]),
        "verifies": count(lambda r: r["verifies"]),
        "logged_in_sessions": count(lambda r: r["whoami"] not in (None, "anonymous")),
        "logged_in_users": len(logged_in_users),
        "users": len(state["users"]),
        "fallbacks": len(settings.SECRET_KEY_FALLBACKS),
    }
    print(
        json.dumps(
            {
                "summary": summary,
                "problems": problems,
                "logged_out_users": sorted(set(state["users"]) - set(logged_in_users)) if not a.data_only else None,
                "sessions": results,
            },
            sort_keys=True,
        )
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--state", required=True)
    s.add_argument("--users", type=int, default=200)
    s.add_argument("--second", type=int, default=40, help="users with a second session")
    s.add_argument("--anon", type=int, default=100)
    s.add_argument("--expired", type=int, default=5)
    s.add_argument("--outsider", type=int, default=3)
    s = sub.add_parser("change-password")
    s.add_argument("user")
    s.add_argument("--state", required=True)
    s = sub.add_parser("check")
    s.add_argument("--state", required=True)
    s.add_argument("--data-only", action="store_true")
    for name in ("createdb", "dropdb", "createdb-mysql", "dropdb-mysql"):
        sub.add_parser(name).add_argument("name")
    sub.add_parser("ensure-deps")
    a = p.parse_args()

    if a.cmd == "ensure-deps":
        ensure_psycopg()
        print(json.dumps({"ok": True}))
    elif a.cmd == "createdb":
        pg_admin('CREATE DATABASE "%s"' % checked_pg_name(a.name))
        print(json.dumps({"created": a.name}))
    elif a.cmd == "dropdb":
        pg_admin('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % checked_pg_name(a.name))
        print(json.dumps({"dropped": a.name}))
    elif a.cmd == "createdb-mysql":
        mysql_admin("CREATE DATABASE `%s` CHARACTER SET utf8mb4" % checked_pg_name(a.name))
        print(json.dumps({"created": a.name}))
    elif a.cmd == "dropdb-mysql":
        mysql_admin("DROP DATABASE IF EXISTS `%s`" % checked_pg_name(a.name))
        print(json.dumps({"dropped": a.name}))
    else:
        django_setup()
        {"setup": cmd_setup, "change-password": cmd_change_password, "check": cmd_check}[a.cmd](a)


if __name__ == "__main__":
    main()
