#!/usr/bin/env bash
# Runs fastipc's fuzz targets (fuzz/, docs/fuzzing.md) for a given time each, then the wire
# fuzzer (tests/test_wire_fuzz.py) for a given number of streams per backend.
#
#   benches/fuzz.sh [--seconds N] [--runs N] [--wire-examples N] [--smoke] [TARGET...]
#
#   --seconds N        time per cargo-fuzz target (default 60)
#   --runs N           stop a target after N executions instead (-runs=N), within --seconds
#   --wire-examples N  hostile streams per backend for the wire fuzzer (default 2000; 0: skip it)
#   --plain-build      build with plain cargo even where cargo-fuzz is installed
#   --smoke            CI's short run: 10 s per target, no wire run (the test suite runs it);
#                      skipped, with the reason, where the nightly toolchain is missing
#   TARGET...          frame recvbuf addr ancillary auth (default: all)
#
# Needs the nightly toolchain (rustup toolchain install nightly). The targets are built with
# `cargo fuzz build` when cargo-fuzz is installed, else with plain cargo and the flags it would
# pass (no address sanitizer then): installing cargo-fuzz costs minutes, the build does not need it.
# Each target prints its executions and the findings (crash inputs go to fuzz/artifacts/TARGET/);
# the script exits non-zero if any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
runs=
wire=2000
smoke=false
plain=false
targets=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --wire-examples) wire=$2; shift 2 ;;
        --plain-build) plain=true; shift ;;
        --smoke) smoke=true; seconds=10; wire=0; shift ;;
        -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=(frame recvbuf addr ancillary auth)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly Rust toolchain here (rustup toolchain install nightly)"
    $smoke && exit 0
    exit 1
fi

triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
# cargo (and cargo-fuzz) put the binaries under CARGO_TARGET_DIR when it is set.
bin_dir=${CARGO_TARGET_DIR:-fuzz/target}/$triple/release
start=$(date +%s)
if ! $plain && cargo fuzz --version >/dev/null 2>&1; then
    for t in "${targets[@]}"; do cargo +nightly fuzz build "$t"; done
else
    # What cargo-fuzz passes (sanitizer coverage for libFuzzer, checks on), without ASan.
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions \
-Coverflow-checks" \
        cargo +nightly build --release --locked --manifest-path fuzz/Cargo.toml \
        --target "$triple" "${targets[@]/#/--bin=}"
fi
echo "fuzz: built ${targets[*]} in $(($(date +%s) - start)) s"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=$(mktemp)
    args=(-max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/")
    [[ -n $runs ]] && args+=(-runs="$runs")
    if "$bin_dir/$t" "${args[@]}" "fuzz/corpus/$t" >"$log" 2>&1; then
        status=ok
    else
        status=FOUND
        failed+=("$t")
        grep -E "panicked|SUMMARY|Test unit written" "$log" >&2 || tail -20 "$log" >&2
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    printf 'fuzz: %-10s %-6s %12s executions  %8s exec/s  %s\n' "$t" "$status" "${execs:-?}" \
        "${rate:-?}" "${cov:-}"
    rm -f "$log"
done

if [[ $wire -gt 0 ]]; then
    python=${PYTHON:-python3}
    start=$(date +%s)
    FASTIPC_WIRE_FUZZ_EXAMPLES=$wire "$python" -m pytest -q -p no:cacheprovider \
        tests/test_wire_fuzz.py -k hostile || failed+=(wire)
    echo "fuzz: wire fuzzer, $wire streams per backend, $(($(date +%s) - start)) s"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: findings in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: no findings"
