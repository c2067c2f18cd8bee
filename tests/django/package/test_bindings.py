"""keyroll's Python bindings against Django's own signing code (no database)."""

import os
import tempfile
import time

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.backends.db import SessionStore as DjangoDB
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.test import SimpleTestCase, override_settings
from django.utils.crypto import salted_hmac

import keyroll

A = "key-A-" + "a" * 44
B = "key-B-" + "b" * 44


def ring_file(text):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "ring.toml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class Bindings(SimpleTestCase):
    def rotated(self):
        return keyroll.Ring.from_django(B, [A])

    def test_django_signer_tokens_verify_and_report_the_key(self):
        with self.settings(SECRET_KEY=A):
            token = signing.Signer(salt="s").sign("hello")
            ts_token = signing.TimestampSigner().sign("hello")
        v = self.rotated().unsign(token, salt="s")
        self.assertEqual((v.value, v.role, v.key_id), ("hello", "fallback", keyroll.key_id(A)))
        with self.settings(SECRET_KEY=B):
            self.assertEqual(signing.Signer(salt="s").unsign(v.fresh), "hello")
        v = self.rotated().unsign_timestamp(ts_token, max_age=60)
        self.assertEqual((v.value, v.stale), ("hello", True))
        with self.settings(SECRET_KEY=B):
            self.assertEqual(signing.TimestampSigner().unsign(v.fresh, max_age=60), "hello")
        # The timestamp is kept.
        self.assertEqual(v.fresh.split(":")[1], ts_token.split(":")[1])

    def test_objects_round_trip_with_django(self):
        ring = self.rotated()
        for compress in (False, True):
            obj = {"a": [1, 2, "é" * 50], "b": None}
            token = keyroll.dumps(ring, obj, salt="x", compress=compress)
            with self.settings(SECRET_KEY=B):
                self.assertEqual(signing.loads(token, salt="x"), obj)
                self.assertEqual(token, signing.dumps(obj, salt="x", compress=compress)[: len(token) - 47] + token[-47:])
            with self.settings(SECRET_KEY=A):
                old = signing.dumps(obj, salt="x", compress=compress)
            value, v = keyroll.loads(ring, old, salt="x")
            self.assertEqual((value, v.role), (obj, "fallback"))

    def test_session_rows_decode_as_django_writes_them(self):
        with self.settings(SECRET_KEY=A):
            row = DjangoDB().encode({"_auth_user_id": "7", "x": "y" * 100})
        value, v = keyroll.loads(self.rotated(), row, salt=keyroll.DB_SESSION_SALT)
        self.assertEqual(value["x"], "y" * 100)
        with self.settings(SECRET_KEY=B):
            self.assertEqual(DjangoDB().decode(v.fresh)["_auth_user_id"], "7")

    def test_errors_are_djangos_classes(self):
        ring = self.rotated()
        with self.assertRaises(signing.BadSignature):
            keyroll.loads(ring, "nope:nope:nope")
        old = keyroll.dumps(keyroll.Ring.from_django(A), "v", timestamp=int(time.time()) - 100)
        with self.assertRaises(signing.SignatureExpired):
            keyroll.loads(ring, old, max_age=10)
        self.assertIs(keyroll.BadSignature, signing.BadSignature)

    def test_login_hash_is_remade_only_for_the_current_password(self):
        class U(AbstractBaseUser):
            class Meta:
                app_label = "keyroll_tests"

        u = U(password="md5$salt$hash")
        with self.settings(SECRET_KEY=A):
            old_hash = u.get_session_auth_hash()
        v = self.rotated().judge_login_hash(old_hash, u.password)
        self.assertEqual((v.verdict, v.role), ("stale", "fallback"))
        with self.settings(SECRET_KEY=B):
            self.assertEqual(v.remade, u.get_session_auth_hash())
        self.assertEqual(self.rotated().judge_login_hash(old_hash, "md5$salt$other").verdict, "invalid")
        self.assertEqual(
            salted_hmac(
                "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash",
                u.password,
                secret=B,
                algorithm="sha256",
            ).hexdigest(),
            self.rotated().make_login_hash(u.password),
        )

    def test_signed_cookies_with_django(self):
        with self.settings(SECRET_KEY=A):
            resp = HttpResponse()
            resp.set_signed_cookie("c", "value", salt="s")
            old = resp.cookies["c"].value
        import django

        legacy = django.VERSION[:2] < (5, 2)  # 4.2 reads only the legacy salt form
        v = self.rotated().cookie_unsign("c", old, salt="s", max_age=100, legacy=legacy)
        self.assertEqual((v.value, v.role), ("value", "fallback"))
        with self.settings(SECRET_KEY=B):
            req = HttpRequest()
            req.COOKIES["c"] = v.fresh
            self.assertEqual(req.get_signed_cookie("c", salt="s", max_age=100), "value")

    def test_repr_and_errors_hold_no_secret(self):
        ring = self.rotated()
        for text in (repr(ring), repr(ring.unsign(ring.sign("x"))), str(ring.keys())):
            self.assertNotIn(A, text)
            self.assertNotIn(B, text)
        path = ring_file('[[keys]]\nrole = "primary"\nsecret = "%s"\n[[keys]]\nrole = "primary"\nsecret = "%s"\n' % (A, B))
        with self.assertRaises(keyroll.RingError) as cm:
            keyroll.Ring.from_file(path)
        self.assertNotIn(A, str(cm.exception))

    def test_a_fallback_stops_verifying_at_its_retire_after(self):
        retire = 1_900_000_000
        path = ring_file(
            '[[keys]]\nrole = "primary"\nsecret = "%s"\n\n[[keys]]\nrole = "fallback"\nsecret = "%s"\n'
            'retire_after = "2030-03-17T17:46:40Z"\n' % (B, A)
        )
        ring = keyroll.Ring.from_file(path)
        token = keyroll.Ring.from_django(A).sign("x")
        self.assertEqual(ring.unsign(token, now=retire).role, "fallback")
        with self.assertRaises(keyroll.VerifyError):
            ring.unsign(token, now=retire + 1)
        self.assertEqual(ring.django_settings(now=retire), (B, [A]))
        self.assertEqual(ring.django_settings(now=retire + 1), (B, []))

    def test_ring_file_changes_are_followed(self):
        path = ring_file('[[keys]]\nrole = "primary"\nsecret = "%s"\n' % A)
        rf = keyroll.RingFile(path, check_interval=0)
        self.assertEqual(rf.current().primary_id, keyroll.key_id(A))
        with open(path, "w") as f:
            f.write('[[keys]]\nrole = "primary"\nsecret = "%s"\n[[keys]]\nrole = "fallback"\nsecret = "%s"\n' % (B, A))
        self.assertEqual(rf.current().primary_id, keyroll.key_id(B))
        self.assertEqual(rf.generation, 2)
        with open(path, "w") as f:
            f.write("not toml [[[")
        self.assertEqual(rf.current().primary_id, keyroll.key_id(B), "a broken file keeps the last ring")
        self.assertIsNotNone(rf.last_error)
        # Checked at most once per interval.
        slow = keyroll.RingFile(ring_file('[[keys]]\nrole = "primary"\nsecret = "%s"\n' % A))
        self.assertEqual(slow.current().primary_id, keyroll.key_id(A))
