from django.apps import AppConfig


class KeyrollConfig(AppConfig):
    name = "keyroll.django"
    label = "keyroll"
    verbose_name = "keyroll key rotation"
    default = True

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .ring import current_ring

        # With KEYROLL_RING, this sets SECRET_KEY / SECRET_KEY_FALLBACKS from
        # the ring file before the first request.
        current_ring()
