#!/usr/bin/env python3
"""Generate Django-signed interop cases for keyroll, as JSON lines on stdout.

Run it with the python of a venv made by ``setup-venv.sh`` (Django 5.2 or 4.2)::

    .venv/django-5.2/bin/python tests/django/make_cases.py > cases-5.2.jsonl

Every token is made by Django (or, for the "crafted" cases, signed with
Django's own Signer over a payload we chose) under a fake clock, and every
verdict is Django's own verification of that token at ``now`` (see
check_tokens.verify, shared with check_tokens.py). The output is
deterministic: seeded random numbers, a fake clock, no dict/set ordering
surprises. The line schema is in README.md.

Case ids read ``<tag>-<format>-<nnnnn>-<description>``. Description words:
  k0 / mid / last / outsider   which key signed it: keys[0], a middle key, the
                               last key, a key not in keys (a "near" outsider
                               differs from a ring key by one character)
  tamper-<how>                 a signed token corrupted afterwards
  crafted-<what>               a payload signed as-is (the signature verifies)
  lenient-<what>               crafted, and Django still accepts it: a place
                               where Django is more permissive than a strict
                               reader (base64 junk, raw bytes in JSON, ...)
  edge-*, expired-*            max_age / timeout boundaries
"""

import argparse
import base64
import collections
import json
import os
import random
import string
import sys
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import check_tokens as harness  # noqa: E402
from check_tokens import dump_line, set_now, use_keys, verify  # noqa: E402

# Django must be configured before its signing/auth/messages modules are used.
harness.setup_django()

from django.conf import settings  # noqa: E402
from django.contrib.auth.tokens import PasswordResetTokenGenerator  # noqa: E402
from django.contrib.messages import constants as message_levels  # noqa: E402
from django.contrib.messages.storage.base import Message  # noqa: E402
from django.core import signing  # noqa: E402
from django.utils.crypto import salted_hmac  # noqa: E402
from django.utils.safestring import mark_safe  # noqa: E402

DEFAULT_SEED = "keyroll-interop-v1"

T_MIN, T_MAX = 1_500_000_000, 1_900_000_000  # 2017 .. 2030
YEAR_2100 = 4_102_444_800
YEAR_3000 = 32_503_680_000
DJANGO_RESET_EPOCH = 978_307_200  # 2001-01-01T00:00:00Z, the reset-token epoch
ALGORITHMS = ("sha256", "sha256", "sha256", "sha1", "sha512")
B64_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
B62_ALPHABET = signing.BASE62_ALPHABET

# Signer salts. None = Django's default; "" is falsy, so Django ALSO uses
# the class default for it (see README "Surprises").
SALTS = [
    None,
    None,
    None,
    "",
    "myapp.reset",
    "django.core.signing",
    "sålt-ünïcødé",
    "塩",
    "🧂 salt",
    " ",
    "-",
    "salt:with:colons",
    "x" * 150,
]
SEPARATORS = [":", ":", ":", "/", "*sep*", ",", "|", "§"]
COOKIE_NAMES = ["theme", "prefs", "sid", "__Host-sid", "__Secure-flag", "cart.v1", "a", "ab"]
COOKIE_SALTS = ["", "", "salt", "user-prefs", "sàlt", "bc", "c", "v2:"]
KEY_SALTS = [
    "salt",
    "",
    "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash",
    "django.contrib.auth.tokens.PasswordResetTokenGenerator",
    "django.core.signing.Signersigner",
    "clé-ünïcødé",
    "🔑" * 10,
    "s" * 200,
]
AUTH_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "myproject.auth.EmailBackend",
]
TEXT_ALPHABETS = [
    string.ascii_letters + string.digits,
    string.ascii_lowercase + "      ",
    "àéîõüçñßøåæœÀÉÎÕÜÇÑ",
    "漢字かなカナ中文한국어",
    "🦄🎉🔑😀🏽🇫🇷𝔘𝕏",  # all outside the BMP
    " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "\t\n\r\u00a0\u2028\u200b\u0000",
]
FIXED_STRINGS = [
    "",
    "hello",
    "foo",
    "My string",
    "café crème brûlée",
    "漢字とかな",
    "🦄🎉 non-BMP",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "a:b:c",
    "path/to/thing",
    "x*sep*y",
    "1,2,3",
    "  spaces  ",
    "tab\tnew\nline",
    'quote"back\\slash',
    "null",
    '{"json": true}',
    "ends with colon:",
    ":starts with colon",
    "=",
    "-",
    "a" * 600,
]
INTS = [0, 1, -1, 42, 2**31 - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1,
        -(2**63), -(2**63) - 1, -(2**70), 10**30, -(10**25)]
FLOATS = [0.1, 1e-7, 1e22, 1.5, -2.5, 3.141592653589793, 0.30000000000000004, 1e308,
          5e-324, 2.2250738585072014e-308, 123456789.125, 1e16, -0.0, 100.0,
          1.7976931348623157e308]


# ---------------------------------------------------------------------------
# Random material


def rand_bytes(rng, n):
    return rng.getrandbits(8 * n).to_bytes(n, "big") if n else b""


