"""Drop-in for ``django.contrib.sessions.backends.cache``: the same cache keys
and values. The stored dict is not signed, but its login hash is: one made
under a non-primary key is re-made (for the user's current password) on the
read and written back if the entry is still what was read."""

import time
import uuid

from django.contrib.sessions.backends import cache

from .base import HASH_SESSION_KEY, KeyrollSession


class SessionStore(KeyrollSession, cache.SessionStore):
    def load(self):
        data = super().load()
        if data and self._session_key:
            self._keyroll_write_back(data)
        return data

    async def aload(self):
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.load)()

    def _keyroll_lock(self, key):
        """A short lock shared by this engine's writers (``cache.add``)."""
        lock_key = key + ":keyroll-lock"
        token = uuid.uuid4().hex
        for _ in range(100):
            if self._cache.add(lock_key, token, 10):
                return lock_key, token
            time.sleep(0.005)
        return None

    def _keyroll_unlock(self, lock):
        if lock is not None and self._cache.get(lock[0]) == lock[1]:
            self._cache.delete(lock[0])

    def _keyroll_write_back(self, data):
        remade = self._keyroll_remade_login_hash(data)
        if remade is None:
            return False
        key = self.cache_key
        lock = self._keyroll_lock(key)
        if lock is None:
            return False
        try:
            if self._cache.get(key) != data:
                return False  # changed or deleted meanwhile: that writer wins
            updated = dict(data)
            updated[HASH_SESSION_KEY] = remade
            expiry = self.get_expiry_age(expiry=data.get("_session_expiry"))
            self._cache.set(key, updated, expiry)
        finally:
            self._keyroll_unlock(lock)
        data[HASH_SESSION_KEY] = remade
        return True

    def save(self, must_create=False):
        if self.session_key is None or must_create:
            return super().save(must_create)
        lock = self._keyroll_lock(self.cache_key)
        try:
            return super().save(must_create)
        finally:
            self._keyroll_unlock(lock)

    def delete(self, session_key=None):
        key = session_key or self.session_key
        if key is None:
            return super().delete(session_key)
        lock = self._keyroll_lock(self.cache_key_prefix + key)
        try:
            return super().delete(session_key)
        finally:
            self._keyroll_unlock(lock)
