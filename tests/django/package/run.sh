#!/usr/bin/env bash
# The Python/Django package's tests: builds the `keyroll` wheel (maturin,
# release), installs it into the pinned Django venvs, and runs
#   - runtests.py: the bindings against Django's signing code, the
#     rotation scenario per session engine (with Django's engines as the
#     control), the same scenario through LoginView on real stores (Redis and
#     the file cache for the cache engine; SQLite, then PostgreSQL and MariaDB
#     in runs of their own, for the db engine), and the `keyroll` command
#     line the wheel installs;
#   - a real browser (tests/browser/django.sh: Chromium, runserver, a ring file
#     rotated under it; KEYROLL_SKIP_BROWSER=1 skips it);
#   - Django's own session test suite (tests/sessions_tests from the pinned
#     Django sdist, cached in .venv/django-src/) against keyroll's engines.
# for Django 5.2 and 4.2. Prints one `N passed, N failed` line per part and
# exits 1 when anything failed.
#
#   tests/django/package/run.sh              everything
#   KEYROLL_PY_SKIP_BUILD=1 .../run.sh       reuse the installed wheel
#
# Installs: maturin into .venv/keyroll-build (from PyPI), the wheel into
# .venv/django-5.2 and .venv/django-4.2, with the real stores' drivers
# (requirements-stores.txt: redis, psycopg; mysqlclient from
# tests/django/e2e_project/requirements-mysql.txt, which builds against the
# system's MySQL client library), Django's sdists into .venv/django-src.
# A server not answering (or a driver that did not install) prints SKIPPED,
# and fails the run under KEYROLL_REQUIRE_SERVICES=1.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"

fail=0
record() {  # record PART PASSED FAILED
    printf '%-44s %s passed, %s failed\n' "$1:" "$2" "$3"
    summary+=("$(printf '%-44s %s passed, %s failed' "$1:" "$2" "$3")")
    [ "$3" -eq 0 ] || fail=1
}
summary=()

py52=$(bash tests/django/setup-venv.sh 5.2 | tail -n 1)
py42=$(bash tests/django/setup-venv.sh 4.2 | tail -n 1)

if [ "${KEYROLL_PY_SKIP_BUILD:-0}" = 0 ]; then
    build=.venv/keyroll-build
    if ! [ -x "$build/bin/maturin" ]; then
        echo "installing maturin into $build" >&2
        python3 -m venv "$build" >&2 && "$build/bin/pip" install -q --disable-pip-version-check 'maturin>=1.5,<2' >&2 \
            || { echo "could not install maturin"; exit 1; }
    fi
    rm -rf target/wheels
    start=$(date +%s)
    if ! CARGO_INCREMENTAL=0 "$build/bin/maturin" build --release -m crates/keyroll-py/Cargo.toml -o target/wheels >target/keyroll-py-build.log 2>&1; then
        tail -n 30 target/keyroll-py-build.log
        echo "the keyroll wheel did not build"
        exit 1
    fi
    echo "wheel built in $(( $(date +%s) - start )) s: $(ls target/wheels)"
    for py in "$py52" "$py42"; do
        "$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/keyroll-*.whl || exit 1
    done
fi

# The real stores' drivers (once per venv).
for py in "$py52" "$py42"; do
    "$py" -c 'import redis, psycopg' 2>/dev/null \
        || "$py" -m pip install -q --disable-pip-version-check -r tests/django/package/requirements-stores.txt >&2 \
        || echo "redis/psycopg did not install into $py: those tests will say SKIPPED"
    "$py" -c 'import MySQLdb' 2>/dev/null \
        || "$py" -m pip install -q --disable-pip-version-check -r tests/django/e2e_project/requirements-mysql.txt >&2 \
        || echo "mysqlclient did not install into $py (no MySQL client library?): the MariaDB run will say SKIPPED"
done

