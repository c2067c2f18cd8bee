"""``ResignMiddleware``: put it right after Django's ``SessionMiddleware``.

During a rotation (the ring has a live key besides the primary) it reads the
session of every request that carries a session cookie, after the view,
so that a stale session is re-signed even when the view never touched it;
a stale signed-cookie session is re-issued on the response with its
original timestamp and the configured cookie attributes. Outside a rotation
it does nothing but keep a ``KEYROLL_RING`` file's keys in settings.
"""

import time

from django.conf import settings
from django.utils.http import http_date

from .ring import current_ring
from .sessions.base import KeyrollSession


class ResignMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ring = current_ring()  # a changed ring file is in settings before the view
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if (
            isinstance(session, KeyrollSession)
            and settings.SESSION_COOKIE_NAME in request.COOKIES
            and response.status_code < 500
            and ring.rotating()
        ):
            self._resign(session, response)
        return response

    def _resign(self, session, response):
        accessed = session.accessed
        try:
            # Loads the session if the view did not: a stale one is re-signed now.
            session._get_session()
            self._reissue(session, response)
        finally:
            session.accessed = accessed  # no Vary: Cookie for a view that did not use it

    @staticmethod
    def _reissue(session, response):
        reissue = getattr(session, "keyroll_reissue", None)
        if not reissue or session.modified or session.is_empty():
            return  # SessionMiddleware writes a modified session itself
        if settings.SESSION_COOKIE_NAME in response.cookies:
            return
        ts = getattr(session, "keyroll_timestamp", None) or int(time.time())
        if session.get_expire_at_browser_close():
            max_age, expires = None, None
        else:
            left = ts + session._cookie_age() - time.time()
            max_age = max(0, int(min(session.get_expiry_age(), left)))
            expires = http_date(time.time() + max_age)
        response.set_cookie(
            settings.SESSION_COOKIE_NAME,
            reissue,
            max_age=max_age,
            expires=expires,
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=settings.SESSION_COOKIE_SECURE or None,
            httponly=settings.SESSION_COOKIE_HTTPONLY or None,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
        session.keyroll_reissue = None
