#!/usr/bin/env python3
"""Verify tokens with real Django: the Django side of keyroll's interop tests.

Run it with the python of a venv made by ``setup-venv.sh`` (Django 5.2 or 4.2)::

    .venv/django-5.2/bin/python tests/django/check_tokens.py < cases.jsonl

Each stdin line is a JSON object ``{"id", "format", "params", "keys", "token",
"now"}`` (any other fields, such as ``expect``, are ignored). Each is verified
by Django itself, with ``SECRET_KEY = keys[0]``, ``SECRET_KEY_FALLBACKS =
keys[1:]`` and the clock frozen at ``now``, and one line is written per input::

    {"id": ..., "ok": true|false, "value": <value or null>,
     "reason": null|"signature"|"expired"|"malformed"}

See README.md for the formats and their params. This module also holds the
harness shared with make_cases.py: Django configuration, the fake clock, and
``verify()``, one Django verification per format.
"""

import datetime
import json
import logging
import sys
import time

import django
from django.conf import settings

# The fake clock, in unix seconds. ``time.time`` and
# ``PasswordResetTokenGenerator._now`` both read it (see ``setup_django``).
_FAKE_NOW = [0.0]

_UNIX_EPOCH = datetime.datetime(1970, 1, 1)

# Set by setup_django() once Django is configured (they need settings).
signing = None
HAS_V2_COOKIES = False

# Fixed salts Django uses, kept in one place. The db session salt is
# read from SessionStore.key_salt at runtime; these have no attribute.
COOKIE_SESSION_SALT = "django.contrib.sessions.backends.signed_cookies"
AUTH_HASH_KEY_SALT = "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"

REASONS = ("signature", "expired", "malformed")


def fake_time():
    return _FAKE_NOW[0]


def set_now(now):
    _FAKE_NOW[0] = float(now)


def naive_utc(unix_seconds):
    """The naive UTC datetime for a unix time (what a UTC server's datetime.now() gives)."""
    return _UNIX_EPOCH + datetime.timedelta(seconds=unix_seconds)


def use_keys(keys):
    """Make ``keys[0]`` the SECRET_KEY and ``keys[1:]`` the SECRET_KEY_FALLBACKS."""
    settings.SECRET_KEY = keys[0]
    settings.SECRET_KEY_FALLBACKS = list(keys[1:])


def setup_django():
    """Configure Django in-process (no database) and freeze its clocks."""
    global signing, HAS_V2_COOKIES
    if not settings.configured:
        settings.configure(
            SECRET_KEY="keyroll-interop-placeholder-never-used-for-signing",
            SECRET_KEY_FALLBACKS=[],
            # auth (and contenttypes, which it needs) so that User instances can
            # be built; they are never saved, so no database is configured.
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
            DATABASES={},
            USE_TZ=True,
            LOGGING_CONFIG=None,
            # 5.2's default, spelled out; unknown (and ignored) on 4.2.
            SIGNED_COOKIE_LEGACY_SALT_FALLBACK=True,
        )
        django.setup()
        # SessionStore.decode() logs "Session data corrupted"; with no handler
        # configured Python would print it to stderr.
        logging.getLogger("django").addHandler(logging.NullHandler())
    from django.contrib.auth.tokens import PasswordResetTokenGenerator
    from django.core import signing as _signing

    signing = _signing
    HAS_V2_COOKIES = hasattr(signing, "_unsign_cookie")
    # TimestampSigner reads time.time(); the reset-token generator reads
    # self._now(), naive local time, which we make naive UTC.
    time.time = fake_time
    PasswordResetTokenGenerator._now = lambda self: naive_utc(_FAKE_NOW[0])


def django_tag():
    return "dj%d%d" % django.VERSION[:2]


# ---------------------------------------------------------------------------
# Django objects used by several formats (imported lazily: need setup_django)


def db_session_store():
    from django.contrib.sessions.backends.db import SessionStore

    return SessionStore()


def cookie_session_store():
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    return SessionStore()


def messages_storage():
    from django.contrib.messages.storage.cookie import CookieStorage

    # BaseStorage only keeps the request; the signer is built from settings.
    return CookieStorage(None)


class ResetUser:
    """The attributes PasswordResetTokenGenerator reads from a user."""

    def __init__(self, pk, password, last_login, email):
        self.pk = pk
        self.password = password
        self.last_login = last_login
        self.email = email

    @classmethod
    def from_params(cls, p):
        last_login = p.get("last_login")
        if last_login is not None:
            # Stored aware (USE_TZ=True); Django drops tzinfo and microseconds.
            last_login = datetime.datetime.fromisoformat(last_login).replace(
                tzinfo=datetime.timezone.utc
            )
        return cls(p["pk"], p["password_hash"], last_login, p.get("email"))

    @classmethod
    def get_email_field_name(cls):
        return "email"