def b64e(data):
    """Django's base64: URL-safe alphabet, padding stripped."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rand_text(rng, max_len=24):
    n = rng.choice((0, 1, 3, 8, 16, max_len))
    return "".join(rng.choice(rng.choice(TEXT_ALPHABETS)) for _ in range(n))


def pick_string(rng, sep=":"):
    r = rng.random()
    if r < 0.45:
        return rng.choice(FIXED_STRINGS)
    if r < 0.6:  # contains the separator (unsign splits at the LAST one)
        return rand_text(rng) + sep + rand_text(rng)
    if r < 0.63:
        return sep * rng.randint(1, 3)
    return rand_text(rng, 40)


def rand_scalar(rng):
    k = rng.randrange(7)
    if k == 0:
        return rng.choice(INTS)
    if k == 1:
        return rng.choice(FLOATS)
    if k == 2:
        return rng.choice((True, False, None))
    if k == 3:
        return rng.randint(-1000, 10**6)
    return pick_string(rng)


def rand_json(rng, depth=0):
    r = rng.random()
    if depth >= 3 or r < 0.35:
        return rand_scalar(rng)
    if r < 0.6:
        return [rand_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {rand_text(rng, 12): rand_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def big_repetitive(rng):
    """Large and repetitive: zlib shrinks it, so compress=True really compresses."""
    n = rng.randint(20, 150)
    if rng.random() < 0.5:
        return {"field_%d" % i: "repeated value ✓ " * 3 for i in range(n)}
    return [{"id": i, "name": "same name", "tags": ["a", "b"], "ok": True} for i in range(n)]


def rand_object(rng):
    r = rng.random()
    if r < 0.15:
        return big_repetitive(rng)
    if r < 0.25:
        return rand_scalar(rng)  # top-level scalars are fine for dumps()
    if r < 0.35:
        return {"a": 1}
    return rand_json(rng)


def rand_password_hash(rng):
    def b64std(n, pad=True):
        s = base64.b64encode(rand_bytes(rng, n)).decode()
        return s if pad else s.rstrip("=")

    salt = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(22))
    k = rng.randrange(6)
    if k == 0:
        return "pbkdf2_sha256$1000000$%s$%s" % (salt, b64std(32))
    if k == 1:
        return "pbkdf2_sha256$870000$%s$%s" % (salt, b64std(32))
    if k == 2:
        return "argon2$argon2id$v=19$m=102400,t=2,p=8$%s$%s" % (b64std(16, False), b64std(32, False))
    if k == 3:
        return "bcrypt_sha256$$2b$12$" + "".join(
            rng.choice(string.ascii_letters + string.digits + "./") for _ in range(53)
        )
    if k == 4:  # set_unusable_password()
        return "!" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))
    return "pbkdf2_sha1$260000$%s$%s" % (salt, b64std(20))


def session_dict(rng, secrets):
    """A realistic session: login keys plus app data (sometimes big, to compress)."""
    if rng.random() < 0.06:
        return {}
    d = {}
    if rng.random() < 0.8:
        pw = rand_password_hash(rng)
        d["_auth_user_id"] = rng.choice(
            [str(rng.randint(1, 10**6)), str(uuid.UUID(int=rng.getrandbits(128), version=4)), "alice"]
        )
        d["_auth_user_backend"] = rng.choice(AUTH_BACKENDS)
        d["_auth_user_hash"] = salted_hmac(
            harness.AUTH_HASH_KEY_SALT, pw, rng.choice(secrets), algorithm="sha256"
        ).hexdigest()
    extras = {
        "_language": lambda: rng.choice(["en", "fr", "pt-br", "zh-hans"]),
        "django_timezone": lambda: "Europe/Paris",
        "_session_expiry": lambda: rng.choice([0, 3600, 1209600, "2031-05-06T07:08:09.123456+00:00"]),
        "cart": lambda: [
            {"sku": "SKU-%d" % i, "qty": rng.randint(1, 5), "price": "19.99", "title": pick_string(rng)}
            for i in range(rng.randint(0, 30))
        ],
        "recently_viewed": lambda: [rng.randint(1, 10**9) for _ in range(rng.randint(0, 40))],
        # The session message storage keeps its messages as a JSON string.
        "_messages": lambda: '[["__json_message",0,25,"Profil enregistré ✓"]]',
        "wizard": lambda: {"step": "2", "data": rand_json(rng)},
        "_csrftoken": lambda: "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(32)),
        "testcookie": lambda: "worked",
        "prefs": lambda: rand_json(rng),
        "big": lambda: big_repetitive(rng),
    }
    for name in rng.sample(sorted(extras), rng.randint(0, 5)):
        d[name] = extras[name]()
    return d


def rand_messages(rng):
    levels = [message_levels.DEBUG, message_levels.INFO, message_levels.SUCCESS,
              message_levels.WARNING, message_levels.ERROR, 35]
    n = rng.choice((0, 1, 1, 2, 3, 5, rng.randint(10, 60)))
    texts = ["Profile saved.", "Ünïcødé ✓ 🎉", "漢字のメッセージ", "Line\nbreak", 'He said "hi"']
    msgs = []
    for _ in range(n):
        text = rng.choice(texts) if rng.random() < 0.6 else pick_string(rng)
        if rng.random() < 0.1:
            text = mark_safe("<b>%s</b> &amp; co" % text)  # encoded with is_safedata=1
        tags = rng.choice([None, None, "", "alert-danger", "sticky ümlaut"])
        msgs.append(Message(rng.choice(levels), text, extra_tags=tags))
    if msgs and rng.random() < 0.1:
        msgs.append(harness.messages_storage().not_finished)  # the "more left" sentinel
    return msgs


def build_secrets(rng):
    django_chars = "abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)"

    def django_key(prefix=""):
        return prefix + "".join(rng.choice(django_chars) for _ in range(50))

    return [
        django_key(), django_key(), django_key(),
        django_key("django-insecure-"), django_key("django-insecure-"),
        "k", "xy", "s3",
        "predictable-secret", "django_tests_secret_key", "my-other-secret", "abcdefg",
        "clé secrète ünïcødé", "秘密の鍵🔑", "ç", "пароль-ключ",
        "x" * 64, "y" * 200,
        "".join(rng.choice(string.printable[:94] + " ") for _ in range(120)),
        "".join(rng.choice("àéîõü漢字🔑ab ") for _ in range(110)),
        " leading and trailing spaces ",
        'quote"back\\slash',
    ]


# ---------------------------------------------------------------------------
# Key rings, clocks, tampering


def pick_ring(rng, secrets):
    ring = rng.sample(secrets, rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 4)))
    if len(ring) >= 3 and rng.random() < 0.08:
        ring[-1] = ring[0]  # a duplicated key: key_index is the FIRST equal key
    return ring


def pick_signer(rng, ring, secrets):
    """(secret that signs, role word, intent) for a ring."""
    roles = ["k0"] * 4
    if len(ring) >= 2:
        roles += ["last"] * 3
    if len(ring) >= 3:
        roles += ["mid"] * 3
    roles += ["outsider"]
    role = rng.choice(roles)
    if role == "k0":
        return ring[0], role, "ok"
    if role == "last":
        return ring[-1], role, "ok"
    if role == "mid":
        return ring[rng.randrange(1, len(ring) - 1)], role, "ok"
    if rng.random() < 0.3:  # near miss of a ring key
        k = rng.choice(ring)
        for near in (k + " ", k[:-1], " " + k, k + "x"):
            if near and near not in ring:
                return near, "outsider-near", "signature"
    return rng.choice([s for s in secrets if s not in ring]), role, "signature"


def rand_time(rng):
    t = rng.uniform(T_MIN, T_MAX)
    return float(int(t)) if rng.random() < 0.3 else round(t, 3)


def timed_now(rng, ts, max_age, variant):
    """(now, intent) for a token stamped ts (whole seconds) read with max_age.

    Django expires when now - ts > max_age (floats): exactly max_age is valid.
    """
    if variant == "ok":
        if max_age is None:
            return round(ts + rng.choice((0, rng.uniform(0, 3e8), -rng.uniform(0, 1e4))), 3), "ok"
        return round(ts + rng.uniform(0, max_age * 0.99), 3), "ok"
    if variant == "expired":
        return round(ts + max_age + rng.choice((1, 2.5, rng.randint(2, 10**7))), 3), "expired"
    if variant == "edge-equal":
        return float(ts + max_age), "ok"
    if variant == "edge-over-1ms":
        return round(ts + max_age + 0.001, 3), "expired"
    if variant == "edge-under":
        return ts + max_age - 0.25, "ok"
    if variant == "before-signing":  # a client clock behind ours: Django accepts it
        return round(ts - rng.uniform(1, 1000), 3), "ok"
    raise ValueError(variant)


TIME_VARIANTS = ["expired", "edge-equal", "edge-over-1ms", "edge-under", "before-signing"]


def tamper(rng, token, sep, timestamped, payload=False):
    """A corrupted copy of a signed token, and a short name for what was done."""
    body, sig = token.rsplit(sep, 1)
    value, ts = body.rsplit(sep, 1) if timestamped else (body, None)
    kinds = ["sig-char", "sig-char", "sig-noncanonical", "sig-case", "sig-padded",
             "sig-std-alphabet", "sig-dropped", "truncate-1", "truncate-half",
             "sep-removed", "empty", "suffix", "whitespace"]
    if value:
        kinds += ["value-char", "value-char", "value-char"]
    if timestamped:
        kinds += ["ts-char", "ts-char", "ts-removed"]
    if payload:
        kinds += ["compress-flag-dropped" if value.startswith(".") else "compress-flag-added"]
    for _ in range(50):
        kind = rng.choice(kinds)
        new = _tamper(rng, kind, token, sep, body, sig, value, ts)
        if new is not None and new != token:
            return new, kind
    raise AssertionError("could not tamper with %r" % token)


def _other(rng, c, pool=B64_ALPHABET):
    return rng.choice([x for x in pool if x != c])


def _tamper(rng, kind, token, sep, body, sig, value, ts):
    if kind == "sig-char":
        i = rng.randrange(len(sig))
        return body + sep + sig[:i] + _other(rng, sig[i]) + sig[i + 1:]
    if kind == "sig-noncanonical":
        # Flip the lowest bit of the last character: only base64 padding bits
        # change, so the decoded MAC is the same. Django compares text: refused.
        c = sig[-1]
        return body + sep + sig[:-1] + B64_ALPHABET[B64_ALPHABET.index(c) ^ 1]
    if kind == "sig-case":
        letters = [i for i, c in enumerate(sig) if c.isalpha()]
        if not letters:
            return None
        i = rng.choice(letters)
        return body + sep + sig[:i] + sig[i].swapcase() + sig[i + 1:]
    if kind == "sig-padded":
        return token + "=" * ((-len(sig)) % 4 or 4)
    if kind == "sig-std-alphabet":
        return body + sep + sig.replace("-", "+").replace("_", "/")
    if kind == "sig-dropped":
        return body + sep
    if kind == "truncate-1":
        return token[:-1]
    if kind == "truncate-half":
        return token[: len(token) // 2]
    if kind == "sep-removed":
        return body + sig
    if kind == "empty":
        return ""
    if kind == "suffix":
        return token + rng.choice(["x", sep, sep + sig, "="])
    if kind == "whitespace":
        return rng.choice([token + " ", token + "\n", " " + token])
    if kind == "value-char":
        i = rng.randrange(len(value))
        new_value = value[:i] + _other(rng, value[i]) + value[i + 1:]
        return new_value + token[len(value):]
    if kind == "ts-char":
        i = rng.randrange(len(ts))
        return value + sep + ts[:i] + _other(rng, ts[i], B62_ALPHABET) + ts[i + 1:] + sep + sig
    if kind == "ts-removed":
        return value + sep + sig
    if kind == "compress-flag-dropped":
        return token[1:]
    if kind == "compress-flag-added":
        return "." + token
    raise ValueError(kind)


def sign_raw(ts_signer, body):
    """Sign ``body`` with the plain Signer inside a TimestampSigner.

    body should end in sep + timestamp: this lets us put any timestamp text we
    like under a valid signature (TimestampSigner.sign always writes its own).
    """
    inner = signing.Signer(
        key=ts_signer.key,
        fallback_keys=[],
        sep=ts_signer.sep,
        salt=ts_signer.salt,  # already resolved to the class default if falsy
        algorithm=ts_signer.algorithm,
    )
    return inner.sign(body)


def crafted_timestamps(rng, ts):
    """(name, timestamp text or None for "no timestamp field", lenient?)."""
    return rng.choice([
        ("ts-invalid-char", "!!", False),
        ("ts-empty", "", False),
        ("ts-unicode", "é", False),
        ("ts-space", " " + signing.b62_encode(ts), False),
        ("ts-missing", None, False),
        ("ts-zero", "0", True),
        ("ts-leading-zeros", "000" + signing.b62_encode(ts), True),
        ("ts-dash-only", "-", True),
        ("ts-negative", "-" + signing.b62_encode(ts), True),
        ("ts-year-3000", signing.b62_encode(YEAR_3000), True),
        ("ts-huge", signing.b62_encode(10**30), True),
    ])


def malformed_payload(rng):
    """(name, payload) that verifies but fails to load: -> "malformed"."""
    j = json.dumps(rand_json(rng) if rng.random() < 0.5 else {"a": 1}, separators=(",", ":")).encode()
    deflate = zlib.compressobj(wbits=-15)
    raw_deflate = deflate.compress(j) + deflate.flush()
    return rng.choice([
        ("b64-one-char", "a"),
        ("b64-len-5", "eyJhI"),
        ("zlib-garbage", "." + b64e(b"this is not zlib data")),
        ("zlib-truncated", "." + b64e(zlib.compress(j)[:-3])),
        ("zlib-empty", "."),
        ("zlib-raw-deflate", "." + b64e(raw_deflate)),
        ("json-invalid", b64e(b"{not json")),
        ("json-trailing-data", b64e(j + b" extra")),
        ("json-empty", ""),
        ("json-zlib-unflagged", b64e(zlib.compress(j))),
        ("json-single-quotes", b64e(b"{'a': 1}")),
        ("json-utf8-bom", b64e(b"\xef\xbb\xbf" + j)),
    ])


def lenient_payload(rng, dict_only=False):
    """(name, payload) a strict reader might refuse but Django loads fine."""
    j = b'{"key":"value","n":[1,2,3,4]}'  # 29 bytes: the last base64 char has 2 spare bits
    canonical = b64e(j)
    noncanonical = canonical[:-1] + B64_ALPHABET[B64_ALPHABET.index(canonical[-1]) ^ 1]
    assert signing.b64_decode(noncanonical.encode()) == j
    # '+' and '/' (standard alphabet) where Django writes '-' and '_'
    std_alphabet = b64e(b'{"k":"\xfb\xff\xbf~~~?>?>"}').replace("-", "+").replace("_", "/")
    assert "+" in std_alphabet and "/" in std_alphabet
    options = [
        ("b64-padded", canonical + "="),
        ("b64-noncanonical-tail", noncanonical),
        ("b64-junk-char", canonical[:5] + "!" + canonical[5:]),
        ("b64-colon-inside", canonical[:8] + ":" + canonical[8:]),
        ("b64-std-alphabet", std_alphabet),
        ("json-whitespace", b64e(b' { "a" : [ 1 , 2 ] } ')),
        ("json-duplicate-keys", b64e(b'{"a":1,"a":2}')),
        ("json-raw-utf8", b64e('{"k":"é漢🎉"}'.encode("utf-8"))),  # read as latin-1!
        ("json-raw-latin1", b64e(b'{"k":"caf\xe9"}')),
        ("json-escapes", b64e(b'{"k":"\\u00E9\\ud83c\\udf89\\/"}')),
        ("zlib-trailing-garbage", "." + b64e(zlib.compress(j) + b"garbage")),
        ("zlib-level-9", "." + b64e(zlib.compress(b"[" + b",".join([j] * 5) + b"]", 9))),
        ("zlib-not-smaller", "." + b64e(zlib.compress(b'{"a":1}'))),
    ]
    if not dict_only:
        options += [("json-null", b64e(b"null")), ("json-number", b64e(b"-0"))]
    return rng.choice(options)


# ---------------------------------------------------------------------------
# Output


class Emitter:
    """Checks each case against Django and writes it as one JSON line."""

    def __init__(self, tag, out):
        self.tag = tag
        self.out = out
        self.seq = collections.Counter()
        self.stats = collections.defaultdict(collections.Counter)

    def emit(self, fmt, desc, params, keys, token, now, secret, intent=None):
        """Record Django's verdict on a case.

        secret: the secret that signed the token (for key_index).
        intent: what the generator meant ("ok", a reason) or None for "whatever
        Django says". A mismatch is a generator bug and aborts the run.
        """
        self.seq[fmt] += 1
        case = {
            "id": "%s-%s-%05d-%s" % (self.tag, fmt, self.seq[fmt], desc),
            "format": fmt,
            "params": params,
            "keys": list(keys),
            "token": token,
            "now": float(now),
        }
        res = verify(case, cookie_legacy_path="django")
        got = "ok" if res["ok"] else res["reason"]
        if intent is not None and got != intent:
            raise AssertionError("%s: meant %s, Django says %s" % (case["id"], intent, got))
        if fmt == "signed_cookie" and params["legacy"] and harness.HAS_V2_COOKIES:
            # check_tokens.py reads legacy cookies the pre-5.2.15 way; for
            # legacy-signed tokens that must give 5.2's verdict.
            assert verify(case) == res, case["id"]
        if res["ok"]:
            if fmt == "salted_hmac":
                assert res["value"] == token, case["id"]
                expect = {"ok": True, "value": None, "key_index": 0}
            else:
                # The first key equal to the signing secret (ValueError here
                # would mean Django accepted a key we did not sign with).
                expect = {"ok": True, "value": res["value"], "key_index": keys.index(secret)}
        else:
            expect = {"ok": False, "reason": res["reason"]}
        case["expect"] = expect
        self.stats[fmt][got] += 1
        self.out.write(dump_line(case).encode("utf-8"))
        return res

    def summary(self):
        parts = []
        for fmt, c in self.stats.items():
            parts.append("%s %d (%s)" % (fmt, sum(c.values()), ", ".join("%s %d" % kv for kv in sorted(c.items()))))
        return "make_cases %s: %d cases; %s" % (
            self.tag, sum(sum(c.values()) for c in self.stats.values()), "; ".join(parts)
        )


# ---------------------------------------------------------------------------
# Generators, one per format


def gen_vectors(E):
    """Django's own test-suite vectors (FORMATS.md); asserted, then emitted."""
    for secret, alg, want in [
        ("django_tests_secret_key", "sha1", "b51a2e619c43b1ca4f91d15c57455521d71d61eb"),
        ("abcdefg", "sha1", "8bbee04ccddfa24772d1423a0ba43bd0c0e24b76"),
        ("x" * 64, "sha1", "bd3749347b412b1b0a9ea65220e55767ac8e96b0"),
        ("django_tests_secret_key", "sha256",
         "ee0bf789e4e009371a5372c90f73fcf17695a8439c9108b0480f14e347b3f9ec"),
    ]:
        params = {"key_salt": "salt", "value": "value", "algorithm": alg}
        E.emit("salted_hmac", "vector-" + alg, params, [secret], want, 0.0, secret, "ok")
    sha512 = ("Usf3uVQOZ9m6uPfVonKR-EBXjPe7bjMbp3_Fq8MfsptgkkM1ojidN0BxYaT5HAEN1VzO9_jVu7R-"
              "VkqknHYNvw")
    vectors = [
        ("predictable-secret", ":", "sha512", "hello:" + sha512),
        ("predictable-secret", "/", "sha256", "foo/jZQoX_FtSO70jX9HLRGg2A_2s4kdDBxz1QoO_OpEQb0"),
        ("predictable-secret", "*sep*", "sha256", "foo*sep*jZQoX_FtSO70jX9HLRGg2A_2s4kdDBxz1QoO_OpEQb0"),
        ("predictable-secret", ",", "sha256", "foo,jZQoX_FtSO70jX9HLRGg2A_2s4kdDBxz1QoO_OpEQb0"),
        ("my-other-secret", ":", "sha256", "My string:o3DrrsT6JRB73t-HDymfDNbTSxfMlom2d8TiUlb1hWY"),
    ]
    for secret, sep, alg, want in vectors:
        value = want.rsplit(sep, 1)[0]
        assert signing.Signer(key=secret, sep=sep, algorithm=alg).sign(value) == want, want
        params = {"salt": None, "sep": sep, "algorithm": alg}
        E.emit("signer", "vector", params, [secret], want, 0.0, secret, "ok")


