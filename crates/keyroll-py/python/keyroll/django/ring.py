"""The ring in force: from ``settings.KEYROLL_RING`` (a keyroll ring file,
followed as it changes) or from ``SECRET_KEY`` + ``SECRET_KEY_FALLBACKS``."""

import threading
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .._keyroll import Ring, RingError, RingFile

_lock = threading.Lock()
_file = None  # (path, allow_insecure, RingFile)
_synced = None  # (generation, live key ids) last written into settings
_from_settings = None  # ((SECRET_KEY, fallbacks), Ring)
_no_ring_file = None  # the settings object (settings._wrapped) found without KEYROLL_RING


def _ring_file(path):
    global _file
    allow = bool(getattr(settings, "KEYROLL_RING_ALLOW_INSECURE", False))
    interval = float(getattr(settings, "KEYROLL_RING_CHECK_INTERVAL", 1.0))
    f = _file
    if f is not None and f[0] == str(path) and f[1] == allow:
        return f[2]
    with _lock:
        f = _file
        if f is not None and f[0] == str(path) and f[1] == allow:
            return f[2]
        try:
            rf = RingFile(str(path), allow_insecure=allow, check_interval=interval)
        except RingError as e:
            raise ImproperlyConfigured("KEYROLL_RING: %s" % e) from None
        _file = (str(path), allow, rf)
        return rf


def _sync_settings(rf, ring, now):
    """Writes the ring into ``settings.SECRET_KEY`` / ``SECRET_KEY_FALLBACKS``
    when the file was re-read or a fallback retired since the last time, so
    that everything else in Django (auth hash, reset tokens, signed cookies,
    messages) follows the ring too."""
    global _synced
    live = tuple(k[0] for k in ring.keys(now) if k[3])
    state = (rf.generation, live)
    if _synced == state:
        return
    with _lock:
        if _synced == state:
            return
        secret_key, fallbacks = ring.django_settings(now)
        settings.SECRET_KEY = secret_key
        settings.SECRET_KEY_FALLBACKS = fallbacks
        _synced = state


def _ring_path():
    """``settings.KEYROLL_RING`` or None. A setting that is absent costs an
    exception in Django's settings object (about 7 µs, several times a
    request), so its absence is remembered for that settings object;
    ``override_settings`` brings a new one, and an assignment to
    ``settings.KEYROLL_RING`` lands in its ``__dict__``."""
    global _no_ring_file
    wrapped = settings._wrapped
    if wrapped is _no_ring_file and "KEYROLL_RING" not in getattr(wrapped, "__dict__", ()):
        return None
    path = getattr(settings, "KEYROLL_RING", None)
    if not path:
        _no_ring_file = settings._wrapped
    return path


def current_ring(now=None):
    """The ``keyroll.Ring`` in force now."""
    global _from_settings
    path = _ring_path()
    if path:
        rf = _ring_file(path)
        ring = rf.current()
        _sync_settings(rf, ring, time.time() if now is None else now)
        return ring
    secret_key = settings.SECRET_KEY
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", ())
    key = (secret_key, tuple(fallbacks))
    cached = _from_settings
    if cached is not None and cached[0] == key:
        return cached[1]
    if not secret_key:
        raise ImproperlyConfigured("The SECRET_KEY setting must not be empty.")
    ring = Ring.from_django(secret_key, [str(f) for f in fallbacks])
    _from_settings = (key, ring)
    return ring


def secret_key_settings(path, allow_insecure=False):
    """``(SECRET_KEY, SECRET_KEY_FALLBACKS)`` from a ring file, for settings.py::

        SECRET_KEY, SECRET_KEY_FALLBACKS = secret_key_settings(KEYROLL_RING)
    """
    return Ring.from_file(str(path), allow_insecure=allow_insecure).django_settings()
