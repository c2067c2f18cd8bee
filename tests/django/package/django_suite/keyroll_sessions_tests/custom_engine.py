"""An engine module for the custom-model tests: keyroll's db engine over
the suite's custom session model."""

from .tests import KeyrollCustomDatabaseSession as SessionStore  # noqa: F401