def gen_salted_hmac(E, rng, secrets, n):
    for _ in range(n):
        secret = rng.choice(secrets)
        # Extra keys are present but unused: salted_hmac only takes keys[0].
        keys = [secret] + rng.sample(secrets, rng.choice((0, 0, 0, 1)))
        alg = rng.choice(("sha1", "sha256", "sha512"))
        key_salt = rng.choice(KEY_SALTS) if rng.random() < 0.6 else rand_text(rng)
        value = pick_string(rng)
        token = salted_hmac(key_salt, value, secret, algorithm=alg).hexdigest()
        params = {"key_salt": key_salt, "value": value, "algorithm": alg}
        E.emit("salted_hmac", alg, params, keys, token, rand_time(rng), secret, "ok")


def gen_signer(E, rng, secrets, n):
    for _ in range(n):
        salt, sep, alg = rng.choice(SALTS), rng.choice(SEPARATORS), rng.choice(ALGORITHMS)
        value = pick_string(rng, sep)
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        sign_salt = salt
        desc = [role, alg]
        if salt in (None, "") and rng.random() < 0.3:
            sign_salt = "" if salt is None else None  # "" and None both mean the default
            desc.append("salt-empty-is-default")
        token = signing.Signer(key=secret, fallback_keys=[], salt=sign_salt, sep=sep, algorithm=alg).sign(value)
        if rng.random() < 0.25:
            token, how = tamper(rng, token, sep, timestamped=False)
            desc.append("tamper-" + how)
            intent = None
        params = {"salt": salt, "sep": sep, "algorithm": alg}
        E.emit("signer", "-".join(desc), params, ring, token, rand_time(rng), secret, intent)


