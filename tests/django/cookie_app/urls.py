"""Two views over the session: set a key, read them all (JSON both ways)."""

import json

from django.http import HttpResponseBadRequest, JsonResponse
from django.urls import path


def session_json(request):
    return JsonResponse(dict(request.session.items()))


def set_value(request):
    """``GET /set?k=KEY&v=VALUE``: stores VALUE under KEY and returns the session.

    VALUE is parsed as JSON when it is JSON (``v=42`` is an int, ``v={"a":[1]}``
    an object, ``v="42"`` a string); anything else is stored as the raw string.
    """
    key = request.GET.get("k")
    raw = request.GET.get("v")
    if key is None or raw is None:
        return HttpResponseBadRequest("need k and v")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    request.session[key] = value
    return session_json(request)


def get_values(request):
    """``GET /get``: the whole session as a JSON object."""
    return session_json(request)


urlpatterns = [
    path("set", set_value),
    path("get", get_values),
]
