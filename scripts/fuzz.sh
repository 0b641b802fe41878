#!/usr/bin/env bash
# Runs every cargo-fuzz target of the workspace for SECONDS each (default 60), one after
# the other, with the nightly toolchain; installs cargo-fuzz if it is missing.
#
#   scripts/fuzz.sh [SECONDS] [FILTER...]
#
# FILTER picks targets by `crate/target` substring (`scripts/fuzz.sh 600 dice/odds`).
# The fuzz crates live next to the crates they fuzz (`crates/<crate>/fuzz`), each its own
# workspace, so the main workspace and CI never build them. Per target:
# - corpus: `crates/<crate>/fuzz/corpus/<target>` (not in git; it grows run after run),
#   started from the seeds in `crates/<crate>/fuzz/seeds/<target>` when there are any;
# - dictionary: `fuzz/<target>.dict`, else `fuzz/<crate>.dict`, when present;
# - crashes: `crates/<crate>/fuzz/artifacts/<target>/`; reproduce one with
#   `cd crates/<crate> && cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>`;
# - log: `$FUZZ_LOG_DIR/<crate>-<target>.log` (default `target/fuzz-logs`).
# Every input has a time budget (`FUZZ_TIMEOUT` seconds, default 10): an input that takes
# longer is reported as a timeout, like a crash. At the end a table gives each target's
# executions, coverage and crashes; the script fails if any target crashed.
#
# Environment: FUZZ_TIMEOUT (per input, s), FUZZ_MAX_LEN (bytes, default 1024),
# FUZZ_RSS_MB (default 2048), FUZZ_SANITIZER (none | address, default none: the fuzzed
# code is safe Rust, and without ASan it runs several times faster), FUZZ_NICE (default
# 10: other builds keep the cores), FUZZ_TARGET_DIR (default target/fuzz), FUZZ_KEEP_GOING
# (1: libFuzzer's fork mode, which keeps fuzzing after a crash, timeout or out-of-memory
# and saves each, so one long run collects every finding), FUZZ_ARGS (more libFuzzer
# flags).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

SECONDS_EACH="${1:-60}"
shift || true
FILTERS=("$@")
case "$SECONDS_EACH" in
  '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not \`$SECONDS_EACH\`" >&2; exit 2 ;;
esac

TIMEOUT="${FUZZ_TIMEOUT:-10}"
MAX_LEN="${FUZZ_MAX_LEN:-1024}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
SANITIZER="${FUZZ_SANITIZER:-none}"
NICE="${FUZZ_NICE:-10}"
TARGET_DIR="${FUZZ_TARGET_DIR:-$ROOT/target/fuzz}"
LOG_DIR="${FUZZ_LOG_DIR:-$ROOT/target/fuzz-logs}"
read -r -a EXTRA <<<"${FUZZ_ARGS:-}"
if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
  EXTRA+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# Every `crate/target` pair: crates/<crate>/fuzz with its [[bin]] targets.
targets=()
for manifest in crates/*/fuzz/Cargo.toml; do
  crate_dir="$(dirname "$(dirname "$manifest")")"
  crate="$(basename "$crate_dir")"
  while read -r target; do
    [ -n "$target" ] && targets+=("$crate/$target")
  done < <(cd "$crate_dir" && cargo +nightly fuzz list 2>/dev/null)
done

selected=()
for t in "${targets[@]}"; do
  if [ ${#FILTERS[@]} -eq 0 ]; then
    selected+=("$t")
  else
    for f in "${FILTERS[@]}"; do
      if [[ "$t" == *"$f"* ]]; then selected+=("$t"); break; fi
    done
  fi
done
if [ ${#selected[@]} -eq 0 ]; then
  echo "fuzz.sh: no target matches ${FILTERS[*]:-(none found)}; targets: ${targets[*]:-none}" >&2
  exit 2
fi

# Files in a directory (0 when it does not exist).
count_files() {
  if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi
}

mkdir -p "$LOG_DIR"
summary=()
failed=0
for t in "${selected[@]}"; do
  crate="${t%%/*}"
  target="${t#*/}"
  fuzz_dir="$ROOT/crates/$crate/fuzz"
  corpus="$fuzz_dir/corpus/$target"
  mkdir -p "$corpus"
  dirs=("$corpus")
  [ -d "$fuzz_dir/seeds/$target" ] && dirs+=("$fuzz_dir/seeds/$target")
  dict=()
  for d in "$fuzz_dir/$target.dict" "$fuzz_dir/$crate.dict"; do
    if [ -f "$d" ]; then dict=("-dict=$d"); break; fi
  done
  before=$(count_files "$fuzz_dir/artifacts/$target")
  log="$LOG_DIR/$crate-$target.log"
  echo "==> $t: ${SECONDS_EACH}s (log: ${log#"$ROOT"/})"
  status=0
  (
    cd "$ROOT/crates/$crate"
    nice -n "$NICE" cargo +nightly fuzz run --sanitizer "$SANITIZER" --debug-assertions \
      --target-dir "$TARGET_DIR" "$target" "${dirs[@]}" -- \
      -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -max_len="$MAX_LEN" \
      -rss_limit_mb="$RSS_MB" -print_final_stats=1 "${dict[@]}" "${EXTRA[@]}"
  ) >"$log" 2>&1 || status=$?
  after=$(count_files "$fuzz_dir/artifacts/$target")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
  # Fork mode prints no final stats: its last `#N:` line counts the executions.
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9][0-9]*:' "$log" | tail -n 1 | tr -dc '0-9' || true)
  cov=$(grep -o 'cov: [0-9][0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || true)
  features=$(grep -o 'ft: [0-9][0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || true)
  crashes=$((after - before))
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "    $t stopped with status $status; the end of its log:"
    tail -n 30 "$log" | sed 's/^/    /'
  fi
  summary+=("$(printf '%-26s %14s %8s %8s %8s %7s' "$t" "${execs:-?}" "${cov:-?}" "${features:-?}" "$crashes" "$status")")
done

echo
printf '%-26s %14s %8s %8s %8s %7s\n' target executions coverage features crashes status
printf '%s\n' "${summary[@]}"
exit "$failed"