def gen_timestamp(E, rng, secrets, n):
    for _ in range(n):
        salt, sep, alg = rng.choice(SALTS), rng.choice(SEPARATORS), rng.choice(ALGORITHMS)
        value = pick_string(rng, sep)
        max_age = rng.choice((None, None, 0, 1, 60, 3600, 86400 * 14, 10**9))
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        t_sign = rand_time(rng)
        desc = [role, alg, "maxage" if max_age is not None else "nomaxage"]
        variant = "ok"
        r = rng.random()
        if r < 0.04:  # signed in the far future: fine without max_age, and with it
            t_sign = float(rng.choice((YEAR_2100, YEAR_3000)))
            desc.append("future-signed")
        elif max_age is not None and r < 0.35:
            variant = rng.choice(TIME_VARIANTS)
        ts = int(t_sign)
        now, time_intent = timed_now(rng, ts, max_age, variant)
        if variant != "ok":
            desc.append(variant)
        if intent == "ok":
            intent = time_intent
        if "future-signed" in desc:
            now = rand_time(rng)
        set_now(t_sign)
        signer = signing.TimestampSigner(key=secret, fallback_keys=[], salt=salt, sep=sep, algorithm=alg)
        token = signer.sign(value)
        r = rng.random()
        if r < 0.2:
            token, how = tamper(rng, token, sep, timestamped=True)
            desc.append("tamper-" + how)
            intent = None
        elif r < 0.27:
            name, ts_text, lenient = crafted_timestamps(rng, ts)
            body = value if ts_text is None else value + sep + ts_text
            token = sign_raw(signer, body)
            desc.append(("lenient-" if lenient else "crafted-") + name)
            intent = None
        params = {"salt": salt, "sep": sep, "algorithm": alg, "max_age": max_age}
        E.emit("timestamp", "-".join(desc), params, ring, token, now, secret, intent)


