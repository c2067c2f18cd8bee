"""Drop-in for ``django.contrib.sessions.backends.signed_cookies``: the same
cookie. A cookie verified under a non-primary key (or with a login hash
made under one) is re-issued on the same response, keeping its original
timestamp, by ``keyroll.django.middleware.ResignMiddleware``."""

import time

from django.conf import settings
from django.contrib.sessions.backends import signed_cookies

from ..._keyroll import COOKIE_SESSION_SALT
from ...objects import dumps
from ..ring import current_ring
from .base import HASH_SESSION_KEY, KeyrollSession


class SessionStore(KeyrollSession, signed_cookies.SessionStore):
    #: The value to re-issue the cookie with, set by load().
    keyroll_reissue = None
    #: The signing time of the cookie that was read.
    keyroll_timestamp = None

    def _cookie_age(self):
        getter = getattr(self, "get_session_cookie_age", None)
        return getter() if getter else settings.SESSION_COOKIE_AGE

    def load(self):
        self.keyroll_reissue = None
        try:
            v = current_ring().loads_raw(
                self.session_key or "",
                COOKIE_SESSION_SALT,
                max_age=self._cookie_age(),
                now=time.time(),
            )
            data = self.serializer().loads(v.value)
        except Exception:
            self.create()
            return {}
        self._keyroll_verified = v
        self.keyroll_timestamp = v.timestamp
        if isinstance(data, dict):
            remade = self._keyroll_remade_login_hash(data)
            if remade is not None:
                data[HASH_SESSION_KEY] = remade
                self.keyroll_reissue = dumps(
                    current_ring(),
                    data,
                    salt=COOKIE_SESSION_SALT,
                    serializer=self.serializer,
                    compress=True,
                    timestamp=v.timestamp,
                )
                return data
        self.keyroll_reissue = v.fresh
        return data

    def _get_session_key(self):
        return dumps(
            current_ring(),
            self._session,
            salt=COOKIE_SESSION_SALT,
            serializer=self.serializer,
            compress=True,
        )
