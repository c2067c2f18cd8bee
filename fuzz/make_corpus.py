#!/usr/bin/env python3
"""Writes the seed corpus of keyroll's fuzz targets (fuzz/corpus/<target>/).

Seeds are real Django-shaped tokens, signed here with Django's algorithms
(re-implemented with the standard library only, so no Django is needed) under
the secrets of the fuzz ring in fuzz/src/lib.rs, laid out as each target reads
its input: most start with a mode byte (see each target's header comment).

    python3 fuzz/make_corpus.py          # (re)writes the named seeds in fuzz/corpus/
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import zlib

PRIMARY = b"fuzz-primary-secret"
STAGED = b"fuzz-staged-secret"
OLD = b"fuzz-old-secret"
RETIRED = b"fuzz-retired-secret"
NOW = 1795867200  # 2026-11-28 12:00 UTC, keyroll_fuzz::NOW
EPOCH_2001 = 978307200

COOKIE_PREFIX = b"django.http.cookies"
OBJECT_SALT = b"django.core.signing"
TS_SALT = b"django.core.signing.TimestampSigner"
SIGNER_SALT = b"django.core.signing.Signer"
DB_SESSION_SALT = b"django.contrib.sessions.SessionStore"
COOKIE_SESSION_SALT = b"django.contrib.sessions.backends.signed_cookies"
MESSAGES_SALT = b"django.contrib.messages"
RESET_SALT = b"django.contrib.auth.tokens.PasswordResetTokenGenerator"
AUTH_SALT = b"django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash"

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def salted_hmac(key_salt, value, secret, algo=hashlib.sha256):
    key = algo(key_salt + secret).digest()
    return hmac.new(key, value, algo)


def b64e(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b62(n):
    if n == 0:
        return b"0"
    sign, n = (b"-", -n) if n < 0 else (b"", n)
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return sign + out.encode()


def b36(n):
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = B36[r] + out
        if n == 0:
            return out.encode()


def sign(value, secret, salt=SIGNER_SALT, sep=b":", algo=hashlib.sha256):
    sig = b64e(salted_hmac(salt + b"signer", value, secret, algo).digest())
    return value + sep + sig


def ts_sign(value, secret, ts, salt=TS_SALT):
    return sign(value + b":" + b62(ts), secret, salt)


def dumps(obj, secret, ts, salt=OBJECT_SALT, compress=False):
    data = json.dumps(obj, separators=(",", ":")).encode()
    dot = b""
    if compress:
        z = zlib.compress(data)
        if len(z) < len(data) - 1:
            data, dot = z, b"."
    return ts_sign(dot + b64e(data), secret, ts, salt)


def cookie(value, secret, ts, name, salt=b"", v2=True):
    if v2:
        full = b"django.http.cookies.v2:%d:" % len(salt.decode()) + salt + name
    else:
        full = name + salt
    return ts_sign(value, COOKIE_PREFIX + secret, ts, full)


def reset_token(secret, at, pk, password, last_login=b"", email=b""):
    ts = at - EPOCH_2001
    msg = pk + password + last_login + str(ts).encode() + email
    h = salted_hmac(RESET_SALT, msg, secret).hexdigest()[::2]
    return b36(ts) + b"-" + h.encode()


def auth_hash(secret, password):
    return salted_hmac(AUTH_SALT, password, secret).hexdigest().encode()


def i64(n):
    return struct.pack("<q", n)


def u32(n):
    return struct.pack("<I", n)


SESSION = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": auth_hash(PRIMARY, b"pbkdf2_sha256$870000$s$h=").decode(),
    "cart": ["caf\u00e9", 1, 2.5, None, True],
}
SESSION_JSON = json.dumps(SESSION, separators=(",", ":")).encode()


def seeds():
    m = lambda b: bytes([b])  # noqa: E731
    yield "signer_unsign", {
        "primary": m(0) + sign(b"hello", PRIMARY),
        "fallback": m(0) + sign(b"My string", OLD),
        "staged_sha512": m(0) + sign(b"hello", STAGED, algo=hashlib.sha512),
        "value": m(1) + "caf\u00e9:value".encode(),
        "other_key": m(2) + m(1) + b"value",
        "separator": m(3) + m(1) + m(1) + b"/value",
    }
    yield "timestamp_unsign", {
        "primary": m(0) + ts_sign(b"hello", PRIMARY, NOW - 60),
        "fallback_expired": m(0) + ts_sign(b"hello", OLD, NOW - 7200),
        "stamped": m(1) + b"value:" + b62(NOW),
        "timestamp": m(2) + i64(NOW) + b"value",
        "other_key": m(3) + m(0) + i64(NOW - 5) + b"v",
    }
    yield "object_loads", {
        "dumps": m(0) + dumps({"a": 1}, PRIMARY, NOW),
        "dumps_compressed_old": m(0)
        + dumps({"cart": ["x"] * 30}, OLD, NOW - 86400, compress=True),
        "messages": m(0)
        + dumps([["__json_message", 0, 20, "Saved."]], COOKIE_PREFIX + PRIMARY, NOW,
                salt=MESSAGES_SALT, compress=True),
        "payload": m(1) + b"." + b64e(zlib.compress(b'["' + b"a" * 30 + b'"]')),
        "payload_junk": m(1) + b"eyJh!!!!IjoxfQ",
        "json": m(2) + b'{"cart":[1,2,3],"u":"\\u00e9"}',
        "zlib": m(3) + zlib.compress(b'{"a":["' + b"b" * 40 + b'"]}'),
        "compress_here": m(4) + b'{"a":[{"b":null}]}',
        "value": m(5) + m(1) + b'{"k":"v","n":[1,2.5,true,-0.0,1e16]}',
    }
    yield "session_decode", {
        "db_row": m(0) + dumps(SESSION, PRIMARY, NOW - 3600, DB_SESSION_SALT, True),
        "db_row_old": m(0) + dumps(SESSION, OLD, NOW - 86400, DB_SESSION_SALT, True),
        "cookie_session": m(0)
        + dumps(SESSION, PRIMARY, NOW - 60, COOKIE_SESSION_SALT, True),
        "payload": m(1) + b64e(SESSION_JSON),
        "zlib": m(2) + zlib.compress(SESSION_JSON),
        "json": m(3) + SESSION_JSON,
        "encode": m(4) + m(1) + i64(NOW - 10) + SESSION_JSON,
    }
    yield "signed_cookie", {
        "v2": m(0) + cookie(b"dark", PRIMARY, NOW - 60, b"sessionid"),
        "legacy_old": m(0) + cookie(b"dark", OLD, NOW - 60, b"sessionid", v2=False),
        "round_trip": m(1) + m(0) + b"theme\x00salt\x00dark",
        "other_key": m(2) + m(1) + m(1) + b"theme\x00dark",
        "timestamp": m(3) + i64(NOW - 100) + b"v",
    }
    yield "reset_token", {
        "token": m(0)
        + reset_token(PRIMARY, NOW - 3600, b"1", b"pbkdf2_sha256$h")
        + b"\x00pbkdf2_sha256$h",
        "auth_hash": m(0) + auth_hash(OLD, b"pw") + b"\x00pw",
        "make": m(1) + u32(NOW - EPOCH_2001) + u32(NOW - 86400)
        + b"42\x00pbkdf2_sha256$870000$s$h=\x00a@b.c",
        "other_key": m(2) + m(0) + b"42\x00argon2$h",
        "forged_ts_i64_max": m(3) + struct.pack("<Q", 2**63 - 1) + b"42\x00h",
    }
    yield "parse_json", {
        "object": b'{"a":[1,2.5,"\\u00e9\\ud83d\\ude00"],"b":null}',
        "nested": b'{"k":{"k":{"k":[true,false,[[[]]]]}}}',
        "latin1": b'"caf\xe9"',
        "numbers": b"[0,-0,1e16,1.5e-10,123456789012345678901234567890]",
        "session": SESSION_JSON,
    }
    yield "ring_file", {
        "ring": b"""[[keys]]
