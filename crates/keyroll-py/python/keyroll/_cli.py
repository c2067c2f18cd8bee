"""The `keyroll` command that `pip install` puts on the PATH: the command line
of `crates/keyroll-cli`, run inside the extension (``keyroll --help``)."""

import signal
import sys

from ._keyroll import run_cli


def main():
    """Runs ``keyroll`` with ``sys.argv``; returns its exit status (0 ok, 1 a
    token failed or a check found a problem, 2 usage or configuration error,
    130 ``resign``/``purge`` interrupted by Ctrl-C)."""
    # As for the native binary: Ctrl-C ends the process (the default action),
    # except where the command catches it itself (`resign` and `purge` stop,
    # say what they wrote and exit 130). Python's own handler would turn it
    # into a KeyboardInterrupt only once the command had finished.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    return run_cli(sys.argv)


if __name__ == "__main__":
    sys.exit(main())
