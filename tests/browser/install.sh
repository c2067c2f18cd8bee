#!/usr/bin/env bash
# Installs what the real-browser tests need on a fresh machine, once:
#   - Debian's chromium (/usr/bin/chromium) via apt-get; Playwright never downloads a browser;
#   - tests/browser/node_modules via `npm ci` (playwright-core, pinned in package-lock.json).
#
#   bash tests/browser/install.sh
#
# Used by tests/browser/run.sh (the keyroll-demo browser test) and tests/browser/django.sh
# (the Django package's). Exit 0 when both are in place, 2 when they cannot be installed
# (no node, or apt-get failed: its output goes to stderr).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if ! command -v node >/dev/null 2>&1; then
  echo "[install.sh] node is not installed (Node >= 20 and npm are needed)" >&2
  exit 2
fi

# One installer at a time (several test processes may start at once).
exec 9>"${TMPDIR:-/tmp}/keyroll-browser-install.lock"
flock 9

if [ ! -x /usr/bin/chromium ]; then
  echo "[install.sh] /usr/bin/chromium missing: installing Debian's chromium (takes a while)" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  start=$SECONDS
  apt_log="$(mktemp)"
  if ! { "${sudo[@]}" apt-get update -q -o DPkg::Lock::Timeout=600 \
      && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 chromium; } >"$apt_log" 2>&1 \
    || [ ! -x /usr/bin/chromium ]; then
    tail -n 40 "$apt_log" >&2
    rm -f "$apt_log"
    echo "[install.sh] installing chromium failed (apt-get output above)" >&2
    exit 2
  fi
  rm -f "$apt_log"
  echo "[install.sh] chromium installed in $((SECONDS - start)) s" >&2
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f "$here/node_modules/playwright-core/package.json" ] \
  || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  echo "[install.sh] npm ci in $here" >&2
  start=$SECONDS
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "[install.sh] node modules installed in $((SECONDS - start)) s" >&2
fi

flock -u 9
exec 9>&-

