#!/usr/bin/env bash
# Mutation testing of keyroll's security core with cargo-mutants: every
# mutant of the named functions must make a test fail. Slow, so not part of
# scripts/test.sh or CI. Results: docs/mutation-testing.md.
#
#   scripts/mutants.sh               the scoped run recorded in docs/mutation-testing.md
#   FILES="crates/keyroll/src/signer.rs" RE='unsign|resign' scripts/mutants.sh
#   TESTS="--lib --test bad_input" scripts/mutants.sh   more test targets per mutant
#
# Installs cargo-mutants once into target/tools (never the global cargo bin).
# Output: target/mutants/mutants.out/ (caught.txt, missed.txt, unviable.txt, timeout.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/tools"
if ! "$tools/bin/cargo-mutants" --version >/dev/null 2>&1; then
    echo "== installing cargo-mutants into $tools (once)"
    cargo install --locked --root "$tools" cargo-mutants
fi

FILES=${FILES:-"crates/keyroll/src/crypto.rs crates/keyroll/src/auth.rs"}
RE=${RE:-'ct_eq|find_at|live_at|judge_at|check_at|SessionAuthHash::make|derive|session_login|user_id_from|MacKey::tag'}
TESTS=${TESTS:-"--lib"}

args=(-p keyroll --jobs 1 --timeout 120 --output target/mutants --re "$RE")
for f in $FILES; do args+=(--file "$f"); done

# shellcheck disable=SC2086 # TESTS is a list of cargo test arguments
PATH="$tools/bin:$PATH" CARGO_INCREMENTAL=0 nice -n 10 \
    cargo mutants "${args[@]}" -- $TESTS || true

out=target/mutants/mutants.out
for k in caught missed unviable timeout; do
    printf '%-9s %s\n' "$k" "$(wc -l < "$out/$k.txt" 2>/dev/null || echo 0)"
done
if [ -s "$out/missed.txt" ]; then
    echo "missed mutants (each needs a test, or a line in docs/mutation-testing.md saying why it is equivalent):"
    cat "$out/missed.txt"
fi
