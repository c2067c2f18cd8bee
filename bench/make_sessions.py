#!/usr/bin/env python3
"""Write N Django database-session tokens, one per line, signed by real Django.

Run it with the python of a Django venv (``tests/django/setup-venv.sh 5.2``)::

    PY bench/make_sessions.py --count 1000000 --out target/bench/sessions.txt

Each token is exactly what ``SessionStore.encode`` writes into
``django_session.session_data``::

    signing.dumps(session_dict, salt="django.contrib.sessions.SessionStore",
                  compress=True)

The session dicts are varied and realistic: about 70% are logged in
(``_auth_user_id``, ``_auth_user_backend``, ``_auth_user_hash`` plus a few app
keys), the rest anonymous with a handful of keys (language, cart, CSRF token,
...). A fraction (``--fallback-fraction``, default 10%) is signed by the
fallback key instead of ``SECRET_KEY``, and a tiny fraction
(``--tamper-fraction``, default 0.1%) has one signature character flipped, so
that the verifiers have something to disagree about if they are wrong.

Keys come from the environment, as Django reads them: ``SECRET_KEY`` signs
and the *last* entry of ``SECRET_KEY_FALLBACKS`` (a JSON list) signs the
fallback share. Defaults are fixed bench keys (see ``bench_keys``), so the
verifiers can use the same ones.

The output is deterministic for a given ``--seed`` apart from the timestamps.
Work is split over ``--jobs`` processes (default: every core).
"""

import argparse
import json
import multiprocessing
import os
import random
import sys
import time

SALT = "django.contrib.sessions.SessionStore"

DEFAULT_SECRET_KEY = "bench-primary-3k#v9!q2m$z@x7w0r^t6y&u1i(o8p)a5s-d4f+g=h_j"
DEFAULT_FALLBACKS = [
    "bench-older-fallback-8n#c2b!v5x@z0l^k7j&h3g(f9d)s6a-p1o+i=u_y",
    "bench-oldest-fallback-4e#r7t!y1u@i9o^p3a&s6d(f0g)h2j-k8l+z=x_c",
]


def bench_keys():
    """(SECRET_KEY, SECRET_KEY_FALLBACKS) from the environment or the defaults."""
    secret = os.environ.get("SECRET_KEY") or DEFAULT_SECRET_KEY
    raw = os.environ.get("SECRET_KEY_FALLBACKS")
    fallbacks = json.loads(raw) if raw else list(DEFAULT_FALLBACKS)
    return secret, fallbacks


def setup_django(secret, fallbacks):
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY=secret,
            SECRET_KEY_FALLBACKS=fallbacks,
            USE_TZ=True,
            INSTALLED_APPS=[],
        )
        django.setup()


# ---- realistic session dicts ------------------------------------------------

_HEX = "0123456789abcdef"
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_LANGS = ["en", "en-gb", "fr", "de", "es", "pt-br", "it", "nl", "pl", "ja"]
_TZS = ["Europe/Paris", "America/New_York", "UTC", "Asia/Tokyo", "Europe/Berlin"]
_PATHS = ["/", "/account/", "/orders/", "/cart/", "/search/?q=shoes", "/blog/2026/11/"]
_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "django.contrib.auth.backends.ModelBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]


def _rand(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def session_dict(rng):
    """One session, shaped like what a typical Django site stores."""
    d = {}
    if rng.random() < 0.7:
        # Logged in: django.contrib.auth.login() writes these three, in this order.
        d["_auth_user_id"] = str(rng.randint(1, 2_000_000))
        d["_auth_user_backend"] = rng.choice(_BACKENDS)
        d["_auth_user_hash"] = _rand(rng, _HEX, 64)
        if rng.random() < 0.5:
            d["django_language"] = rng.choice(_LANGS)
        if rng.random() < 0.3:
            d["django_timezone"] = rng.choice(_TZS)
        if rng.random() < 0.4:
            d["cart"] = [rng.randint(1, 99_999) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.2:
            d["last_login_ip"] = "%d.%d.%d.%d" % tuple(rng.randint(1, 254) for _ in range(4))
        if rng.random() < 0.1:
            d["_session_expiry"] = rng.choice([0, 3600, 86400, 1209600])
    else:
        # Anonymous: a few keys set by middleware and views.
        if rng.random() < 0.5:
            d["django_language"] = rng.choice(_LANGS)
        if rng.random() < 0.4:
            d["cart"] = [rng.randint(1, 99_999) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            d["_csrftoken"] = _rand(rng, _ALNUM, 32)
        if rng.random() < 0.3:
            d["next"] = rng.choice(_PATHS)
        if rng.random() < 0.2:
            d["visits"] = rng.randint(1, 500)
        if not d:
            d["django_timezone"] = rng.choice(_TZS)
    return d


# ---- generation ----------------------------------------------------------------

def _chunk(args):
    """Worker: tokens for indices [start, stop) as one string of lines."""
    start, stop, seed, fallback_fraction, tamper_fraction = args
    from django.core import signing

    secret, fallbacks = bench_keys()
    fallback_key = fallbacks[-1] if fallbacks else None
    rng = random.Random(seed * 1_000_003 + start)
    lines = []
    for _ in range(start, stop):
        d = session_dict(rng)
        if fallback_key is not None and rng.random() < fallback_fraction:
            token = signing.dumps(d, key=fallback_key, salt=SALT, compress=True)
        else:
            token = signing.dumps(d, salt=SALT, compress=True)
        if rng.random() < tamper_fraction:
            # Flip one character of the signature (the last 43 characters).
            i = len(token) - 1 - rng.randrange(43)
            c = token[i]
            token = token[:i] + ("A" if c != "A" else "B") + token[i + 1:]
        lines.append(token)
    lines.append("")
    return "\n".join(lines)


def _init_worker():
    setup_django(*bench_keys())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", "-n", type=int, default=1_000_000)
    p.add_argument("--out", "-o", default="-", help="output file ('-' for stdout)")
    p.add_argument("--fallback-fraction", type=float, default=0.10)
    p.add_argument("--tamper-fraction", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()

    t0 = time.perf_counter()
    step = 20_000
    tasks = [
        (i, min(i + step, a.count), a.seed, a.fallback_fraction, a.tamper_fraction)
        for i in range(0, a.count, step)
    ]
    out = sys.stdout if a.out == "-" else open(a.out + ".tmp", "w", encoding="ascii")
    try:
        if a.jobs <= 1:
            _init_worker()
            for t in tasks:
                out.write(_chunk(t))
        else:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(a.jobs, initializer=_init_worker) as pool:
                for text in pool.imap(_chunk, tasks):  # imap keeps the order
                    out.write(text)
    finally:
        if out is not sys.stdout:
            out.close()
    if out is not sys.stdout:
        os.replace(a.out + ".tmp", a.out)
    dt = time.perf_counter() - t0
    print(
        json.dumps({"count": a.count, "seconds": round(dt, 3), "jobs": a.jobs}),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
