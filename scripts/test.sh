#!/usr/bin/env bash
# The whole test suite, as CI runs it. Safe to rerun. On a fresh machine it
# installs what it needs, and says so as it does:
#   - .venv/django-5.2, .venv/django-4.2: pinned Django from PyPI (psycopg too,
#     on the first PostgreSQL end-to-end test; mysqlclient on the first MySQL one);
#   - Debian's default-libmysqlclient-dev and pkg-config (apt-get) when missing:
#     mysqlclient builds against them;
#   - Debian's chromium (apt-get, --no-install-recommends) when /usr/bin/chromium
#     is missing, and tests/browser/node_modules (npm ci): the browser test;
#   - target/tools/bin/cargo-fuzz (cargo install --root target/tools): fuzzing.
#
#   scripts/test.sh                           everything
#   KEYROLL_SKIP_BROWSER=1 scripts/test.sh    without the real-browser test (no chromium, no npm)
#   KEYROLL_SKIP_FUZZ=1 scripts/test.sh       without fuzzing (no cargo-fuzz)
#   KEYROLL_FUZZ_SECONDS=60 scripts/test.sh   longer fuzzing (default 10 s per target)
#   scripts/test.sh --summary-of LOG          only the closing line, counted from a saved cargo test log
#
# The last line is `N passed, N failed, N skipped`. Skipped: tests cargo reports
# as ignored or filtered out (a switch above), one per `SKIPPED`/`skipped:` line a
# test printed (a service or tool was missing), and each part skipped here
# (fuzzing, the build with the declared rust-version). Fuzzing and that build
# count as one test each.
set -euo pipefail
cd "$(dirname "$0")/.."

flag() { [ -n "${!1:-}" ] && [ "${!1}" != 0 ]; }

# Counts from a cargo test log, plus this script's own parts ($2 passed,
# $3 failed, $4 skipped); prints the closing line.
summary() {
    local log=$1 passed failed ignored filtered skip_lines
    passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
    failed=$(grep -Eo '; [0-9]+ failed' "$log" | awk '{s+=$2} END {print s+0}')
    ignored=$(grep -Eo '; [0-9]+ ignored' "$log" | awk '{s+=$2} END {print s+0}')
    filtered=$(grep -Eo '; [0-9]+ filtered out' "$log" | awk '{s+=$2} END {print s+0}')
    # A test that found its service missing returned early: cargo counts it as
    # passed; it printed a SKIPPED line (or `skipped:` for an opt-in test).
    skip_lines=$(grep -Ec 'SKIPPED|^skipped:' "$log" || true)
    passed=$((passed - skip_lines))
    if [ "$passed" -lt 0 ]; then passed=0; fi
    echo "$((passed + $2)) passed, $((failed + $3)) failed, $((ignored + filtered + skip_lines + $4)) skipped"
}

