"""Drop-in for ``django.contrib.sessions.backends.file``: the same files. A
file verified under a non-primary key is re-signed on the read, only if the
file still exists and holds what was read, and keeps its modification time
(the file engine's expiry)."""

import os
import tempfile

from django.contrib.sessions.backends import file

from .base import HASH_SESSION_KEY, KeyrollSession


class SessionStore(KeyrollSession, file.SessionStore):
    def decode(self, session_data):
        data = super().decode(session_data)
        if self._keyroll_verified is not None:
            self._keyroll_read = session_data
        return data

    def load(self):
        self._keyroll_read = None
        data = super().load()
        stored = self._keyroll_read
        if data and stored and self._session_key:
            self._keyroll_write_back(stored, data)
        return data

    def _keyroll_write_back(self, stored, data):
        before = data.get(HASH_SESSION_KEY)
        fresh = self._keyroll_refreshed(data)
        if fresh is None:
            return False
        written = self._keyroll_write_back_text(stored, fresh)
        if not written and before is not None:
            data[HASH_SESSION_KEY] = before
        return written

    def _keyroll_write_back_text(self, stored, fresh):
        """Replaces the file's text ``stored`` by ``fresh``: only if the file
        still exists and holds ``stored``; its modification time is kept."""
        path = self._key_to_file()
        written = False
        try:
            st = os.stat(path)
            with open(path, encoding="ascii") as f:
                if f.read() != stored:
                    return False  # changed meanwhile: that writer wins
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + "_out_")
            try:
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(fresh)
                os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
                # The same check Django's own save makes: the file is still there.
                if os.path.exists(path):
                    os.replace(tmp, path)
                    written = True
            finally:
                if not written:
                    os.unlink(tmp)
        except OSError:
            return False
        return written