def _payload_variants(rng, desc, intent, token, ts_signer, max_age, t_sign, dict_only,
                      corrupt=True):
    """Shared by the signed-object formats: pick ``now``, maybe corrupt or craft the token.

    ts_signer signs like the format does (right key and salt), for crafted
    payloads. corrupt=False leaves the token alone. Returns (token, now,
    intent, desc) with desc extended.
    """
    ts = int(t_sign)
    variant = "ok"
    if max_age is not None and rng.random() < 0.3:
        variant = rng.choice(TIME_VARIANTS)
        desc.append(variant)
    now, time_intent = timed_now(rng, ts, max_age, variant)
    if intent == "ok":
        intent = time_intent
    r = rng.random() if corrupt else 1.0
    set_now(t_sign)
    if r < 0.14:
        token, how = tamper(rng, token, ":", timestamped=True, payload=True)
        desc.append("tamper-" + how)
        intent = None
    elif r < 0.21:
        name, payload = malformed_payload(rng)
        token = ts_signer.sign(payload)
        desc.append("crafted-" + name)
        intent = "malformed" if intent == "ok" else intent
    elif r < 0.26:
        name, payload = lenient_payload(rng, dict_only)
        token = ts_signer.sign(payload)
        desc.append("lenient-" + name)
        intent = None
    elif r < 0.30:
        name, ts_text, lenient = crafted_timestamps(rng, ts)
        payload = token.rsplit(":", 2)[0]
        token = sign_raw(ts_signer, payload if ts_text is None else payload + ":" + ts_text)
        desc.append(("lenient-" if lenient else "crafted-") + name)
        intent = None
    desc.insert(1, "compressed" if token.startswith(".") else "plain")  # the final token
    return token, now, intent, desc


