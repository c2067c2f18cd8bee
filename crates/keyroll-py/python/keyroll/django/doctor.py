"""``manage.py keyroll doctor``: configuration mistakes, and what a rotation
does in this project. Each finding is ``(level, text)`` with level
``error``, ``warning`` or ``info``; texts never hold a secret."""

import time

from django.conf import settings

from .._keyroll import RingError, key_id
from .ring import current_ring

MIDDLEWARE = "keyroll.django.middleware.ResignMiddleware"


def _weak(secret):
    # Django's own check (security.W009): shorter than 50 characters or
    # fewer than 5 distinct ones.
    return len(secret) < 50 or len(set(secret)) < 5


def diagnose():
    out = []
    add = lambda level, text: out.append((level, text))  # noqa: E731
    secret_key = getattr(settings, "SECRET_KEY", "")
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", [])
    ring_path = getattr(settings, "KEYROLL_RING", None)

    if ring_path:
        try:
            ring = current_ring()
        except Exception as e:  # ImproperlyConfigured with the reason
            add("error", "KEYROLL_RING %s cannot be read: %s" % (ring_path, e))
            return out
        add("info", "keys come from the ring file %s (settings.SECRET_KEY and SECRET_KEY_FALLBACKS follow it)" % ring_path)
        from .ring import _file

        if _file is not None and _file[2].last_error:
            add("error", "the ring file's last re-read failed (the previous ring is in force): %s" % _file[2].last_error)
    if isinstance(fallbacks, str):
        add(
            "error",
            "SECRET_KEY_FALLBACKS is a string, not a list: Django reads each character as a key "
            '(write SECRET_KEY_FALLBACKS = ["..."])',
        )
        fallbacks = []
    fallbacks = [f for f in fallbacks]
    if not secret_key:
        add("error", "SECRET_KEY is empty")
        return out
    if secret_key in fallbacks:
        add(
            "error",
            "the primary key %s is also in SECRET_KEY_FALLBACKS: remove it there (it verifies as the primary anyway; "
            "a fallback list that holds the primary usually means the rotation was not finished)" % key_id(secret_key),
        )
    seen = set()
    for f in fallbacks:
        if not isinstance(f, str) or not f:
            add("error", "SECRET_KEY_FALLBACKS holds an empty or non-string entry")
            continue
        if f in seen and f != secret_key:
            add("warning", "key %s is listed twice in SECRET_KEY_FALLBACKS" % key_id(f))
        seen.add(f)
    for s, role in [(secret_key, "primary")] + [(f, "fallback") for f in seen]:
        if isinstance(s, str) and s and _weak(s):
            add("warning", "the %s key %s is short or simple (fewer than 50 characters or 5 distinct ones)" % (role, key_id(s)))

    try:
        ring = current_ring()
    except (RingError, Exception) as e:
        add("error", "no key ring: %s" % e)
        return out
    now = time.time()
    keys = ring.keys(now)
    add("info", "ring: " + ", ".join("%s %s%s" % (r, k, "" if live else " (retired)") for k, r, _t, live in keys))

    engine = settings.SESSION_ENGINE
    ours = engine.startswith("keyroll.django.sessions.")
    mw = list(getattr(settings, "MIDDLEWARE", None) or [])
    if not ours:
        add(
            "warning",
            "SESSION_ENGINE %s is not keyroll's: a session signed under a fallback is re-signed only when "
            "a view modifies it, and is lost when that fallback is dropped "
            "(use keyroll.django.sessions.%s)" % (engine, engine.rsplit(".", 1)[-1]),
        )
    elif MIDDLEWARE not in mw:
        add("warning", "%s is not in MIDDLEWARE: sessions are re-signed only when a view reads them" % MIDDLEWARE)

    # What a rotation does, format by format.
    name = engine.rsplit(".", 1)[-1]
    age = settings.SESSION_COOKIE_AGE
    if name == "signed_cookies":
        add("info", "sessions: signed cookies, valid for SESSION_COOKIE_AGE (%d s) from their signing; with keyroll's engine and middleware a stale one is re-issued (same timestamp) on the next response" % age)
    elif name == "cache":
        add("info", "sessions: the cache holds unsigned data; only the login hash depends on the key (re-made on read by keyroll's engine)")
    else:
        add("info", "sessions (%s): each stored session is signed; keyroll's engine re-signs a stale one on read, `manage.py keyroll resign` the rest" % name)
    add(
        "info",
        "login hash (_auth_user_hash): Django alone re-makes it only when a view touches request.user; "
        "keyroll's engines re-make it on the read, for the user's current password only",
    )
    reset = getattr(settings, "PASSWORD_RESET_TIMEOUT", 259200)
    add(
        "info",
        "password-reset links: verified under fallbacks; one signed under a key dies when that key is dropped, "
        "so keep a fallback at least PASSWORD_RESET_TIMEOUT (%d s) after it stopped signing" % reset,
    )
    for k, role, retire, live in keys:
        if role == "fallback" and live and retire is not None and retire - now < reset:
            add(
                "warning",
                "fallback %s retires in %d s, before PASSWORD_RESET_TIMEOUT (%d s): reset links it signed die early"
                % (k, max(0, int(retire - now)), reset),
            )
    add(
        "info",
        "signed cookies (get_signed_cookie): verified under fallbacks, not re-signed by Django; "
        "drop a fallback only after the longest max_age your app gives them",
    )
    add(
        "info",
        "messages (cookie storage): verified under fallbacks; they live one or two requests, so a rotation loses at most those in flight",
    )
    return out
