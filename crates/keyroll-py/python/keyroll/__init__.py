"""keyroll: rotate the secret key that signs Django's sessions, cookies and
tokens without logging anyone out.

The core (verification, decoding, re-signing) is Rust (``keyroll._keyroll``);
this package adds Django's serializers and a Django app, ``keyroll.django``.

>>> import keyroll
>>> old = keyroll.Ring.from_django("old-secret")
>>> token = keyroll.dumps(old, {"cart": [1, 2]})
>>> ring = keyroll.Ring.from_django("new-secret", ["old-secret"])
>>> value, v = keyroll.loads(ring, token)
>>> value, v.role, v.stale
({'cart': [1, 2]}, 'fallback', True)
"""

from ._keyroll import (
    COOKIE_SESSION_SALT,
    DB_SESSION_SALT,
    OBJECT_SALT,
    LoginVerdict,
    Ring,
    RingError,
    RingFile,
    Verified,
    VerifyError,
    key_id,
)
from .errors import signing_error
from .objects import JSONSerializer, dumps, loads

__all__ = [
    "COOKIE_SESSION_SALT",
    "DB_SESSION_SALT",
    "OBJECT_SALT",
    "JSONSerializer",
    "LoginVerdict",
    "Ring",
    "RingError",
    "RingFile",
    "Verified",
    "VerifyError",
    "dumps",
    "key_id",
    "loads",
    "signing_error",
    "BadSignature",
    "SignatureExpired",
]


def __getattr__(name):
    # Django's classes when Django is installed, keyroll's own otherwise;
    # resolved on first use so that importing keyroll never imports Django.
    if name in ("BadSignature", "SignatureExpired"):
        from . import errors

        return getattr(errors.classes(), name)
    raise AttributeError(name)
