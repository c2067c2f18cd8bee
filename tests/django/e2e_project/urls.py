"""Three tiny views: who is logged in, a session counter, a password change."""

from django.contrib.auth import update_session_auth_hash
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def whoami(request):
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous", content_type="text/plain")


def visit(request):
    """Counts visits in the session; ``?note=TEXT`` also stores a note."""
    request.session["visits"] = request.session.get("visits", 0) + 1
    note = request.GET.get("note")
    if note is not None:
        request.session["note"] = note
    return HttpResponse(str(request.session["visits"]), content_type="text/plain")


@csrf_exempt
def change_password(request):
    """What Django's PasswordChangeView does: set_password, save, keep THIS session."""
    if request.method != "POST":
        return HttpResponseBadRequest("POST only")
    if not request.user.is_authenticated:
        return HttpResponseForbidden("not logged in")
    user = request.user
    user.set_password(request.POST["new_password"])
    user.save()
    update_session_auth_hash(request, user)
    return HttpResponse("changed", content_type="text/plain")


urlpatterns = [
    path("whoami", whoami),
    path("visit", visit),
    path("change-password", change_password),
]