def gen_object(E, rng, secrets, n):
    for _ in range(n):
        salt = rng.choice(SALTS)
        compress = rng.random() < 0.5
        max_age = rng.choice((None, None, 0, 60, 3600, 86400 * 30))
        obj = rand_object(rng)
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        t_sign = rand_time(rng)
        desc = [role]
        sign_salt = salt
        if salt in (None, "") and rng.random() < 0.1:
            # dumps(salt=None) uses "django.core.signing", dumps(salt="") the
            # TimestampSigner class default: not interchangeable.
            sign_salt = "" if salt is None else None
            desc.append("signed-salt-%s" % ("empty" if salt is None else "null"))
            intent = "signature"
        set_now(t_sign)
        kwargs = {} if sign_salt is None else {"salt": sign_salt}
        token = signing.dumps(obj, key=secret, compress=compress, **kwargs)
        ts_signer = signing.TimestampSigner(
            key=secret, fallback_keys=[], salt="django.core.signing" if salt is None else salt
        )
        token, now, intent, desc = _payload_variants(
            rng, desc, intent, token, ts_signer, max_age, t_sign, False, corrupt=sign_salt == salt
        )
        params = {"salt": salt, "compress": compress, "max_age": max_age}
        E.emit("object", "-".join(desc), params, ring, token, now, secret, intent)


def gen_db_session(E, rng, secrets, n):
    store = harness.db_session_store()
    for _ in range(n):
        data = session_dict(rng, secrets)
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        t_sign = rand_time(rng)
        desc = [role]
        set_now(t_sign)
        use_keys([secret])
        wrong = rng.random() < 0.03
        if wrong:
            # Right key, wrong salt: a signed-cookie session offered as a db row.
            token = signing.dumps(data, compress=True, salt=harness.COOKIE_SESSION_SALT)
            desc.append("wrong-salt")
            intent = "signature"
        else:
            token = store.encode(data)
        ts_signer = signing.TimestampSigner(salt=store.key_salt)  # settings: [secret]
        token, now, intent, desc = _payload_variants(
            rng, desc, intent, token, ts_signer, None, t_sign, True, corrupt=not wrong
        )
        res = E.emit("db_session", "-".join(desc), {}, ring, token, now, secret, intent)
        # SessionStore.decode() itself: the value, or {} ("Session data corrupted").
        use_keys(ring)
        set_now(now)
        assert store.decode(token) == (res["value"] if res["ok"] else {})