package_tests() {  # package_tests PYTHON PART [runtests.py labels]; the env says which database
    local py=$1 part=$2 out line p f
    shift 2
    out=$("$py" tests/django/package/runtests.py "$@" 2>&1)
    echo "$out" | grep -E '^(SKIPPED|rotation):'
    echo "$out" | grep -vE '^(SKIPPED|rotation):' | tail -n 25
    line=$(echo "$out" | grep -E '^django [0-9.]+: [0-9]+ passed' | tail -n 1)
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/')
    record "$part" "${p:-0}" "${f:-1}"
}

# The package's own tests; then the db engine's rotation on PostgreSQL and
# MariaDB (Django's runner makes a database of the run's own and drops it).
for py in "$py52" "$py42"; do
    v=$("$py" -c 'import django; print(django.get_version())')
    package_tests "$py" "keyroll package tests, Django $v"
    KEYROLL_TEST_DB=postgres package_tests "$py" "  db engine on PostgreSQL, Django $v" test_real_stores.DbStore
    KEYROLL_TEST_DB=mysql package_tests "$py" "  db engine on MariaDB, Django $v" test_real_stores.DbStore
done

# A real browser: runserver with keys from a ring file, Chromium logs in under
# A, the ring rotates, A is dropped, still logged in (tests/browser/django.sh).
if out=$(bash tests/browser/django.sh "$py52" 2>&1); then
    echo "$out" | tail -n 4
    if echo "$out" | grep -q '^SKIPPED'; then record "real browser (Chromium), Django 5.2" 0 0; else record "real browser (Chromium), Django 5.2" 1 0; fi
else
    echo "$out" | tail -n 30
    record "real browser (Chromium), Django 5.2" 0 1
fi

# Django's own session tests against keyroll's engines.
src=.venv/django-src
mkdir -p "$src"
for py in "$py52" "$py42"; do
    v=$("$py" -c 'import django; print(django.get_version())')
    tree="$src/django-$v/tests"
    if ! [ -f "$tree/sessions_tests/tests.py" ]; then
        tarball="$src/django-$v.tar.gz"
        if ! [ -f "$tarball" ]; then
            "$py" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps "django==$v" -d "$src" >&2 \
                || { record "Django $v session suite (download)" 0 1; continue; }
        fi
        tar xzf "$tarball" -C "$src" --wildcards "django-$v/tests/*.py" "django-$v/tests/sessions_tests" "django-$v/tests/cache" \
            --exclude="django-$v/tests/*/*/*" || { record "Django $v session suite (extract)" 0 1; continue; }
    fi
    ln -sfn "$here/django_suite/keyroll_sessions_tests" "$tree/keyroll_sessions_tests"
    out=$(cd "$tree" && "$py" runtests.py keyroll_sessions_tests sessions_tests.no_clear_expired --parallel 1 -v 1 2>&1)
    echo "$out" | grep -E '^(ERROR|FAIL):|^Ran |^OK|^FAILED' | head -n 40
    ran=$(echo "$out" | sed -nE 's/^Ran ([0-9]+) tests?.*/\1/p' | tail -n 1)
    bad=$(echo "$out" | sed -nE 's/^FAILED \((.*)\)/\1/p' | grep -Eo '(failures|errors|unexpected successes)=[0-9]+' | awk -F= '{s+=$2} END {print s+0}')
    skipped=$(echo "$out" | grep -Eo 'skipped=[0-9]+' | tail -n 1 | cut -d= -f2)
    expected=$(echo "$out" | grep -Eo 'expected failures=[0-9]+' | tail -n 1 | cut -d= -f2)
    if [ -z "$ran" ]; then
        echo "$out" | tail -n 30
        record "Django $v session suite, keyroll engines" 0 1
        continue
    fi
    echo "Django $v: $ran of Django's session tests ran against keyroll's engines (${skipped:-0} skipped and ${expected:-0} expected failure(s), as Django marks them for its own engines)"
    record "Django $v session suite, keyroll engines" $(( ran - ${bad:-0} - ${skipped:-0} )) "${bad:-0}"
done

echo
printf '%s\n' "${summary[@]}"
exit "$fail"
