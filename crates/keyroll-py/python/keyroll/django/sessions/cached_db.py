"""Drop-in for ``django.contrib.sessions.backends.cached_db``: the same table,
cache keys and values. A row verified under a non-primary key is re-signed
on the read (conditional UPDATE, as the ``db`` engine), also when the cache
answered: during a rotation a cache hit checks the row once per process."""

from django.contrib.sessions.backends import cached_db
from django.utils import timezone

from .base import _Seen
from .db import SessionStore as DBStore
from ..ring import current_ring

# (session key, primary id) whose row is known to be signed by that primary.
_fresh_rows = _Seen()


class SessionStore(DBStore, cached_db.SessionStore):
    cache_key_prefix = cached_db.KEY_PREFIX

    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception:
            data = None
        if data is None:
            s = self._get_session_from_db()
            if s:
                data = self.decode(s.session_data)
                self._keyroll_write_back(s.session_data, data)
                self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=s.expire_date))
            else:
                data = {}
            return data
        return self._keyroll_check_row(data)

    def _keyroll_check_row(self, cached):
        """On a cache hit during a rotation: re-sign the row behind it if stale."""
        ring = current_ring()
        if not ring.rotating():
            return cached
        fact = (self.session_key, ring.primary_id)
        if fact in _fresh_rows:
            return cached
        row = (
            self.model.objects.filter(session_key=self.session_key, expire_date__gt=timezone.now())
            .values_list("session_data", "expire_date")
            .first()
        )
        if row is None:
            return cached
        stored, expire_date = row
        data = self.decode(stored)
        if self._keyroll_verified is None:
            return cached
        if self._keyroll_write_back(stored, data):
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=expire_date))
            cached = data
        else:
            _fresh_rows.add(fact)
        return cached

