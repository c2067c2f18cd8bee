"""``manage.py keyroll census|resign|doctor``.

- ``census``: per key id, the stored sessions that still need it — by
  signature, or by login hash (made under it for the user's current
  password) — and those no live key verifies;
- ``resign``: re-signs every stale stored session under the primary (by
  signature, and its login hash), each by a conditional write (a session
  changed or deleted meanwhile is left alone and counted as a conflict);
- ``doctor``: configuration mistakes (exit 1 on an error) and what a
  rotation does here to sessions, login hashes, reset tokens, signed
  cookies and messages.

census and resign walk the ``db``/``cached_db`` table or the ``file``
engine's directory; the ``cache`` and ``signed_cookies`` engines cannot be
enumerated (their sessions are re-made when they are read).
"""

import os
import time
from collections import Counter
from importlib import import_module

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import router
from django.utils import timezone

from ...._keyroll import VerifyError
from ...ring import current_ring
from ...sessions.base import HASH_SESSION_KEY, SESSION_KEY

OURS = "keyroll.django.sessions."
STOCK = "django.contrib.sessions.backends."


def engine_name():
    engine = settings.SESSION_ENGINE
    for prefix in (OURS, STOCK):
        if engine.startswith(prefix):
            return engine[len(prefix):]
    return None


def keyroll_store_class():
    """keyroll's SessionStore for the configured engine (ours or Django's)."""
    name = engine_name()
    if name not in ("db", "cached_db", "file"):
        return None
    return import_module(OURS + name).SessionStore


def stored_sessions(store_class, batch=2000):
    """(session_key, stored text) of every live stored session."""
    name = engine_name()
    if name in ("db", "cached_db"):
        model = store_class.get_model_class()
        qs = model.objects.filter(expire_date__gt=timezone.now()).values_list("session_key", "session_data")
        yield from qs.iterator(chunk_size=batch)
    else:
        path = store_class._get_storage_path()
        prefix = settings.SESSION_COOKIE_NAME
        # The file engine's default expiry: modified more than SESSION_COOKIE_AGE ago.
        oldest = time.time() - settings.SESSION_COOKIE_AGE
        for entry in os.scandir(path):
            if (
                entry.name.startswith(prefix)
                and "_out_" not in entry.name
                and entry.is_file()
                and entry.stat().st_mtime > oldest
            ):
                try:
                    with open(entry.path, encoding="ascii") as f:
                        text = f.read()
                except (OSError, UnicodeDecodeError):
                    continue
                if text:
                    yield entry.name[len(prefix):], text


class Command(BaseCommand):
    help = "keyroll: census and bulk re-sign of stored sessions, and a configuration doctor."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("census", help="sessions per key id (by signature or login hash)")
        sub.add_parser("resign", help="re-sign every stale stored session under the primary")
        sub.add_parser("doctor", help="configuration mistakes and what a rotation does here")

    def handle(self, *args, **options):
        action = options["action"]
        if action == "doctor":
            return self.doctor()
        store_class = keyroll_store_class()
        if store_class is None:
            raise CommandError(
                "SESSION_ENGINE %r cannot be enumerated: the cache and signed_cookies "
                "engines' sessions are re-made when they are read (keep the old key as a "
                "fallback for SESSION_COOKIE_AGE)" % settings.SESSION_ENGINE
            )
        if action == "census":
            return self.census(store_class)
        return self.resign(store_class)

    def census(self, store_class):
        ring = current_ring()
        now = time.time()
        by_signature, by_hash, needs = Counter(), Counter(), Counter()
        total = unverifiable = 0
        for key, text in stored_sessions(store_class):
            total += 1
            store = store_class(key)
            try:
                v = ring.unsign_timestamp(text, salt=store.key_salt, now=now)
            except VerifyError:
                unverifiable += 1
                continue
            by_signature[v.key_id] += 1
            stale_keys = {v.key_id} if v.stale else set()
            data = store.decode(text)
            stored = data.get(HASH_SESSION_KEY)
            if isinstance(stored, str) and SESSION_KEY in data:
                password = store._keyroll_password_hash(data)
                if password is not None:
                    verdict = ring.judge_login_hash(stored, password, now=now)
                    if verdict.key_id:
                        by_hash[verdict.key_id] += 1
                        if verdict.verdict == "stale":
                            stale_keys.add(verdict.key_id)
            for k in stale_keys:
                needs[k] += 1
        self.stdout.write("sessions: %d (live)" % total)
        self.stdout.write("%-10s %-9s %10s %10s %10s" % ("key", "role", "signature", "login", "needs it"))
        for key_id, role, _retire, live in ring.keys(now):
            self.stdout.write(
                "%-10s %-9s %10d %10d %10d%s"
                % (key_id, role, by_signature[key_id], by_hash[key_id], needs[key_id], "" if live else "  (retired)")
            )
        self.stdout.write("unverifiable: %d" % unverifiable)
        stale = sum(needs.values())
        self.stdout.write(
            "stale sessions: %d%s" % (stale, " (run `manage.py keyroll resign`)" if stale else "; nothing depends on a non-primary key")
        )

    def resign(self, store_class):
        ring = current_ring()
        counts = Counter()
        file_engine = engine_name() == "file"
        for key, text in stored_sessions(store_class):
            store = store_class(key)
            data = store.decode(text)
            v = store._keyroll_verified
            if v is None:
                counts["unverifiable"] += 1
                continue
            before = data.get(HASH_SESSION_KEY) if isinstance(data, dict) else None
            fresh = store._keyroll_refreshed(data)
            if fresh is None:
                counts["already-current"] += 1
                continue
            if file_engine:
                written = store._keyroll_write_back_text(text, fresh)
            else:
                model = store.model
                written = (
                    model.objects.using(router.db_for_write(model))
                    .filter(session_key=key, session_data=text)
                    .update(session_data=fresh)
                )
                if written and hasattr(store, "_cache"):
                    store._cache.delete(store.cache_key_prefix + key)
            if not written:
                counts["conflicts"] += 1
            elif data.get(HASH_SESSION_KEY) != before:
                counts["auth-rehashed"] += 1
            else:
                counts["resigned"] += 1
        self.stdout.write(
            "resigned %d, auth-rehashed %d, already-current %d, unverifiable %d, conflicts %d (primary %s)"
            % (
                counts["resigned"],
                counts["auth-rehashed"],
                counts["already-current"],
                counts["unverifiable"],
                counts["conflicts"],
                ring.primary_id,
            )
        )

    def doctor(self):
        from ...doctor import diagnose

        errors = 0
        for level, text in diagnose():
            if level == "error":
                errors += 1
            style = {"error": self.style.ERROR, "warning": self.style.WARNING}.get(level, str)
            self.stdout.write(style("%-7s %s" % (level + ":", text)))
        if errors:
            raise CommandError("%d error(s)" % errors, returncode=1)
