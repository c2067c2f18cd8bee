"""Verification errors as Django's ``django.core.signing`` classes.

The Rust core raises ``keyroll.VerifyError`` whose ``args[0]`` is a reason
(``signature``, ``expired``, ``malformed``, ``too-large``). The public
functions of this package re-raise it as ``django.core.signing.BadSignature``
or ``SignatureExpired`` when Django is installed (imported lazily, at the
first error), and as keyroll's own classes of the same names otherwise.
Messages never hold a secret or the token.
"""


class _OwnBadSignature(Exception):
    """Signature does not match (Django is not installed)."""


class _OwnSignatureExpired(_OwnBadSignature):
    """Signature timestamp is older than max_age (Django is not installed)."""


class _Classes:
    BadSignature = _OwnBadSignature
    SignatureExpired = _OwnSignatureExpired


_resolved = None


def classes():
    """The error classes in use: Django's, or keyroll's own without Django."""
    global _resolved
    if _resolved is None:
        try:
            from django.core import signing
        except ImportError:
            _resolved = _Classes
        else:

            class _Django:
                BadSignature = signing.BadSignature
                SignatureExpired = signing.SignatureExpired

            _resolved = _Django
    return _resolved


def signing_error(exc):
    """The Django-style exception for a ``keyroll.VerifyError``."""
    reason = exc.args[0] if exc.args else "signature"
    c = classes()
    if reason == "expired":
        return c.SignatureExpired("Signature age exceeds max_age")
    if reason == "signature":
        return c.BadSignature("Signature does not match")
    return c.BadSignature("Signed value could not be decoded (%s)" % reason)
