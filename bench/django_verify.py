#!/usr/bin/env python3
"""Verify every line of a token file with Django's own ``signing.loads``.

Run it with the python of a Django venv (``tests/django/setup-venv.sh 5.2``)::

    PY bench/django_verify.py target/bench/sessions.txt

Each line is checked exactly as ``SessionStore.decode`` does it::

    signing.loads(token, salt="django.contrib.sessions.SessionStore")

with ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` (a JSON list) from the
environment (defaults: the bench keys of make_sessions.py). One process, one
thread. Prints one JSON object on stdout::

    {"count": N, "ok": N, "bad": N, "seconds": S, "tokens_per_second": R, ...}

``seconds`` covers reading and verifying the file, not importing Django.
"""

import argparse
import json
import os
import platform
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_sessions import SALT, bench_keys, setup_django  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file", help="token file, one token per line ('-' for stdin)")
    p.add_argument("--salt", default=SALT)
    a = p.parse_args()

    secret, fallbacks = bench_keys()
    setup_django(secret, fallbacks)
    import django
    from django.core import signing

    loads = signing.loads
    BadSignature = signing.BadSignature
    salt = a.salt
    count = ok = 0
    f = sys.stdin if a.file == "-" else open(a.file, encoding="ascii")
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    with f:
        for line in f:
            token = line.rstrip("\n")
            count += 1
            try:
                loads(token, salt=salt)
            except BadSignature:
                continue
            except Exception:  # noqa: BLE001 - Django's SessionStore.decode swallows these too
                continue
            ok += 1
    dt = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(
        json.dumps(
            {
                "count": count,
                "ok": ok,
                "bad": count - ok,
                "seconds": round(dt, 3),
                "cpu_seconds": round(cpu, 3),
                "tokens_per_second": round(count / dt) if dt > 0 else None,
                "django": django.get_version(),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
