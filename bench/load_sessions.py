#!/usr/bin/env python3
"""Load Django session tokens into a fresh ``django_session`` table.

Run it with the python of the Django venv (``tests/django/setup-venv.sh 5.2``;
PostgreSQL needs psycopg 3, which that venv has)::

    PY bench/load_sessions.py --tokens target/bench/resign-tokens-1000000.txt \\
        --sqlite /abs/path/sessions.db
    PY bench/load_sessions.py --tokens FILE \\
        --postgres postgres://postgres@127.0.0.1:5432/kr_bench_123

``--tokens`` is a file of tokens, one per line, as ``bench/make_sessions.py``
writes them (``session_data`` values). Each becomes one row, with the layout
Django's migrations create:

    session_key  varchar(40) PRIMARY KEY   32 characters of [a-z0-9], random
                                           (like ``get_random_string(32, ...)``)
    session_data text                      the token
    expire_date  datetime / timestamptz    in the future: now + 1 hour .. 14 days;
                                           SQLite: TEXT 'YYYY-MM-DD HH:MM:SS.ffffff' UTC
    an index on expire_date (and on PostgreSQL, Django's ``_like`` index on the key)

Rows go in in random key order, as sessions arrive on a live site.

SQLite: the file must not exist; one transaction, ``executemany``; the file is
left in SQLite's default (rollback journal) mode, as Django leaves it.
PostgreSQL: the database must exist and have no ``django_session``; ``COPY``,
then the indexes, ``VACUUM ANALYZE`` and a ``CHECKPOINT``.

The keys and expiry dates are deterministic for a given ``--seed``, apart from
"now". Prints one JSON line (rows, seconds) on stdout.
"""

import argparse
import datetime as dt
import io
import json
import os
import random
import sqlite3
import sys
import time

KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"

# What `manage.py sqlmigrate sessions 0001` prints for each backend (Django 5.2).
SQLITE_DDL = [
    'CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, '
    '"session_data" text NOT NULL, "expire_date" datetime NOT NULL)',
    'CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")',
]
PG_TABLE = (
    'CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, '
    '"session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL)'
)
PG_INDEXES = [
    'CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")',
    'CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" '
    '("session_key" varchar_pattern_ops)',
]


def read_tokens(path):
    with open(path, encoding="ascii") as f:
        tokens = [line.rstrip("\n") for line in f]
    while tokens and not tokens[-1]:
        tokens.pop()
    return tokens


def rows(tokens, seed):
    """(key, data, expire) tuples: unique random keys, future expiry (aware UTC)."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    seen = set()
    out = []
    for t in tokens:
        while True:
            k = "".join(rng.choices(KEY_CHARS, k=32))
            if k not in seen:
                seen.add(k)
                break
        expire = now + dt.timedelta(seconds=rng.randint(3600, 14 * 86400), microseconds=rng.randrange(1_000_000))
        out.append((k, t, expire))
    return out


def sqlite_datetime(d):
    # Django's SQLite adapter with USE_TZ = True: naive UTC, isoformat(" "),
    # with the fraction left out when it is zero.
    return d.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(" ")


def load_sqlite(path, data):
    if os.path.exists(path):
        sys.exit(f"load_sessions: {path} exists; refusing to touch it")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for stmt in SQLITE_DDL:
            conn.execute(stmt)
        conn.executemany(
            'INSERT INTO "django_session" ("session_key", "session_data", "expire_date") VALUES (?, ?, ?)',
            ((k, t, sqlite_datetime(e)) for k, t, e in data),
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def load_postgres(url, data):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            with conn.cursor() as cur:
                cur.execute(PG_TABLE)
                buf = io.StringIO()
                for k, t, e in data:
                    # Keys and tokens are [A-Za-z0-9_:.-]: nothing to escape in COPY's text format.
                    buf.write(f"{k}\t{t}\t{e.isoformat()}\n")
                with cur.copy(
                    'COPY "django_session" ("session_key", "session_data", "expire_date") FROM STDIN'
                ) as copy:
                    copy.write(buf.getvalue())
                for stmt in PG_INDEXES:
                    cur.execute(stmt)
        conn.execute("VACUUM ANALYZE django_session")
        conn.execute("CHECKPOINT")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", required=True, help="file of session_data values, one per line")
    p.add_argument("--count", "-n", type=int, default=None, help="only the first N tokens")
    p.add_argument("--sqlite", metavar="PATH", help="new SQLite file to create")
    p.add_argument("--postgres", metavar="URL", help="existing (empty) PostgreSQL database")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    if not a.sqlite and not a.postgres:
        p.error("give --sqlite and/or --postgres")

    t0 = time.perf_counter()
    tokens = read_tokens(a.tokens)
    if a.count is not None:
        if a.count > len(tokens):
            sys.exit(f"load_sessions: {a.tokens} has {len(tokens)} tokens, fewer than {a.count}")
        tokens = tokens[: a.count]
    data = rows(tokens, a.seed)
    if a.sqlite:
        load_sqlite(a.sqlite, data)
    if a.postgres:
        load_postgres(a.postgres, data)
    print(json.dumps({"rows": len(data), "seconds": round(time.perf_counter() - t0, 3)}))


if __name__ == "__main__":
    main()