role = "primary"
secret = "inline-primary-secret-0123456789abcdef"
created = "2026-11-28T12:00:00Z"
promoted_at = "2026-11-28T12:00:00Z"

[[keys]]
role = "staged"
secret = "inline-staged-secret-0123456789abcdefg"
staged_at = "2026-11-29T12:00:00Z"

[[keys]]
role = "fallback"
secret = "inline-old-secret-0123456789abcdefghij"
retire_after = "2026-12-28T12:00:00+01:00"
""",
        "env": b'[[keys]]\nrole = "primary"\nsecret_env = "SECRET_KEY"\n',
        "two_primaries": b'[[keys]]\nrole="primary"\nsecret="a"\n[[keys]]\nrole="primary"\nsecret="b"\n',
    }
    yield "base_codecs", {
        "b62": b62(NOW),
        "b62_negative": b"-z",
        "b36_max": b36(2**64 - 1),
        "b64": b64e(b"\xfb\xff\xbfabc"),
        "b64_padded": b"YWI=",
    }
    yield "store_url", {
        "memory": b"memory://",
        "sqlite": b"keyroll_session\nsqlite://x.db",
        "postgres": b"postgres://user:pw@host:5432/db?connect_timeout=2",
        "redis": b"rediss://h:6379/0",
        "bad_table": b"9table\nmemory://",
        "session_key": b"abcdefgh12345678abcdefgh12345678",
        "unknown_scheme": b"mysql://root:hunter2@db/x",
    }
    # '@' stands for a valid session cookie value and '#' for a valid signed
    # "theme" cookie; the target puts them in (see cookie_header.rs).
    yield "cookie_header", {
        "server_plain": b"\x00sessionid=@",
        "cookie_both": b"\x01sessionid=@; theme=#",
        "quoted_then_dup": b'\x00a=1; sessionid="@"\nsessionid=x',
        "first_wins": b"\x00sessionid=x; sessionid=@",
        "nonascii": b"\x01 theme = # ;sessionid=\xc3\xa9@\n\xffsessionid=@",
    }


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    for target, files in seeds():
        d = os.path.join(root, target)
        # The minimized corpus (files named by their SHA-1) stays; only the
        # named seeds are (re)written.
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    print("wrote", root)


if __name__ == "__main__":
    main()
