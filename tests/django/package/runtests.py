"""Runs the keyroll package's Django tests with the installed `keyroll`.

    python tests/django/package/runtests.py [test labels]

Exit status 0 when all pass. Prints Django's runner summary and a closing
`N passed, N failed` line.
"""

import os
import socket
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kr_project.settings")

import django  # noqa: E402
from django.test.runner import DiscoverRunner  # noqa: E402


class CountingRunner(DiscoverRunner):
    def run_suite(self, suite, **kwargs):
        result = super().run_suite(suite, **kwargs)
        self.counts = (
            result.testsRun - len(result.failures) - len(result.errors) - len(result.skipped),
            len(result.failures) + len(result.errors),
            len(result.skipped),
        )
        return result


SERVERS = {"postgres": ("PostgreSQL", 5432, "psycopg"), "mysql": ("MariaDB/MySQL", 3306, "MySQLdb")}


def server_missing():
    """With KEYROLL_TEST_DB=postgres|mysql: why that server cannot be used, or None."""
    db = os.environ.get("KEYROLL_TEST_DB", "sqlite")
    if db not in SERVERS:
        return None
    what, port, driver = SERVERS[db]
    try:
        __import__(driver)
    except ImportError as e:
        return "%s: the %s Python package is not installed (%s)" % (what, driver, e)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as e:
        return "%s on 127.0.0.1:%d is not answering (%s)" % (what, port, e)
    return None


def main(labels):
    missing = server_missing()
    if missing:
        print("SKIPPED: " + missing)
        required = os.environ.get("KEYROLL_REQUIRE_SERVICES") == "1"
        print("django %s: 0 passed, %d failed, %d skipped" % (django.get_version(), required, not required))
        return 1 if required else 0
    django.setup()
    runner = CountingRunner(verbosity=int(os.environ.get("KEYROLL_TEST_VERBOSITY", "1")))
    failures = runner.run_tests(labels or ["test_bindings", "test_rotation", "test_commands", "test_real_stores", "test_cli"])
    passed, failed, skipped = getattr(runner, "counts", (0, 1, 0))
    print("django %s: %d passed, %d failed, %d skipped" % (django.get_version(), passed, failed, skipped))
    return 1 if failures or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