if [ "${1:-}" = "--summary-of" ]; then
    [ $# -eq 2 ] && [ -r "$2" ] || { echo "usage: $0 --summary-of CARGO_TEST_LOG" >&2; exit 2; }
    summary "$2" 0 0 0
    exit 0
fi
[ $# -eq 0 ] || { echo "usage: $0   (settings are environment variables; see the top of this file)" >&2; exit 2; }

mkdir -p target
log=target/test-suite.log
: > "$log"
own_passed=0 own_failed=0 own_skipped=0

step() { printf '\n==> %s\n' "$*"; }
loud_skip() { printf '\n*** SKIPPED: %s ***\n' "$*"; }

step "MySQL client library (Debian's default-libmysqlclient-dev, for mysqlclient in the Django venv)"
bash scripts/install-mysql-client.sh || echo "the Django-on-MySQL test will fail"

step "Django virtualenvs (pinned: 5.2.19, 4.2.30) in .venv/"
KEYROLL_DJANGO52_PYTHON=$(bash tests/django/setup-venv.sh 5.2 | tail -n 1)
KEYROLL_DJANGO42_PYTHON=$(bash tests/django/setup-venv.sh 4.2 | tail -n 1)
# KEYROLL_DJANGO_PYTHON: the store's opt-in test of a table Django reads and writes.
KEYROLL_DJANGO_PYTHON=${KEYROLL_DJANGO_PYTHON:-$KEYROLL_DJANGO52_PYTHON}
export KEYROLL_DJANGO52_PYTHON KEYROLL_DJANGO42_PYTHON KEYROLL_DJANGO_PYTHON
echo "5.2: $KEYROLL_DJANGO52_PYTHON"
echo "4.2: $KEYROLL_DJANGO42_PYTHON"

step "Python side self-check"
"$KEYROLL_DJANGO52_PYTHON" tests/django/selfcheck.py
"$KEYROLL_DJANGO42_PYTHON" tests/django/selfcheck.py

# --- keyroll Python/Django package (crates/keyroll-py): one test in the summary ---
step "Python/Django package: wheel (maturin, release), package tests and Django's session suite, Django 5.2 and 4.2"
set +e
bash tests/django/package/run.sh
py_status=$?
set -e
if [ "$py_status" -eq 0 ]; then
    own_passed=$((own_passed + 1))
else
    own_failed=$((own_failed + 1))
    echo "the Python/Django package tests FAILED"
fi
# --- end of the Python/Django package step ---

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

# Only a toolchain already installed: never one rustup would fetch.
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
msrv_toolchain=$(rustup toolchain list 2>/dev/null | awk -v v="$msrv" 'index($1, v "-") == 1 || index($1, v ".") == 1 { print $1; exit }' || true)
if [ -n "$msrv_toolchain" ]; then
    step "cargo +$msrv_toolchain check (the declared rust-version)"
    if cargo "+$msrv_toolchain" check --workspace --all-targets --all-features --locked; then
        own_passed=$((own_passed + 1))
    else
        own_failed=$((own_failed + 1))
        echo "the build with Rust $msrv FAILED"
    fi
else
    loud_skip "build with Rust $msrv (rust-version): that toolchain is not installed (rustup toolchain install $msrv)"
    own_skipped=$((own_skipped + 1))
fi

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

test_args=(--show-output)
if flag KEYROLL_SKIP_BROWSER; then
    # cargo counts the two browser tests as filtered out.
    loud_skip "the real-browser test (KEYROLL_SKIP_BROWSER=$KEYROLL_SKIP_BROWSER): no chromium or node modules installed"
    test_args+=(--skip browser_rotation_)
fi

step "cargo test (captured output shown, so that every SKIPPED line is seen)"
set +e
cargo test --workspace --all-features -- "${test_args[@]}" 2>&1 | tee -a "$log"
test_status=${PIPESTATUS[0]}
set -e

if flag KEYROLL_SKIP_FUZZ; then
    loud_skip "fuzzing (KEYROLL_SKIP_FUZZ=$KEYROLL_SKIP_FUZZ): no fuzz target built or run, cargo-fuzz not installed by this run"
    own_skipped=$((own_skipped + 1))
    fuzz_status=0
else
    step "fuzz targets (${KEYROLL_FUZZ_SECONDS:-10}s each)"
    set +e
    bash fuzz/run.sh "${KEYROLL_FUZZ_SECONDS:-10}"
    fuzz_status=$?
    set -e
    if [ "$fuzz_status" -eq 0 ]; then
        own_passed=$((own_passed + 1))
    else
        own_failed=$((own_failed + 1))
        echo "fuzzing FAILED"
    fi
fi

# cargo test failed without a failed test (a build error): count it as one failure.
if [ "$test_status" -ne 0 ] && ! grep -Eq '; [1-9][0-9]* failed' "$log"; then
    own_failed=$((own_failed + 1))
    echo "cargo test FAILED (exit $test_status) before any test failed"
fi
echo
summary "$log" "$own_passed" "$own_failed" "$own_skipped"
[ "$test_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ] && [ "$own_failed" -eq 0 ]
