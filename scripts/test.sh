#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what it needs on a fresh machine:
# the pinned Django virtualenvs (.venv/), cargo-fuzz. Safe to rerun.
#
#   scripts/test.sh            everything
#   KEYROLL_FUZZ_SECONDS=60 scripts/test.sh   longer fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
log=target/test-suite.log
: > "$log"

step() { printf '\n==> %s\n' "$*"; }

step "Django virtualenvs (pinned: 5.2.19, 4.2.30)"
KEYROLL_DJANGO52_PYTHON=$(bash tests/django/setup-venv.sh 5.2 | tail -n 1)
KEYROLL_DJANGO42_PYTHON=$(bash tests/django/setup-venv.sh 4.2 | tail -n 1)
export KEYROLL_DJANGO52_PYTHON KEYROLL_DJANGO42_PYTHON
echo "5.2: $KEYROLL_DJANGO52_PYTHON"
echo "4.2: $KEYROLL_DJANGO42_PYTHON"

step "Python side self-check"
"$KEYROLL_DJANGO52_PYTHON" tests/django/selfcheck.py
"$KEYROLL_DJANGO42_PYTHON" tests/django/selfcheck.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test"
set +e
cargo test --workspace --all-features 2>&1 | tee -a "$log"
test_status=${PIPESTATUS[0]}
set -e

step "fuzz targets (${KEYROLL_FUZZ_SECONDS:-10}s each)"
set +e
bash fuzz/run.sh "${KEYROLL_FUZZ_SECONDS:-10}"
fuzz_status=$?
set -e

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '; [0-9]+ failed' "$log" | awk '{s+=$2} END {print s+0}')
if [ "$fuzz_status" -ne 0 ]; then failed=$((failed + 1)); echo "fuzzing FAILED"; fi
if [ "$test_status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo
echo "$passed passed, $failed failed"
[ "$test_status" -eq 0 ] && [ "$fuzz_status" -eq 0 ]
