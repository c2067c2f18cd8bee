#!/usr/bin/env python3
"""Re-sign a whole django_session table with Django's own signing, in batches.

The script an operator would write to move every database session onto a new
SECRET_KEY (old key in SECRET_KEY_FALLBACKS), run with the Django venv's python::

    SECRET_KEY=new SECRET_KEY_FALLBACKS='["old"]' \\
        PY bench/django_resign.py --sqlite /abs/path/sessions.db
    SECRET_KEY=new SECRET_KEY_FALLBACKS='["old"]' \\
        PY bench/django_resign.py --postgres postgres://postgres@127.0.0.1:5432/DB

It goes through Django's database layer (``DATABASES`` configured for the
given database; ``django.db.connection``) and, batch by batch (``--batch``,
default 1000):

* reads the next live rows in key order with a cursor (keyset pagination:
  ``WHERE session_key > last AND expire_date > now ORDER BY session_key LIMIT batch``);
* for each, ``signing.loads(data, salt=SALT)`` (tries SECRET_KEY, then the
  fallbacks) and, when that works, ``signing.dumps(obj, salt=SALT, compress=True)``
  — exactly what ``SessionStore.decode`` / ``encode`` do — keeping the row only
  if the new value differs;
* writes the changed rows with one ``executemany`` of
  ``UPDATE django_session SET session_data = %s WHERE session_key = %s``
  inside ``transaction.atomic()``: one transaction per batch.

Rows that do not load (bad signature, other key) are left alone and counted.

Prints one JSON line: rows read, rewritten, unloadable, and the seconds spent
(after Django is set up and connected; importing Django is not counted).
"""

import argparse
import datetime as dt
import json
import os
import sys
import time
from urllib.parse import unquote, urlparse

SALT = "django.contrib.sessions.SessionStore"


def databases(a):
    if a.sqlite:
        return {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": a.sqlite}}
    u = urlparse(a.postgres)
    return {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": u.path.lstrip("/"),
            "USER": unquote(u.username or ""),
            "PASSWORD": unquote(u.password or ""),
            "HOST": u.hostname or "",
            "PORT": str(u.port or ""),
        }
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--sqlite", metavar="PATH")
    g.add_argument("--postgres", metavar="URL")
    p.add_argument("--table", default="django_session")
    p.add_argument("--batch", type=int, default=1000)
    a = p.parse_args()

    secret = os.environ.get("SECRET_KEY")
    if not secret:
        sys.exit("django_resign: set SECRET_KEY (the new key) and SECRET_KEY_FALLBACKS (JSON list)")
    fallbacks = json.loads(os.environ.get("SECRET_KEY_FALLBACKS") or "[]")

    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY=secret,
        SECRET_KEY_FALLBACKS=fallbacks,
        USE_TZ=True,
        INSTALLED_APPS=[],
        DATABASES=databases(a),
    )
    django.setup()
    from django.core import signing
    from django.db import connection, transaction

    table = connection.ops.quote_name(a.table)
    select = (
        f"SELECT session_key, session_data FROM {table} "
        f"WHERE session_key > %s AND expire_date > %s ORDER BY session_key LIMIT %s"
    )
    update = f"UPDATE {table} SET session_data = %s WHERE session_key = %s"
    connection.ensure_connection()

    t0 = time.perf_counter()
    # As the ORM would bind it (SQLite: naive UTC text; PostgreSQL: aware).
    now = connection.ops.adapt_datetimefield_value(dt.datetime.now(dt.timezone.utc))
    read = rewritten = unloadable = 0
    last = ""
    with connection.cursor() as cur:
        while True:
            cur.execute(select, [last, now, a.batch])
            batch = cur.fetchall()
            if not batch:
                break
            last = batch[-1][0]
            read += len(batch)
            changes = []
            for key, data in batch:
                try:
                    obj = signing.loads(data, salt=SALT)
                except signing.BadSignature:
                    unloadable += 1
                    continue
                new = signing.dumps(obj, salt=SALT, compress=True)
                if new != data:
                    changes.append((new, key))
            if changes:
                with transaction.atomic():
                    cur.executemany(update, changes)
                rewritten += len(changes)
            if len(batch) < a.batch:
                break
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "django": django.get_version(),
                "backend": connection.vendor,
                "rows": read,
                "rewritten": rewritten,
                "unloadable": unloadable,
                "seconds": round(seconds, 3),
                "rows_per_second": round(read / seconds) if seconds > 0 else None,
            }
        )
    )


if __name__ == "__main__":
    main()
