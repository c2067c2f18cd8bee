from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import HttpResponse, JsonResponse
from django.urls import path


def plain(request):
    """Touches neither request.user nor request.session."""
    return HttpResponse("ok")


def remember(request):
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse("ok")


def sign_in(request):
    user = authenticate(request, username=request.POST["u"], password=request.POST["p"])
    if user is None:
        return HttpResponse("no", status=403)
    login(request, user)
    return HttpResponse("ok")


def sign_out(request):
    logout(request)
    return HttpResponse("ok")


def whoami(request):
    return JsonResponse(
        {
            "user": request.user.get_username() if request.user.is_authenticated else None,
            "n": request.session.get("n"),
        }
    )


def peek(request):
    """Reads request.session only (not request.user)."""
    return JsonResponse({"n": request.session.get("n")})


@login_required
def private(request):
    return HttpResponse("hello " + request.user.get_username())


urlpatterns = [
    path("accounts/login/", LoginView.as_view()),
    path("private/", private),
    path("peek/", peek),
    path("plain/", plain),
    path("remember/", remember),
    path("login/", sign_in),
    path("logout/", sign_out),
    path("whoami/", whoami),
]
