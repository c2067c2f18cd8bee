"""keyroll's Django app: add ``"keyroll.django"`` to ``INSTALLED_APPS``.

- session engines ``keyroll.django.sessions.{db,cached_db,cache,file,signed_cookies}``,
  drop-ins for Django's, that re-sign a session verified under an older key
  on the read that found it (and re-make its login hash);
- ``keyroll.django.middleware.ResignMiddleware``: makes that read happen on
  every request that carries a session cookie during a rotation, and
  re-issues stale signed-cookie sessions;
- ``KEYROLL_RING = "/path/ring.toml"``: keys from a keyroll ring file,
  followed while the workers run (``settings.SECRET_KEY`` and
  ``SECRET_KEY_FALLBACKS`` are set from it).

See docs/django.md.
"""

from .ring import current_ring, secret_key_settings

__all__ = ["current_ring", "secret_key_settings"]
