"""Cost as the work grows: wall time and peak memory of `numbias run` with the default
judge and its default settings (pruned trie, T = 1 and 0.7 read; greedy, expected and
protocol rules; the report written) against the number of items and their length.

Items are English sentences of MLQE-PE (en-de sources, read by path from
``../shared/data/mlqe-pe``), joined and cut to an exact number of the judge's tokens;
the rubric asks for their fluency on 0-9 (human scores: a seeded uniform draw, for the
metrics to have something to read). Each cell is one `numbias run` in a fresh
process (model load included) on a fresh store; its peak resident memory is the
process's own. The slopes are least-squares lines through the cells.

    python benchmarks/bench_growth.py [--counts 100 300 1000] [--lengths 10 100 500] [--length-items 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from numbias.backends.llamacpp import LlamaCppBackend
from numbias.models.catalog import DEFAULT_JUDGE

TEMPLATE = (
    "How fluent is this English text? Answer with one number from {lo} (not at all) to {hi} (perfectly).\n\n{text}"
)
SOURCES = Path("../shared/data/mlqe-pe/en-de/train.tsv")
CELL = """
import resource, sys, time
from numbias.cli import app
start = time.perf_counter()
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("CELL", time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def texts(judge: LlamaCppBackend, n_items: int, n_tokens: int) -> list[str]:
    """``n_items`` texts of exactly ``n_tokens`` tokens each, from consecutive sentences."""
    sentences = pd.read_csv(SOURCES, sep="\t", quoting=csv.QUOTE_NONE)["original"].tolist()
    out, k = [], 0
    while len(out) < n_items:
        tokens: list[int] = []
        while len(tokens) < n_tokens:
            tokens += judge.vocab.tokenize(sentences[k % len(sentences)] + " ")
            k += 1
        out.append("".join(judge.pieces[t] for t in tokens[:n_tokens]).strip())
    return out


def cell(items: list[str], folder: Path) -> tuple[float, float]:
    """Seconds and peak MiB of one `numbias run` over the items."""
    data = folder / "items.csv"
    human = np.random.default_rng(0).uniform(0, 9, len(items)).round(1)
    pd.DataFrame({"id": range(len(items)), "text": items, "human": human}).to_csv(data, index=False)
    args = [
        "run",
        "--data",
        str(data),
        "--template",
        TEMPLATE,
        "--human",
        "human",
        "--human-range",
        "0-9",
        "--scale",
        "0-9",
        "--id",
        "id",
        "--out",
        str(folder / "out"),
    ]
    done = subprocess.run([sys.executable, "-c", CELL, *args], capture_output=True, text=True)
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("CELL ")]
    if done.returncode or not line:
        raise SystemExit(f"numbias run failed: {done.stderr.strip().splitlines()[-1:]}")
    _, seconds, rss_kib = line[-1].split()
    return float(seconds), float(rss_kib) / 1024


def slope(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least-squares slope, intercept and R²."""
    b, a = np.polyfit(x, y, 1)
    fit = a + b * np.asarray(x)
    ss = float(((np.asarray(y) - np.mean(y)) ** 2).sum())
    return float(b), float(a), 1 - float(((np.asarray(y) - fit) ** 2).sum()) / ss if ss else 1.0


def run_axis(judge: LlamaCppBackend, name: str, cells: list[tuple[int, int]], axis: int) -> list[dict]:
    rows = []
    for n_items, n_tokens in cells:
        with tempfile.TemporaryDirectory() as tmp:
            seconds, mib = cell(texts(judge, n_items, n_tokens), Path(tmp))
        rows.append({"axis": name, "items": n_items, "tokens": n_tokens, "seconds": seconds, "peak MiB": mib})
        print(json.dumps(rows[-1]), flush=True)
    xs = [float(c[axis]) for c in cells]
    for what in ("seconds", "peak MiB"):
        b, a, r2 = slope(xs, [r[what] for r in rows])
        unit = "item" if axis == 0 else "token of item length"
        print(f"{name}: {what} = {a:.1f} + {b:.4f} per {unit} (R² {r2:.4f})")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", nargs="+", type=int, default=[100, 300, 1000])
    parser.add_argument("--count-tokens", type=int, default=10, help="item length on the count axis")
    parser.add_argument("--lengths", nargs="+", type=int, default=[10, 100, 500])
    parser.add_argument("--length-items", type=int, default=30, help="items on the length axis")
    args = parser.parse_args()
    judge = LlamaCppBackend(DEFAULT_JUDGE)
    rows = run_axis(judge, "items", [(n, args.count_tokens) for n in args.counts], 0)
    rows += run_axis(judge, "length", [(args.length_items, t) for t in args.lengths], 1)
    print(f"\n{DEFAULT_JUDGE}, `numbias run` at 0-9 (default settings), one fresh process per cell\n")
    print("| axis | items | tokens per item | wall s | s per item | peak MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['axis']} | {r['items']} | {r['tokens']} | {r['seconds']:.1f} | {r['seconds'] / r['items']:.3f} "
            f"| {r['peak MiB']:.0f} |"
        )


if __name__ == "__main__":
    main()
