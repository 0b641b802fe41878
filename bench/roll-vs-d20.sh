#!/usr/bin/env bash
# Throughput of `tavern roll -` against Avrae's d20 1.1.2 (Python) on the
# same file of expressions, valid and equivalent in both grammars
# (bench/expressions.txt, made by bench/gen-expressions.py).
#
# Both sides parse and roll every line and print one JSON line per
# expression (expression, total, text). Output goes to /dev/null while
# timed; a second, untimed run writes bench/out/*.jsonl and checks that
# neither side rejected a line.
#
# Environment:
#   TAVERN_BIN   use this binary instead of building target/release/tavern
#   EXPRESSIONS  expression file (default bench/expressions.txt)
#   RUNS         timed runs per side, best one counts (default 3)
#
# The goal is at least 100x d20's throughput. The expressions vary their
# numbers, so almost every line is a different expression (about 46 000 of
# 50 000): d20's LFU cache of 256 parsed expressions rarely answers, and
# tavern has no cache at all (it reads every line afresh, in one pass for
# the everyday shapes).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
exprs="${EXPRESSIONS:-$here/expressions.txt}"
runs="${RUNS:-3}"
venv="$here/.venv"
out="$here/out"
mkdir -p "$out"

if [[ -n "${TAVERN_BIN:-}" ]]; then
  tavern="$TAVERN_BIN"
else
  echo "building tavern (release)..." >&2
  (cd "$root" && cargo build --release -p tavern)
  tavern="${CARGO_TARGET_DIR:-$root/target}/release/tavern"
fi
[[ -x "$tavern" ]] || { echo "no tavern binary at $tavern" >&2; exit 1; }

if [[ ! -x "$venv/bin/python" ]]; then
  echo "creating $venv..." >&2
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import importlib.metadata as m; assert m.version("d20") == "1.1.2"' 2>/dev/null; then
  "$venv/bin/pip" install --quiet d20==1.1.2
fi
python="$venv/bin/python"
driver="$here/d20_driver.py"

lines=$(wc -l < "$exprs")
cat "$exprs" > /dev/null # warm the page cache

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

best_tavern=""
best_d20=""
best_d20_loop=""
for ((i = 1; i <= runs; i++)); do
  s=$(now)
  "$tavern" roll - --seed "$i" < "$exprs" > /dev/null
  e=$(now)
  best_tavern=$(min "$best_tavern" "$(elapsed "$s" "$e")")

  s=$(now)
  loop=$("$python" "$driver" < "$exprs" 2>&1 > /dev/null | sed -n 's/^loop_seconds=//p')
  e=$(now)
  best_d20=$(min "$best_d20" "$(elapsed "$s" "$e")")
  best_d20_loop=$(min "$best_d20_loop" "$loop")
done

# Untimed correctness check: same line count, no rejected expression.
"$tavern" roll - --seed 1 < "$exprs" > "$out/tavern.jsonl"
"$python" "$driver" < "$exprs" > "$out/d20.jsonl" 2> /dev/null
for side in tavern d20; do
  n=$(wc -l < "$out/$side.jsonl")
  bad=$(grep -c '"error"' "$out/$side.jsonl" || true)
  if [[ "$n" -ne "$lines" || "$bad" -ne 0 ]]; then
    echo "warning: $side printed $n lines for $lines expressions, $bad errors (see $out/$side.jsonl)" >&2
  fi
done

awk -v n="$lines" -v t="$best_tavern" -v d="$best_d20" -v dl="$best_d20_loop" -v runs="$runs" 'BEGIN {
  rt = n / t; rd = n / d; rdl = n / dl
  printf "expressions:          %d (best of %d runs each)\n", n, runs
  printf "tavern roll -:        %8.3f s  %12.0f expressions/s  (whole process)\n", t, rt
  printf "d20 1.1.2 (Python):   %8.3f s  %12.0f expressions/s  (whole process)\n", d, rd
  printf "d20 1.1.2, loop only: %8.3f s  %12.0f expressions/s  (no start-up or imports)\n", dl, rdl
  printf "ratio: %.1fx (whole process), %.1fx (against the d20 loop alone); goal >= 100x\n", rt / rd, rt / rdl
}'
