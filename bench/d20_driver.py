#!/usr/bin/env python3
"""The d20 side of roll-vs-d20.sh: parse and roll each stdin line with
Avrae's d20 and print one JSON line per expression, like `tavern roll -`.
The time spent in the loop (without interpreter start-up and imports) goes
to stderr as `loop_seconds=...`."""
import json
import sys
import time

import d20


def main():
    write = sys.stdout.write
    dumps = json.dumps
    roll = d20.roll
    start = time.perf_counter()
    for line in sys.stdin:
        expr = line.rstrip("\r\n")
        try:
            result = roll(expr)
            write(dumps({"expression": expr, "total": result.total, "text": result.result}) + "\n")
        except d20.RollError as e:
            write(dumps({"expression": expr, "error": {"message": str(e)}}) + "\n")
    sys.stdout.flush()
    print(f"loop_seconds={time.perf_counter() - start:.6f}", file=sys.stderr)


main()
