#!/usr/bin/env bash
# Run the cargo-fuzz targets of fuzz/ (libFuzzer) for SECONDS each, one after the other, and
# print each one's executions, exec/s, coverage and whether it crashed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default: 60 s, every target)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Each target
# runs with one job and its dictionary (fuzz/dicts/TARGET.dict); it starts from the seeds in
# fuzz/seeds/TARGET and keeps what it learns in fuzz/corpus/TARGET (not committed), so a
# second run starts where the first stopped. A crash leaves its input in
# fuzz/artifacts/TARGET/; replay it with `cargo +nightly fuzz run TARGET FILE`. Full logs go
# to fuzz/logs/TARGET.log. Exits 1 if any target crashed.
#
# Not part of .ci/run: CI has no nightly toolchain guarantee. The proptest properties in
# tests/all/fuzz.rs, src/api/sse.rs and src/chat/session_format.rs run there instead.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-60}
shift || true
if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build
mkdir -p fuzz/logs

printf '%-20s %12s %8s %8s %8s  %s\n' target executions exec/s cov ft result
crashed=0
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=("-dict=fuzz/dicts/$t.dict")
  log="fuzz/logs/$t.log"
  result=ok
  if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    result="CRASH (see $log, fuzz/artifacts/$t/)"
    crashed=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # The last status line ("#N DONE cov: C ft: F corp: …", or the last progress line).
  status=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
  printf '%-20s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit "$crashed"
