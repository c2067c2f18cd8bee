#!/usr/bin/env python3
"""Load a big, mostly expired ``django_session`` table, as long-running sites have.

Run it with the python of the Django venv (``tests/django/setup-venv.sh 5.2``;
PostgreSQL needs psycopg 3, MySQL/MariaDB mysqlclient)::

    PY bench/load_big_table.py --tokens target/bench/resign-tokens-1000000.txt \\
        --rows 10000000 --sqlite /abs/path/big.db
    PY bench/load_big_table.py --tokens FILE --rows 10000000 \\
        --postgres postgres://postgres@127.0.0.1:5432/kr_big_1
    PY bench/load_big_table.py --tokens FILE --rows 10000000 \\
        --mysql mysql://root@127.0.0.1:3306/kr_big_1

Every token of ``--tokens`` (``bench/make_sessions.py`` output, signed by the
old key) becomes one live row (expiry 1 to 14 days ahead); the other
``--rows`` minus that many rows are expired (expiry 1 to 400 days ago, at
random or, with ``--expiry-order insertion``, rising with the row number),
their data the same tokens over again. Expired rows go in first, as they do on a
site (older sessions, lower rowids), then the live ones. Keys are 32
characters of ``[0-9a-f]`` (an MD5 of the seed and the row number: unique,
random-looking, and no set of ten million keys held in memory). The table has
the layout Django's migrations create on that database, indexes included.
Rows are streamed: memory stays flat. Prints one JSON line (rows, live,
expired, seconds) on stdout.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sqlite3
import sys
import time

SQLITE_DDL = [
    'CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, '
    '"session_data" text NOT NULL, "expire_date" datetime NOT NULL)',
]
SQLITE_INDEX = 'CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")'
PG_TABLE = (
    'CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, '
    '"session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL)'
)
PG_INDEXES = [
    'CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date")',
    'CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" '
    '("session_key" varchar_pattern_ops)',
]
MYSQL_TABLE = (
    "CREATE TABLE `django_session` (`session_key` varchar(40) NOT NULL PRIMARY KEY, "
    "`session_data` longtext NOT NULL, `expire_date` datetime(6) NOT NULL)"
)
MYSQL_INDEX = "CREATE INDEX `django_session_expire_date_a5c62663` ON `django_session` (`expire_date`)"


def read_tokens(path):
    with open(path, encoding="ascii") as f:
        tokens = [line.rstrip("\n") for line in f]
    while tokens and not tokens[-1]:
        tokens.pop()
    if not tokens:
        sys.exit("load_big_table: no tokens in %s" % path)
    return tokens


def rows(tokens, total, seed, expiry_order="random"):
    """(key, data, naive UTC expiry) for every row, expired ones first.

    ``expiry_order="insertion"``: the expired rows' expiries rise with their
    insertion order (400 days ago for the first row to a day ago for the
    last), as on a site whose sessions all last as long; ``"random"``: each
    expired row gets a random expiry in that span."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    live = len(tokens)
    expired = total - live
    for i in range(total):
        key = hashlib.md5(b"%d:%d" % (seed, i)).hexdigest()
        if i < expired:
            data = tokens[i % live]
            if expiry_order == "insertion":
                ago = 400 * 86400 - (399 * 86400 * i) // max(expired, 1)
            else:
                ago = rng.randint(86400, 400 * 86400)
            expire = now - dt.timedelta(seconds=ago, microseconds=rng.randrange(1_000_000))
        else:
            data = tokens[i - expired]
            # At least a day ahead: a load of 10M rows takes up to an hour here, and
            # the live rows must still be live when the run counts them.
            expire = now + dt.timedelta(seconds=rng.randint(86400, 14 * 86400), microseconds=rng.randrange(1_000_000))
        yield key, data, expire


def chunks(it, n):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf


def load_sqlite(path, data):
    if os.path.exists(path):
        sys.exit(f"load_big_table: {path} exists; refusing to touch it")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        for stmt in SQLITE_DDL:
            conn.execute(stmt)
        conn.executemany(
            'INSERT INTO "django_session" ("session_key", "session_data", "expire_date") VALUES (?, ?, ?)',
            # Django's SQLite text for a naive UTC datetime (no fraction when zero).
            ((k, t, e.isoformat(" ")) for k, t, e in data),
        )
        conn.execute(SQLITE_INDEX)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # Back to the rollback journal Django's SQLite files have.
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()


def load_postgres(url, data):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            with conn.cursor() as cur:
                cur.execute(PG_TABLE)
                with cur.copy(
                    'COPY "django_session" ("session_key", "session_data", "expire_date") FROM STDIN'
                ) as copy:
                    for part in chunks(data, 20000):
                        # Keys and tokens need no escaping in COPY's text format.
                        copy.write("".join(f"{k}\t{t}\t{e.isoformat()}+00\n" for k, t, e in part))
                for stmt in PG_INDEXES:
                    cur.execute(stmt)
        conn.execute("VACUUM ANALYZE django_session")
        conn.execute("CHECKPOINT")


def load_mysql(url, data):
    import MySQLdb
    from urllib.parse import urlparse

    u = urlparse(url)
    conn = MySQLdb.connect(
        host=u.hostname or "127.0.0.1",
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        database=u.path.lstrip("/"),
        charset="utf8mb4",
    )
    try:
        cur = conn.cursor()
        cur.execute(MYSQL_TABLE)
        for part in chunks(data, 5000):
            cur.executemany(
                "INSERT INTO `django_session` (`session_key`, `session_data`, `expire_date`) VALUES (%s, %s, %s)",
                part,
            )
            conn.commit()
        cur.execute(MYSQL_INDEX)
        cur.execute("ANALYZE TABLE `django_session`")
        cur.fetchall()
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", required=True, help="file of live session_data values, one per line")
    p.add_argument("--rows", type=int, required=True, help="rows in all (live + expired)")
    p.add_argument("--sqlite", metavar="PATH", help="new SQLite file to create")
    p.add_argument("--postgres", metavar="URL", help="existing database without django_session")
    p.add_argument("--mysql", metavar="URL", help="existing database without django_session")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--expiry-order",
        choices=["random", "insertion"],
        default="random",
        help="expired rows' expiries random (default) or rising with insertion order",
    )
    a = p.parse_args()
    targets = [x for x in (a.sqlite, a.postgres, a.mysql) if x]
    if len(targets) != 1:
        p.error("give exactly one of --sqlite, --postgres, --mysql")
    t0 = time.perf_counter()
    tokens = read_tokens(a.tokens)
    if a.rows < len(tokens):
        sys.exit("load_big_table: --rows is smaller than the number of live tokens")
    data = rows(tokens, a.rows, a.seed, a.expiry_order)
    if a.sqlite:
        load_sqlite(a.sqlite, data)
    elif a.postgres:
        load_postgres(a.postgres, data)
    else:
        load_mysql(a.mysql, data)
    print(json.dumps({
        "rows": a.rows,
        "live": len(tokens),
        "expired": a.rows - len(tokens),
        "seconds": round(time.perf_counter() - t0, 3),
    }))


if __name__ == "__main__":
    main()
