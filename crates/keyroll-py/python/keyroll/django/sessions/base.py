"""What every keyroll session engine shares: decoding in Rust under the whole
ring, remembering which key verified, and the login-hash upgrade."""

import logging
import threading
import time

from ..._keyroll import VerifyError
from ...objects import dumps
from ..ring import current_ring

logger = logging.getLogger("keyroll.django")

SESSION_KEY = "_auth_user_id"
BACKEND_SESSION_KEY = "_auth_user_backend"
HASH_SESSION_KEY = "_auth_user_hash"


class _Seen:
    """A bounded set of facts already checked (per process)."""

    def __init__(self, size=10000):
        self._size = size
        self._items = set()
        self._lock = threading.Lock()

    def __contains__(self, item):
        return item in self._items

    def add(self, item):
        with self._lock:
            if len(self._items) >= self._size:
                self._items.clear()
            self._items.add(item)


# Login hashes the primary (by id) is known to have made: no user lookup again.
_current_hashes = _Seen()


class KeyrollSession:
    """Mixin placed before Django's ``SessionStore`` class."""

    #: The ``Verified`` of the last decode (None when it failed).
    _keyroll_verified = None

    def decode(self, session_data):
        self._keyroll_verified = None
        try:
            v = current_ring().loads_raw(session_data, self.key_salt, now=time.time())
        except VerifyError as e:
            if e.args and e.args[0] in ("signature", "expired"):
                logging.getLogger("django.security.SuspiciousSession").warning(
                    "Session data corrupted"
                )
            return {}
        try:
            data = self.serializer().loads(v.value)
        except Exception:
            return {}
        self._keyroll_verified = v
        return data

    def encode(self, session_dict):
        return dumps(
            current_ring(),
            session_dict,
            salt=self.key_salt,
            serializer=self.serializer,
            compress=True,
        )

    def _keyroll_encode_at(self, session_dict, timestamp):
        return dumps(
            current_ring(),
            session_dict,
            salt=self.key_salt,
            serializer=self.serializer,
            compress=True,
            timestamp=timestamp,
        )

    def _keyroll_remade_login_hash(self, data, now=None):
        """The login hash of ``data`` re-made under the primary when another
        live key made it for the user's CURRENT password; else None (current,
        no login, unknown user, or a hash that must log out: never revived)."""
        stored = data.get(HASH_SESSION_KEY) if isinstance(data, dict) else None
        if not isinstance(stored, str) or SESSION_KEY not in data:
            return None
        ring = current_ring()
        now = time.time() if now is None else now
        if not ring.rotating(now):
            return None
        fact = (ring.primary_id, stored)
        if fact in _current_hashes:
            return None
        password = self._keyroll_password_hash(data)
        if password is None:
            return None
        verdict = ring.judge_login_hash(stored, password, now=now)
        if verdict.verdict == "current":
            _current_hashes.add(fact)
            return None
        if verdict.verdict == "stale":
            return verdict.remade
        return None

    @staticmethod
    def _keyroll_password_hash(data):
        """The stored password hash of the session's user, as Django's
        ``get_user`` finds the user; None when there is none to judge by."""
        from django.conf import settings
        from django.contrib.auth import get_user_model, load_backend

        backend_path = data.get(BACKEND_SESSION_KEY)
        if backend_path not in settings.AUTHENTICATION_BACKENDS:
            return None
        try:
            user_id = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
            user = load_backend(backend_path).get_user(user_id)
        except Exception:
            logger.warning("keyroll: could not load a session's user", exc_info=True)
            return None
        if user is None or not hasattr(user, "get_session_auth_hash"):
            return None
        password = getattr(user, "password", None)
        return password if isinstance(password, str) else None

    def _keyroll_refreshed(self, data):
        """The token to store in place of the one just decoded, or None: the
        same token re-signed by the primary (its timestamp kept) when a
        non-primary key verified it; the data re-encoded with a re-made
        login hash (``data`` is updated) when the hash was stale."""
        v = self._keyroll_verified
        if v is None:
            return None
        remade = self._keyroll_remade_login_hash(data)
        if remade is not None:
            data[HASH_SESSION_KEY] = remade
            return self._keyroll_encode_at(data, v.timestamp)
        return v.fresh