def auth_user(password_hash):
    """An unsaved django.contrib.auth User: only its session-hash methods are used."""
    from django.contrib.auth.models import User

    return User(password=password_hash)


# ---------------------------------------------------------------------------
# One verifier per format. Each returns the verified value or raises what
# Django raises; settings and the clock are already set by verify().


def _verify_salted_hmac(p, token, keys):
    from django.utils.crypto import salted_hmac

    # Not a verification: recompute the hex digest with keys[0] only.
    return salted_hmac(
        p["key_salt"], p["value"], keys[0], algorithm=p["algorithm"]
    ).hexdigest()


def _verify_signer(p, token, keys):
    signer = signing.Signer(salt=p["salt"], sep=p["sep"], algorithm=p["algorithm"])
    return signer.unsign(token)


def _verify_timestamp(p, token, keys):
    signer = signing.TimestampSigner(
        salt=p["salt"], sep=p["sep"], algorithm=p["algorithm"]
    )
    return signer.unsign(token, max_age=p["max_age"])


def _verify_object(p, token, keys):
    # salt null means loads()'s own default ("django.core.signing"); note that
    # "" is NOT that: Signer turns a falsy salt into its class default.
    kwargs = {} if p["salt"] is None else {"salt": p["salt"]}
    return signing.loads(token, max_age=p["max_age"], **kwargs)


def _verify_db_session(p, token, keys):
    # SessionStore.decode() without its "return {} on any error" wrapper.
    store = db_session_store()
    return signing.loads(token, salt=store.key_salt, serializer=store.serializer)


def _verify_cookie_session(p, token, keys):
    # signed_cookies.SessionStore.load() without its "return {}" wrapper.
    settings.SESSION_COOKIE_AGE = p["max_age"]
    store = cookie_session_store()
    return signing.loads(
        token,
        serializer=store.serializer,
        max_age=store.get_session_cookie_age(),
        salt=COOKIE_SESSION_SALT,
    )


def _verify_auth_hash(p, token, keys):
    # The check in django.contrib.auth.get_user(): the current secret's hash,
    # then each fallback's; no match flushes the session (here: BadSignature).
    from django.utils.crypto import constant_time_compare

    user = auth_user(p["password_hash"])
    if token and constant_time_compare(token, user.get_session_auth_hash()):
        return None
    if token and any(
        constant_time_compare(token, h) for h in user.get_session_auth_fallback_hash()
    ):
        return None
    raise signing.BadSignature("session auth hash does not match")


def _verify_reset_token(p, token, keys):
    from django.contrib.auth.tokens import PasswordResetTokenGenerator

    user = ResetUser.from_params(p)
    generator = PasswordResetTokenGenerator()
    generator.secret = keys[0]
    generator.secret_fallbacks = list(keys[1:])
    settings.PASSWORD_RESET_TIMEOUT = p["timeout"]
    if generator.check_token(user, token):
        return None
    # check_token() only says False. It checks the signature before the age,
    # so a token that passes with an unbounded timeout failed on its age.
    settings.PASSWORD_RESET_TIMEOUT = 10**15
    if generator.check_token(user, token):
        raise signing.SignatureExpired("password reset token expired")
    raise signing.BadSignature("password reset token does not match")


def _verify_signed_cookie(p, token, keys, legacy_path="strict"):
    """request.get_signed_cookie().

    legacy_path="strict" (check_tokens): legacy tokens are checked the way
    Django before 5.2.15 / 4.2 reads them (salt = name + salt), v2 tokens with
    5.2's _unsign_cookie (v2 salt, then the legacy one). legacy_path="django"
    (make_cases on 5.2): always _unsign_cookie, what a 5.2 server does.
    """
    name, salt, max_age = p["name"], p["salt"], p["max_age"]
    if HAS_V2_COOKIES and not (p["legacy"] and legacy_path == "strict"):
        return signing._unsign_cookie(
            token, cookie_name=name, salt=salt, max_age=max_age
        )
    return signing.get_cookie_signer(salt=name + salt).unsign(token, max_age=max_age)


def _verify_messages(p, token, keys):
    from django.contrib.messages.storage.cookie import MessageSerializer

    # Django's verdict: what CookieStorage._decode() runs.
    messages_storage().signer.unsign_object(token, serializer=MessageSerializer)
    # The reported value is the payload as plain JSON, not Message objects.
    # A fresh signer: get_cookie_signer() hands Signer its fallback keys as a
    # one-shot map() iterator, so a second unsign on the same signer would
    # silently try no fallback keys at all.
    return messages_storage().signer.unsign_object(token)


VERIFIERS = {
    "salted_hmac": _verify_salted_hmac,
    "signer": _verify_signer,
    "timestamp": _verify_timestamp,
    "object": _verify_object,
    "db_session": _verify_db_session,
    "cookie_session": _verify_cookie_session,
    "auth_hash": _verify_auth_hash,
    "reset_token": _verify_reset_token,
    "signed_cookie": _verify_signed_cookie,
    "messages": _verify_messages,
}


