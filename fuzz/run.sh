#!/usr/bin/env bash
# Builds every keyroll fuzz target and runs each for SECONDS (default 10).
# Exits non-zero if any target crashes, hangs, or runs out of memory.
#
#   fuzz/run.sh [SECONDS]
#
# New inputs go to fuzz/work/<target>/ (ignored by git); the seed corpus in
# fuzz/corpus/<target>/ is only read. Crashes land in fuzz/artifacts/<target>/.
# Uses its own cargo-fuzz, installed once from crates.io into target/tools/ at the
# repository root (`cargo install --locked --root target/tools cargo-fuzz`), never
# into the global cargo bin. Works on stable Rust (RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass the sanitizer flags it needs): no nightly toolchain.
set -euo pipefail

secs="${1:-10}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS]   (a positive whole number, default 10)" >&2
    exit 2
fi

cd "$(dirname "$0")"
tools="$(cd .. && pwd)/target/tools"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export RUSTC_BOOTSTRAP=1

# The repository's own cargo-fuzz, called by path: a cargo-fuzz in the global
# cargo bin (which `cargo fuzz` would find first) is never used.
if ! "$tools/bin/cargo-fuzz" fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz into $tools (once; a few minutes)"
    start=$SECONDS
    cargo install --locked --root "$tools" cargo-fuzz
    echo "== cargo-fuzz installed in $((SECONDS - start)) s"
fi
fuzz() { "$tools/bin/cargo-fuzz" fuzz "$@"; }

echo "== building fuzz targets"
fuzz build

mapfile -t targets < <(fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

mkdir -p work
failed=()
printf '%-18s %12s %10s %8s %10s %8s\n' target execs exec/s corpus "peak MB" result
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "corpus/$t"
    log="work/$t.log"
    status=ok
    # The first corpus directory receives new inputs; the seeds are read only.
    if ! fuzz run "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$secs" \
        -rss_limit_mb=2048 \
        -max_len=65536 \
        -timeout=25 \
        -print_final_stats=1 \
        >"$log" 2>&1; then
        status=FAILED
        failed+=("$t")
    fi
    final_stat() { awk -v k="stat::$1:" '$1 == k { v = $2 } END { print v }' "$log"; }
    execs=$(final_stat number_of_executed_units)
    rate=$(final_stat average_exec_per_sec)
    rss=$(final_stat peak_rss_mb)
    corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -n1 | awk '{print $2}' || true)
    printf '%-18s %12s %10s %8s %10s %8s\n' "$t" "${execs:--}" "${rate:--}" "${corp:--}" "${rss:--}" "$status"
done

if [ "${#failed[@]}" -ne 0 ]; then
    for t in "${failed[@]}"; do
        echo
        echo "== $t failed; the end of fuzz/work/$t.log:"
        tail -n 40 "work/$t.log"
    done
    echo
    echo "FAILED: ${failed[*]} (reproduce from the repository root: RUSTC_BOOTSTRAP=1 target/tools/bin/cargo-fuzz fuzz run TARGET fuzz/artifacts/TARGET/FILE)" >&2
    exit 1
fi
echo "all ${#targets[@]} targets ran ${secs}s each without a crash"
