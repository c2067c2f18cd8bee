"""Runs the keyroll package's Django tests with the installed `keyroll`.

    python tests/django/package/runtests.py [test labels]

Exit status 0 when all pass. Prints Django's runner summary and a closing
`N passed, N failed` line.
"""

import os
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


def main(labels):
    django.setup()
    runner = CountingRunner(verbosity=int(os.environ.get("KEYROLL_TEST_VERBOSITY", "1")))
    failures = runner.run_tests(labels or ["test_bindings", "test_rotation", "test_commands"])
    passed, failed, skipped = getattr(runner, "counts", (0, 1, 0))
    print("django %s: %d passed, %d failed, %d skipped" % (django.get_version(), passed, failed, skipped))
    return 1 if failures or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
