"""System checks: the middleware a signed-cookie engine needs."""

from django.conf import settings
from django.core import checks

MIDDLEWARE = "keyroll.django.middleware.ResignMiddleware"


@checks.register(checks.Tags.security)
def resign_middleware(app_configs, **kwargs):
    engine = getattr(settings, "SESSION_ENGINE", "")
    if not engine.startswith("keyroll.django.sessions."):
        return []
    mw = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE in mw:
        session_mw = "django.contrib.sessions.middleware.SessionMiddleware"
        if session_mw in mw and mw.index(MIDDLEWARE) < mw.index(session_mw):
            return [
                checks.Error(
                    "%s must come after SessionMiddleware in MIDDLEWARE." % MIDDLEWARE,
                    id="keyroll.E001",
                )
            ]
        return []
    return [
        checks.Warning(
            "%s is not in MIDDLEWARE: a session is re-signed only when a view "
            "reads it, and a stale signed-cookie session is never re-issued." % MIDDLEWARE,
            hint="Add it right after django.contrib.sessions.middleware.SessionMiddleware.",
            id="keyroll.W001",
        )
    ]
