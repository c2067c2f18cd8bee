#!/usr/bin/env bash
# Real-browser rotation test against a running keyroll-demo.
#
#   bash tests/browser/run.sh --url http://127.0.0.1:PORT --out DIR --mode cookie|server
#
# Installs what is missing on a fresh machine, once (tests/browser/install.sh: Debian's
# chromium and playwright-core; exit 2 when it cannot). Then runs run.mjs (arguments
# passed through). Progress and failures go to stderr; the last stdout line is the JSON
# result. Exit status is run.mjs's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

bash "$here/install.sh"

exec node "$here/run.mjs" "$@"
