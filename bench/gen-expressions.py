#!/usr/bin/env python3
"""Writes bench/expressions.txt: realistic rolls that mean the same thing in
Tavern's grammar and in Avrae's d20 (no `/` and no `d%`, whose meanings
differ; `eN` and `roN` only where both agree). Deterministic: the same seed gives the same file.

The shapes are everyday rolls; the numbers in them (modifiers, bonuses) vary
over a wide range so that almost every line is a different expression and no
parse cache (d20 keeps one of 256 entries) can answer most of them.

usage: gen-expressions.py [LINES] > expressions.txt
"""
import random
import sys

rng = random.Random(20261123)
mod = lambda: rng.randint(0, 99_999)
sides = lambda: rng.choice([4, 6, 8, 10, 12])

TEMPLATES = [
    (30, lambda: f"1d20+{mod()}"),
    (6, lambda: f"1d20-{mod()}"),
    (4, lambda: "1d20"),
    (2, lambda: "d20"),
    (6, lambda: f"2d20kh1+{mod()}"),
    (4, lambda: f"2d20kl1+{mod()}"),
    (5, lambda: f"4d6kh3+{mod()}"),
    (10, lambda: f"{rng.randint(1, 10)}d6+{mod()}"),
    (12, lambda: f"{rng.randint(1, 4)}d{sides()}+{mod()}"),
    (4, lambda: f"1d8+1d6+{mod()}"),
    (3, lambda: f"(1d4+{mod()})*{rng.randint(2, 3)}"),
    (3, lambda: f"1d12+{rng.randint(1, 4)}d6+{mod()}"),
    (2, lambda: f"1d100+{mod()}"),
    (2, lambda: f"2d6ro<3+{mod()}"),
    (2, lambda: f"{rng.randint(2, 8)}d6e6+{mod()}"),
    (2, lambda: f"{rng.randint(1, 3)}d10rr1+{mod()}"),
    (1, lambda: f"4d8mi2+{mod()}"),
    (1, lambda: f"1d20 [attack] + {mod()}"),
    (2, lambda: f"2d6 + 1d4 [fire] + {mod()}"),
    (1, lambda: f"(1d20, 1d20)kh1 + {mod()}"),
    (2, lambda: f"1d20+1d4+{mod()}"),
    (1, lambda: f"3d6*{rng.randint(2, 9)}+{mod()}"),
    (1, lambda: f"-1d4+{mod()}"),
    (1, lambda: f"8d6+{mod()}"),
    (1, lambda: f"10d10+{mod()}"),
]

def main():
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    weights = [w for w, _ in TEMPLATES]
    makers = [m for _, m in TEMPLATES]
    out = sys.stdout
    for _ in range(lines):
        out.write(rng.choices(makers, weights)[0]() + "\n")

main()
