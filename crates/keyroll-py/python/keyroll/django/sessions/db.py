"""Drop-in for ``django.contrib.sessions.backends.db``: the same table and
rows; a row verified under a non-primary key is re-signed on that read by a
conditional UPDATE (only if the row still holds what was read: a concurrent
writer — a logout that deleted it — wins; ``expire_date`` is untouched)."""

from django.contrib.sessions.backends import db
from django.db import router

from .base import HASH_SESSION_KEY, KeyrollSession


class SessionStore(KeyrollSession, db.SessionStore):
    def load(self):
        s = self._get_session_from_db()
        if not s:
            return {}
        data = self.decode(s.session_data)
        self._keyroll_write_back(s.session_data, data)
        return data

    async def aload(self):
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.load)()

    def _keyroll_write_back(self, stored, data):
        """Re-signs the row read as ``stored`` when stale; True when written."""
        before = data.get(HASH_SESSION_KEY) if isinstance(data, dict) else None
        fresh = self._keyroll_refreshed(data)
        if fresh is None:
            return False
        using = router.db_for_write(self.model)
        written = (
            self.model.objects.using(using)
            .filter(session_key=self.session_key, session_data=stored)
            .update(session_data=fresh)
        )
        if not written and before is not None:
            # Another writer won: keep the data as read.
            data[HASH_SESSION_KEY] = before
        return bool(written)
