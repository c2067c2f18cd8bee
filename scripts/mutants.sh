#!/usr/bin/env bash
# Mutation testing of keyroll's security core with cargo-mutants: every
# mutant of the named functions must make a test fail. Slow, so not part of
# scripts/test.sh or CI. Results: docs/mutation-testing.md.
#
#   scripts/mutants.sh               crypto.rs and auth.rs (the first recorded run)
#   scripts/mutants.sh PRESET        one recorded run: signer, ring, ringfile or
#                                    engine (every function of the files below;
#                                    FILES=... runs part of a preset's files)
#   scripts/mutants.sh PRESET --list only list that run's mutants (any extra
#                                    arguments go to cargo mutants)
#   FILES="crates/keyroll/src/signer.rs" RE='unsign|resign' scripts/mutants.sh
#   TESTS="--lib --test bad_input" scripts/mutants.sh   more test targets per mutant
#   PKG=keyroll-store FILES=... TESTS=... scripts/mutants.sh   another package
#   TESTS=core scripts/mutants.sh signer --re 'last_sep'   survivors again, with
#                                    the core's integration tests too (TESTS=core:
#                                    --lib and bad_input, properties,
#                                    ring_file_security, django_interop)
#
# RE is a regex over the mutant names; RE='' (a preset's default) mutates every function.
# Installs cargo-mutants once into target/tools (never the global cargo bin).
# Output: target/mutants/mutants.out/ (target/mutants/PRESET/mutants.out/ for a
# preset): caught.txt, missed.txt, unviable.txt, timeout.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/target/tools"
if ! "$tools/bin/cargo-mutants" mutants --version >/dev/null 2>&1; then
    echo "== installing cargo-mutants into $tools (once)"
    cargo install --locked --root "$tools" cargo-mutants
fi

core_tests="--lib --test bad_input --test properties --test ring_file_security --test django_interop"
preset=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    preset=$1
    shift
    case $preset in
    signer)
        FILES="crates/keyroll/src/signer.rs" RE=${RE:-}
        ;;
    ring)
        FILES="crates/keyroll/src/ring.rs" RE=${RE:-} TESTS=${TESTS:-core}
        ;;
    ringfile)
        FILES=${FILES:-"crates/keyroll/src/ringfile/ops.rs crates/keyroll/src/ringfile/files.rs crates/keyroll/src/ringfile/mod.rs"}
        RE=${RE:-} TESTS=${TESTS:-"--lib --test ring_file_security --test bad_input"}
        ;;
    engine)
        PKG=keyroll-store
        FILES=${FILES:-"crates/keyroll-store/src/engine/mod.rs crates/keyroll-store/src/engine/ring.rs crates/keyroll-store/src/engine/cache.rs crates/keyroll-store/src/engine/session.rs"}
        RE=${RE:-} TESTS=${TESTS:-"--lib --test engine --test memory --test sqlite --test engine_pins --test ring_source"}
        ;;
    *)
        echo "unknown preset $preset (signer, ring, ringfile, engine)" >&2
        exit 2
        ;;
    esac
fi

PKG=${PKG:-keyroll}
FILES=${FILES:-"crates/keyroll/src/crypto.rs crates/keyroll/src/auth.rs"}
RE=${RE-'ct_eq|find_at|live_at|judge_at|check_at|SessionAuthHash::make|derive|session_login|user_id_from|MacKey::tag'}
TESTS=${TESTS:-"--lib"}
if [ "$TESTS" = core ]; then TESTS=$core_tests; fi
out_dir=target/mutants${preset:+/$preset}

mkdir -p "$out_dir"
args=(-p "$PKG" --jobs 1 --timeout 120 --output "$out_dir")
if [ -n "$RE" ]; then args+=(--re "$RE"); fi
for f in $FILES; do args+=(--file "$f"); done
# The test targets go to every cargo invocation, so a mutant's build compiles
# only the targets that will run.
for a in $TESTS; do args+=("--cargo-arg=$a"); done

PATH="$tools/bin:$PATH" CARGO_INCREMENTAL=0 nice -n 10 \
    cargo mutants "${args[@]}" "$@" || true

case " $* " in *" --list "*) exit 0 ;; esac
out=$out_dir/mutants.out
for k in caught missed unviable timeout; do
    printf '%-9s %s\n' "$k" "$(wc -l < "$out/$k.txt" 2>/dev/null || echo 0)"
done
if [ -s "$out/missed.txt" ]; then
    echo "missed mutants (each needs a test, or a line in docs/mutation-testing.md saying why it is equivalent):"
    cat "$out/missed.txt"
fi
