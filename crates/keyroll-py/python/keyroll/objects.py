"""``signing.dumps`` / ``signing.loads`` over a keyroll ring.

The serializer runs in Python (so a custom one works, as in Django); the
signature, base64 and zlib run in Rust on ``loads``.
"""

import base64
import json
import zlib

from ._keyroll import OBJECT_SALT, VerifyError
from .errors import signing_error

_json_loads = json.loads


class JSONSerializer:
    """Django's ``django.core.signing.JSONSerializer``."""

    def dumps(self, obj):
        return json.dumps(obj, separators=(",", ":")).encode("latin-1")

    def loads(self, data):
        return json.loads(data.decode("latin-1"))


def dumps(ring, obj, salt=OBJECT_SALT, serializer=JSONSerializer, compress=False, timestamp=None):
    """``django.core.signing.dumps(obj, salt=salt, compress=compress)`` signed by
    the ring's primary key; ``timestamp`` (Unix seconds) defaults to now."""
    data = serializer().dumps(obj)
    is_compressed = False
    if compress:
        compressed = zlib.compress(data)
        if len(compressed) < (len(data) - 1):
            data = compressed
            is_compressed = True
    payload = base64.urlsafe_b64encode(data).strip(b"=").decode()
    if is_compressed:
        payload = "." + payload
    return ring.sign_timestamp(payload, salt=salt, timestamp=timestamp)


def loads(ring, token, salt=OBJECT_SALT, serializer=JSONSerializer, max_age=None, now=None):
    """``django.core.signing.loads`` under every live key of the ring.

    Returns ``(value, verified)``: ``verified.key_id`` / ``.role`` say which
    key matched, ``verified.fresh`` is the token re-signed by the primary
    (same timestamp) when it was stale. Raises Django's ``BadSignature`` /
    ``SignatureExpired`` (keyroll's own without Django).
    """
    if max_age is not None and hasattr(max_age, "total_seconds"):
        max_age = max_age.total_seconds()
    try:
        v = ring.loads_raw(token, salt, max_age=max_age, now=now)
    except VerifyError as e:
        raise signing_error(e) from None
    if serializer is JSONSerializer:  # the same as JSONSerializer().loads, one call less
        return _json_loads(v.value.decode("latin-1")), v
    return serializer().loads(v.value), v