def gen_cookie_session(E, rng, secrets, n):
    for _ in range(n):
        data = session_dict(rng, secrets)
        max_age = rng.choice((1209600, 1209600, 3600, 86400, 60, 0, 31536000))
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        t_sign = rand_time(rng)
        desc = [role]
        set_now(t_sign)
        use_keys([secret])
        wrong = rng.random() < 0.03
        if wrong:
            token = harness.db_session_store().encode(data)  # db salt: wrong here
            desc.append("wrong-salt")
            intent = "signature"
        else:
            store = harness.cookie_session_store()
            store._session_cache = data  # what request.session holds
            token = store._get_session_key()  # what the middleware puts in the cookie
        ts_signer = signing.TimestampSigner(salt=harness.COOKIE_SESSION_SALT)
        token, now, intent, desc = _payload_variants(
            rng, desc, intent, token, ts_signer, max_age, t_sign, True, corrupt=not wrong
        )
        res = E.emit("cookie_session", "-".join(desc), {"max_age": max_age}, ring, token, now, secret, intent)
        # SessionStore.load() itself: the value, or {} (a fresh session).
        use_keys(ring)
        set_now(now)
        settings.SESSION_COOKIE_AGE = max_age
        loaded = type(harness.cookie_session_store())(session_key=token).load()
        assert loaded == (res["value"] if res["ok"] else {})


def gen_messages(E, rng, secrets, n):
    for _ in range(n):
        msgs = rand_messages(rng)
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        t_sign = rand_time(rng)
        desc = [role]
        set_now(t_sign)
        use_keys([secret])
        storage = harness.messages_storage()
        wrong = rng.random() < 0.03
        if wrong:
            # The bare secret, without the "django.http.cookies" prefix.
            token = signing.TimestampSigner(key=secret, fallback_keys=[], salt=storage.key_salt).sign_object(
                [], compress=True
            )
            desc.append("wrong-key-derivation")
            intent = "signature"
        else:
            token = storage._encode(msgs, encode_empty=True)
        token, now, intent, desc = _payload_variants(
            rng, desc, intent, token, storage.signer, None, t_sign, False, corrupt=not wrong
        )
        E.emit("messages", "-".join(desc), {}, ring, token, now, secret, intent)


def gen_signed_cookie(E, rng, secrets, n):
    for _ in range(n):
        name, salt = rng.choice(COOKIE_NAMES), rng.choice(COOKIE_SALTS)
        legacy = not harness.HAS_V2_COOKIES or rng.random() < 0.35
        value = pick_string(rng)
        max_age = rng.choice((None, None, 0, 60, 3600, 86400 * 14))
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        t_sign = rand_time(rng)
        desc = [role, "legacy" if legacy else "v2"]
        read_name, read_salt = name, salt
        r = rng.random()
        if r < 0.04:
            read_name = name + "x"
            desc.append("other-name")
            intent = "signature"
        elif r < 0.07:
            read_salt = salt + "x"
            desc.append("other-salt")
            intent = "signature"
        elif r < 0.10:
            # (a, bc) and (ab, c) share the legacy salt "abc": a legacy cookie
            # for one verifies as the other. v2 salts fix that.
            name, salt, read_name, read_salt = "a", "bc", "ab", "c"
            desc.append("salt-collision")
            intent = intent if legacy else "signature"
        set_now(t_sign)
        use_keys([secret])
        cookie_salt = name + salt if legacy else signing._cookie_signer_salt(name, salt)
        signer = signing.get_cookie_signer(salt=cookie_salt)
        if rng.random() < 0.03:
            signer = signing.TimestampSigner(key=secret, fallback_keys=[], salt=cookie_salt)
            desc.append("wrong-key-derivation")
            intent = "signature"
        token = signer.sign(value)
        ts = int(t_sign)
        variant = "ok"
        if max_age is not None and rng.random() < 0.3:
            variant = rng.choice(TIME_VARIANTS)
            desc.append(variant)
        now, time_intent = timed_now(rng, ts, max_age, variant)
        if intent == "ok":
            intent = time_intent
        r = rng.random()
        if r < 0.15:
            token, how = tamper(rng, token, ":", timestamped=True)
            desc.append("tamper-" + how)
            intent = None
        elif r < 0.2:
            crafted, ts_text, lenient = crafted_timestamps(rng, ts)
            token = sign_raw(signer, value if ts_text is None else value + ":" + ts_text)
            desc.append(("lenient-" if lenient else "crafted-") + crafted)
            intent = None
        params = {"name": read_name, "salt": read_salt, "max_age": max_age, "legacy": legacy}
        E.emit("signed_cookie", "-".join(desc), params, ring, token, now, secret, intent)


def gen_auth_hash(E, rng, secrets, n):
    for _ in range(n):
        pw = rand_password_hash(rng)
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        token = harness.auth_user(pw)._get_session_auth_hash(secret=secret)
        desc = [role]
        read_pw = pw
        r = rng.random()
        if r < 0.08:
            read_pw = rand_password_hash(rng)  # the password changed: log out
            desc.append("password-changed")
            intent = "signature"
        elif r < 0.2:
            how = rng.choice(("uppercase", "truncated", "empty", "sha1", "other-key-salt", "padded"))
            token = {
                "uppercase": token.upper(),
                "truncated": token[:-1],
                "empty": "",
                "sha1": salted_hmac(harness.AUTH_HASH_KEY_SALT, pw, secret).hexdigest(),
                "other-key-salt": salted_hmac("other", pw, secret, algorithm="sha256").hexdigest(),
                "padded": token + " ",
            }[how]
            desc.append("tamper-" + how)
            intent = "signature"
        params = {"password_hash": read_pw}
        E.emit("auth_hash", "-".join(desc), params, ring, token, rand_time(rng), secret, intent)