# The params each format takes, and what each one must be.
_STR, _OPT_STR, _OPT_INT, _INT, _BOOL, _ALG = "str", "str|null", "int|null", "int", "bool", "alg"
PARAMS = {
    "salted_hmac": {"key_salt": _STR, "value": _STR, "algorithm": _ALG},
    "signer": {"salt": _OPT_STR, "sep": _STR, "algorithm": _ALG},
    "timestamp": {"salt": _OPT_STR, "sep": _STR, "algorithm": _ALG, "max_age": _OPT_INT},
    "object": {"salt": _OPT_STR, "compress": _BOOL, "max_age": _OPT_INT},
    "db_session": {},
    "cookie_session": {"max_age": _INT},
    "auth_hash": {"password_hash": _STR},
    "reset_token": {
        "pk": _STR,
        "password_hash": _STR,
        "last_login": _OPT_STR,
        "email": _OPT_STR,
        "timeout": _INT,
    },
    "signed_cookie": {"name": _STR, "salt": _STR, "max_age": _OPT_INT, "legacy": _BOOL},
    "messages": {},
}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_case(case):
    """Raise ValueError if a case is not well-formed input (a harness bug)."""
    fmt = case.get("format")
    if fmt not in PARAMS:
        raise ValueError("unknown format %r" % (fmt,))
    if not isinstance(case.get("token"), str):
        raise ValueError("token must be a string")
    now = case.get("now")
    if not (_is_int(now) or isinstance(now, float)):
        raise ValueError("now must be a number")
    keys = case.get("keys")
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ValueError("keys must be a non-empty list of non-empty strings")
    params = case.get("params")
    if not isinstance(params, dict):
        raise ValueError("params must be an object")
    for name, kind in PARAMS[fmt].items():
        if name not in params:
            raise ValueError("%s: missing param %r" % (fmt, name))
        v = params[name]
        ok = {
            _STR: isinstance(v, str),
            _OPT_STR: v is None or isinstance(v, str),
            _INT: _is_int(v),
            _OPT_INT: v is None or _is_int(v),
            _BOOL: isinstance(v, bool),
            _ALG: v in ("sha1", "sha224", "sha256", "sha384", "sha512"),
        }[kind]
        if not ok:
            raise ValueError("%s: param %r must be %s, got %r" % (fmt, name, kind, v))
    if "sep" in PARAMS[fmt]:
        signing.Signer(key="x", sep=params["sep"])  # Django refuses unsafe separators
    if params.get("last_login") is not None and fmt == "reset_token":
        datetime.datetime.fromisoformat(params["last_login"])


def verify(case, cookie_legacy_path="strict"):
    """Django's verdict on one case: {"ok", "value", "reason"}.

    SignatureExpired -> "expired"; any other BadSignature -> "signature"; any
    other exception raised while Django verifies or loads (ValueError,
    binascii.Error, zlib.error, JSONDecodeError, IndexError ...) -> "malformed".
    Ill-formed input raises ValueError instead (see check_case).
    """
    check_case(case)
    fmt = case["format"]
    params, token, keys = case["params"], case["token"], case["keys"]
    use_keys(keys)
    set_now(case["now"])
    kwargs = {"legacy_path": cookie_legacy_path} if fmt == "signed_cookie" else {}
    try:
        value = VERIFIERS[fmt](params, token, keys, **kwargs)
    except signing.SignatureExpired:
        return {"ok": False, "value": None, "reason": "expired"}
    except signing.BadSignature:
        return {"ok": False, "value": None, "reason": "signature"}
    except Exception:  # noqa: BLE001 - Django lets these escape; they mean "malformed"
        return {"ok": False, "value": None, "reason": "malformed"}
    return {"ok": True, "value": value, "reason": None}


def dump_line(obj):
    """One JSON line: pure ASCII (non-ASCII as \\u escapes, so a raw U+2028 or
    U+0085 can't pass for a line break), and no NaN/Infinity (not JSON)."""
    return json.dumps(obj, ensure_ascii=True, allow_nan=False) + "\n"


def main():
    setup_django()
    out = sys.stdout.buffer
    for lineno, raw in enumerate(sys.stdin.buffer, 1):
        if not raw.strip():
            continue
        try:
            case = json.loads(raw)
            if not isinstance(case, dict):
                raise ValueError("not a JSON object")
            result = verify(case)
        except (ValueError, KeyError, TypeError) as e:
            # A broken input line is a harness bug, not a verdict: stop loudly.
            sys.stderr.write(
                "check_tokens.py: line %d: %s: %s\n" % (lineno, type(e).__name__, e)
            )
            return 2
        out.write(dump_line({"id": case.get("id"), **result}).encode("utf-8"))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
