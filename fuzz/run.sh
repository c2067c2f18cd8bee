#!/usr/bin/env bash
# Builds every keyroll fuzz target and runs each for SECONDS (default 10).
# Exits non-zero if any target crashes, hangs, or runs out of memory.
#
#   fuzz/run.sh [SECONDS]
#
# New inputs go to fuzz/work/<target>/ (ignored by git); the seed corpus in
# fuzz/corpus/<target>/ is only read. Crashes land in fuzz/artifacts/<target>/.
# Installs cargo-fuzz when missing. Works on stable Rust (RUSTC_BOOTSTRAP=1
# lets cargo-fuzz pass the sanitizer flags it needs).
set -euo pipefail

secs="${1:-10}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS]   (a positive whole number, default 10)" >&2
    exit 2
fi

cd "$(dirname "$0")"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building fuzz targets"
cargo fuzz build

mapfile -t targets < <(cargo fuzz list)
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
    if ! cargo fuzz run "$t" "work/$t" "corpus/$t" -- \
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
    echo "FAILED: ${failed[*]} (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/FILE)" >&2
    exit 1
fi
echo "all ${#targets[@]} targets ran ${secs}s each without a crash"