def gen_reset_token(E, rng, secrets, n):
    for _ in range(n):
        user = {
            "pk": rng.choice([str(rng.randint(1, 10**6)), str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                              "bob", "ünï"]),
            "password_hash": rand_password_hash(rng),
            "last_login": None,
            "email": rng.choice([None, "", "alice@example.com", "ünï@exämple.org"]),
            "timeout": rng.choice((259200, 259200, 3600, 60, 1, 0, 86400 * 7)),
        }
        if rng.random() < 0.7:
            t_login = int(rng.uniform(T_MIN, T_MAX))
            fmt = "%Y-%m-%d %H:%M:%S" + (".%f" if rng.random() < 0.4 else "")
            user["last_login"] = harness.naive_utc(t_login + rng.randrange(10**6) / 1e6).strftime(fmt)
        ring = pick_ring(rng, secrets)
        secret, role, intent = pick_signer(rng, ring, secrets)
        t_sign = rand_time(rng)
        desc = [role]
        if rng.random() < 0.03:
            t_sign = float(YEAR_2100)
            desc.append("future-signed")
        set_now(t_sign)
        generator = PasswordResetTokenGenerator()
        generator.secret = secret
        generator.secret_fallbacks = []
        token = generator.make_token(harness.ResetUser.from_params(user))
        ts_unix = DJANGO_RESET_EPOCH + generator._num_seconds(generator._now())
        timeout = user["timeout"]
        # Django compares whole seconds: int(now - 2001-01-01) - ts > timeout.
        variant = rng.choice(["ok"] * 6 + ["expired", "edge-equal", "edge-equal-plus-0.9", "edge-over-1s"])
        now, time_intent = {
            "ok": (round(ts_unix + rng.uniform(0, timeout * 0.99), 3), "ok"),
            "expired": (ts_unix + timeout + rng.randint(2, 10**6), "expired"),
            "edge-equal": (float(ts_unix + timeout), "ok"),
            "edge-equal-plus-0.9": (ts_unix + timeout + 0.9, "ok"),  # truncated to whole seconds
            "edge-over-1s": (float(ts_unix + timeout + 1), "expired"),
        }[variant]
        if "future-signed" in desc:
            now, time_intent = rand_time(rng), "ok"
        elif variant != "ok":
            desc.append(variant)
        if intent == "ok":
            intent = time_intent
        params = dict(user)
        r = rng.random()
        if r < 0.12:
            what = rng.choice(("password_hash", "last_login", "email", "pk", "last_login-microseconds"))
            if what == "last_login-microseconds" and user["last_login"] is None:
                what = "email"
            if what == "password_hash":
                params["password_hash"] = rand_password_hash(rng)
            elif what == "last_login":
                params["last_login"] = "2031-01-02 03:04:05" if user["last_login"] is None else None
            elif what == "email":
                params["email"] = "changed@example.com"
            elif what == "pk":
                params["pk"] = user["pk"] + "0"
            else:
                # Django drops microseconds: a different fraction still matches.
                params["last_login"] = user["last_login"][:19] + ".999999"
            desc.append("user-changed-" + what)
            if what != "last_login-microseconds":
                intent = "signature"
        elif r < 0.22:
            original = token
            ts_b36, mac = token.split("-")
            how = rng.choice(("mac-char", "uppercase", "extra-dash", "ts-leading-zero",
                              "ts-14-digits", "empty", "no-dash", "ts-changed"))
            token = {
                "mac-char": ts_b36 + "-" + mac[:-1] + ("0" if mac[-1] != "0" else "1"),
                "uppercase": token.upper(),
                "extra-dash": token + "-",
                "ts-leading-zero": "0" + token,
                "ts-14-digits": ts_b36.rjust(14, "0") + "-" + mac,
                "empty": "",
                "no-dash": ts_b36 + mac,
                "ts-changed": signing.b62_encode(0) + "-" + mac,
            }[how]
            if token == original:  # e.g. upper-casing an all-digit token
                how, token = "mac-char", ts_b36 + "-" + mac[:-1] + ("0" if mac[-1] != "0" else "1")
            desc.append("tamper-" + how)
            intent = "signature"
        E.emit("reset_token", "-".join(desc), params, ring, token, now, secret, intent)


# Cases per format at --scale 1.
COUNTS = {
    "salted_hmac": 400,
    "signer": 900,
    "timestamp": 1000,
    "object": 1300,
    "db_session": 600,
    "cookie_session": 600,
    "auth_hash": 400,
    "reset_token": 600,
    "signed_cookie": 900,
    "messages": 500,
}
GENERATORS = {
    "salted_hmac": gen_salted_hmac,
    "signer": gen_signer,
    "timestamp": gen_timestamp,
    "object": gen_object,
    "db_session": gen_db_session,
    "cookie_session": gen_cookie_session,
    "auth_hash": gen_auth_hash,
    "reset_token": gen_reset_token,
    "signed_cookie": gen_signed_cookie,
    "messages": gen_messages,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--django-version-tag", default=harness.django_tag(),
                        help="prefix of every case id (default: dj52 / dj42 from the running Django)")
    parser.add_argument("--seed", default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the case counts")
    args = parser.parse_args(argv)

    E = Emitter(args.django_version_tag, sys.stdout.buffer)
    secrets = build_secrets(random.Random("%s:secrets" % args.seed))
    gen_vectors(E)
    for fmt, gen in GENERATORS.items():
        # One stream per format: changing one generator leaves the others' cases alone.
        rng = random.Random("%s:%s" % (args.seed, fmt))
        gen(E, rng, secrets, max(1, round(COUNTS[fmt] * args.scale)))
    sys.stdout.buffer.flush()
    sys.stderr.write(E.summary() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
