#!/usr/bin/env bash
# Real-browser rotation test of the keyroll Django package: `manage.py runserver`
# (django-admin with tests/django/package/kr_project's settings) on 127.0.0.1 with
# keys from a ring file, and Debian's headless Chromium through django.mjs.
#
#   bash tests/browser/django.sh [PYTHON]      (default: .venv/django-5.2/bin/python,
#                                               with the keyroll wheel installed by
#                                               tests/django/package/run.sh)
#
# KEYROLL_SKIP_BROWSER=1 skips it (prints SKIPPED). What is missing (Debian's chromium,
# playwright-core) is installed first by tests/browser/install.sh; a machine where that
# fails (no node, apt-get refused) fails the test.
# Run by tests/django/package/run.sh. Exit 0 on success (or skip).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ "${KEYROLL_SKIP_BROWSER:-0}" = 1 ]; then
    echo "SKIPPED: the Django real-browser test (KEYROLL_SKIP_BROWSER=1)"
    exit 0
fi
py=${1:-$root/.venv/django-5.2/bin/python}
if ! bash "$here/install.sh"; then
    echo "the Django real-browser test: chromium or playwright-core could not be installed" >&2
    exit 1
fi

work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export PYTHONPATH="$root/tests/django/package" DJANGO_SETTINGS_MODULE=kr_project.settings
export KEYROLL_TEST_SQLITE_FILE="$work/db.sqlite3" KEYROLL_TEST_RING="$work/ring.toml"
export KEYROLL_DJANGO_A="key-A-$(head -c 30 /dev/urandom | base64 | tr -d '/+=' | head -c 40)"
export KEYROLL_DJANGO_B="key-B-$(head -c 30 /dev/urandom | base64 | tr -d '/+=' | head -c 40)"
(umask 077 && printf '[[keys]]\nrole = "primary"\nsecret = "%s"\n' "$KEYROLL_DJANGO_A" > "$KEYROLL_TEST_RING")
"$py" -m django migrate -v 0
"$py" -c 'import django; django.setup(); from django.contrib.auth import get_user_model as m; m().objects.create_user("alice", password="pw-alice")'
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$py" -m django runserver --noreload "127.0.0.1:$port" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/plain/" && break
    sleep 0.2
done
export KEYROLL_DJANGO_URL="http://127.0.0.1:$port" KEYROLL_DJANGO_RING="$KEYROLL_TEST_RING"
if ! node "$here/django.mjs"; then
    tail -n 30 "$work/server.log" >&2
    exit 1
fi
