"""Throughput of scoring, as ratios: worker processes against one process, idle and
beside a busy core, and the order items are scored in for prefix reuse.

1. Workers. The default study's judge and settings (pruned trie, T = 1 and 0.7 read)
   on VADER words at its scales, scored four times, each on a fresh store with the
   model loaded anew (and the workers started anew): one process (``workers: 1``, the
   llama.cpp threads of all cores) and ``--workers`` workers (one per core, the
   default), each on the idle machine and beside a busy core (a bounded CPU loop this
   benchmark starts and stops). Targets for the workers (the default): their loaded /
   idle time at most 1.6, and their idle speed at least 1.0x one process's. All four
   runs must give identical distributions.
2. Long items. Summaries of DialSummEval dialogues (read by path from
   ``../shared/data/dialsumm``, the longest dialogues, several summaries each), in the
   file's order (grouped by dialogue) and shuffled, in one process, so the backend's
   count of prompt tokens evaluated can be read: wall time, tokens evaluated per item,
   against all the prompts' tokens and against what scoring in the file's order (as
   numbias did before it ordered items) would evaluate. Target: shuffled at most 1.1x
   the grouped time. Both orders must give identical distributions.

Times are of the machine it runs on, loaded or not: read the ratios.

    python benchmarks/bench_throughput.py [--items 100] [--scales 0-9 1-5 1-10] [--workers N]
        [--repeats R] [--loads idle loaded] [--groups 8 --per 12] [--judge NAME] [--long-judge NAME]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from numbias.backends.llamacpp import LlamaCppBackend
from numbias.core.distribution import ScoreDistribution
from numbias.core.scale import ScoreScale
from numbias.core.trie import DEFAULT_PRUNE
from numbias.data.dataset import Dataset, make_dataset
from numbias.data.prompt import PromptTemplate
from numbias.data.tasks import TASKS
from numbias.judge.config import JudgeConfig
from numbias.judge.judging import Judge, collect
from numbias.judge.store import Store
from numbias.judge.workers import close_workers, usable_cores
from numbias.models.catalog import DEFAULT_JUDGE

DIALSUMM = Path("../shared/data/dialsumm/dialsumm.jsonl")
LONG_TEMPLATE = PromptTemplate(
    "Here is a dialogue and a summary of it.\n\nDialogue:\n{dialogue}\n\nSummary:\n"
    "{summary}\n\nHow relevant is the summary: does it keep the dialogue's important "
    "content? Answer with one number from {lo} (not at all) to {hi} (completely)."
)
BUSY_LIMIT_S = 3600
"""The background loop ends by itself after this long, should the benchmark die."""
BUSY = f"import time\nend = time.monotonic() + {BUSY_LIMIT_S}\nwhile time.monotonic() < end:\n    pass\n"


@contextmanager
def busy_core() -> Iterator[None]:
    """One core kept busy by a bounded CPU loop in another process while inside."""
    loop = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(1.0)
        yield
    finally:
        loop.terminate()
        loop.wait()


def timed(judge: Judge, data: Dataset, template: PromptTemplate, scales: list[ScoreScale]) -> tuple[float, dict]:
    """Seconds to score ``data`` at ``scales`` on a fresh store (model load and worker start
    included), and each item's distribution as JSON."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store.sqlite") as store:
        start = time.perf_counter()
        sets = [collect(judge, data.name, data, template, scale, store) for scale in scales]
        seconds = time.perf_counter() - start
    close_workers()
    return seconds, {(str(s.scale), i): _json(d) for s in sets for i, d in zip(data.ids, s.distributions)}


def _json(dist: ScoreDistribution) -> str:
    return json.dumps(dist.to_dict())


def workers_part(args: argparse.Namespace) -> None:
    """One process against ``--workers`` workers, idle and beside a busy core."""
    task = TASKS["vader"]
    data, scales = task.load(n=args.items, seed=0), [ScoreScale.parse(s) for s in args.scales]
    config = JudgeConfig(model=args.judge, options={"prune": DEFAULT_PRUNE, "temperatures": [0.7]})
    shards = Judge(config, workers=args.workers).shards(len(data))
    used = f"{shards.workers} workers x {shards.options['n_threads']} thread(s)" if shards else "one process"
    runs: dict[tuple[str, str], list[float]] = {}
    answers: list[dict] = []
    for _ in range(args.repeats):  # interleaved, so that a drift of the machine's speed falls on both
        for load in args.loads:
            with busy_core() if load == "loaded" else _nothing():
                for name, workers in (("one process", 1), ("workers", args.workers)):
                    seconds, answer = timed(Judge(config, workers=workers), data, task.template, scales)
                    answers.append(answer)
                    runs.setdefault((name, load), []).append(seconds)
                    print(f"  {name}, {load}: {seconds:.1f} s", flush=True)
    times = {key: float(np.median(values)) for key, values in runs.items()}
    same = all(a == answers[0] for a in answers)
    print(
        f"\n{args.judge}, {len(data)} VADER words x {', '.join(args.scales)}; workers: {used}; "
        f"median of {args.repeats} run(s) each\n"
    )
    print("| run | idle s | beside a busy core s | loaded / idle |")
    print("|---|---|---|---|")
    nan = float("nan")
    for name in ("one process", "workers"):
        idle, loaded = times.get((name, "idle"), nan), times.get((name, "loaded"), nan)
        print(f"| {name} | {idle:.1f} | {loaded:.1f} | {loaded / idle:.2f} |")
    for name, load in runs:
        print(f"{name}, {load}: " + ", ".join(f"{x:.1f}" for x in runs[name, load]) + " s")
    if "idle" in args.loads:
        speed = times["one process", "idle"] / times["workers", "idle"]
        print(
            f"\nworkers' idle speed / one process's: {speed:.2f}x "
            f"(target >= 1.0: {'met' if speed >= 1.0 else 'MISSED'})"
        )
    if set(args.loads) == {"idle", "loaded"}:
        ratio = times["workers", "loaded"] / times["workers", "idle"]
        print(f"workers loaded / idle: {ratio:.2f} (target <= 1.6: {'met' if ratio <= 1.6 else 'MISSED'})")
    print(f"identical distributions in all {len(answers)} runs: {same}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def long_items(groups: int, per: int) -> Dataset:
    """The first ``per`` summaries of each of the ``groups`` longest dialogues, in the
    file's order: grouped by dialogue."""
    rows = pd.read_json(DIALSUMM, lines=True)
    longest = rows.drop_duplicates("id").assign(n=lambda f: f["dialogue"].str.len()).nlargest(groups, "n")["id"]
    picked = rows[rows["id"].isin(set(longest))].groupby("id", sort=False).head(per)
    frame = pd.DataFrame(
        {
            "id": [f"{d}-{m}" for d, m in zip(picked["id"], picked["model_id"])],
            "dialogue": picked["dialogue"],
            "summary": picked["summary"],
            "human": [sum(a["relevance"] for a in ann) / len(ann) for ann in picked["annotations"]],
        }
    )
    return make_dataset(
        "dialsumm", frame.reset_index(drop=True), fields=["dialogue", "summary"], human_range=(1.0, 5.0)
    )


def shuffled(data: Dataset, seed: int) -> Dataset:
    frame = data.frame.sample(frac=1, random_state=seed).reset_index(drop=True)
    return make_dataset(data.name, frame, fields=list(data.fields), human_range=data.human_range)


def file_order_tokens(backend: LlamaCppBackend, data: Dataset, scale: ScoreScale) -> tuple[int, int]:
    """All the prompts' tokens, and the tokens scoring them in the file's order evaluates
    when only the previous prompt is kept (each prompt's tokens past what it shares with
    the one before; at least its last)."""
    previous: list[int] = []
    total = evaluated = 0
    for record in data.records():
        tokens = backend.tokenize(LONG_TEMPLATE.fill(record, scale, chat=backend.chat))
        keep = 0
        while keep < min(len(previous), len(tokens) - 1) and previous[keep] == tokens[keep]:
            keep += 1
        total, evaluated, previous = total + len(tokens), evaluated + len(tokens) - keep, tokens
    return total, evaluated


def long_part(args: argparse.Namespace) -> None:
    """Grouped against shuffled long items, in one process."""
    scale = ScoreScale.parse(args.long_scale)
    grouped = long_items(args.groups, args.per)
    orders = {"file order (grouped)": grouped, "shuffled": shuffled(grouped, args.seed)}
    config = JudgeConfig(model=args.long_judge, options={"prune": DEFAULT_PRUNE, "temperatures": [0.7]})
    rows, answers = {}, {}
    for name, data in orders.items():
        judge = Judge(config, workers=1)
        backend = judge.backend
        assert isinstance(backend, LlamaCppBackend)
        before = backend.prompt_tokens
        seconds, answers[name] = timed(judge, data, LONG_TEMPLATE, [scale])
        total, today = file_order_tokens(backend, data, scale)
        rows[name] = (seconds, total, backend.prompt_tokens - before, today)
        print(f"  {name}: {seconds:.1f} s", flush=True)
    n = len(grouped)
    print(
        f"\n{args.long_judge}, {n} DialSummEval summaries ({args.groups} dialogues x {args.per}) at {scale}, "
        "one process\n"
    )
    print(
        "| file | wall s | prompt tokens / item | evaluated / item | evaluated / all tokens "
        "| in file order (before ordering) / item |"
    )
    print("|---|---|---|---|---|---|")
    for name, (seconds, total, evaluated, today) in rows.items():
        print(
            f"| {name} | {seconds:.1f} | {total / n:.1f} | {evaluated / n:.1f} | {evaluated / total:.3f} "
            f"| {today / n:.1f} |"
        )
    ratio = rows["shuffled"][0] / rows["file order (grouped)"][0]
    print(f"\nshuffled / grouped wall time: {ratio:.2f} (target <= 1.1: {'met' if ratio <= 1.1 else 'MISSED'})")
    print(f"identical distributions in both orders: {answers['shuffled'] == answers['file order (grouped)']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", default=DEFAULT_JUDGE)
    parser.add_argument("--items", type=int, default=100, help="VADER words of the workers part")
    parser.add_argument("--scales", nargs="+", default=["0-9", "1-5", "1-10"])
    parser.add_argument(
        "--workers",
        type=int,
        default=max(2, usable_cores()),
        help="the workers compared with one process (default: one per core, at least 2)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of each workers-part setting (medians)")
    parser.add_argument(
        "--loads", nargs="+", choices=["idle", "loaded"], default=["idle", "loaded"], help="the workers part's machines"
    )
    parser.add_argument("--long-judge", default=DEFAULT_JUDGE)
    parser.add_argument("--long-scale", default="1-5")
    parser.add_argument("--groups", type=int, default=8, help="dialogues of the long part")
    parser.add_argument("--per", type=int, default=12, help="summaries per dialogue (at most 14)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", choices=["workers", "long"], help="leave one part out")
    args = parser.parse_args()
    if not DIALSUMM.is_file() and args.skip != "long":
        sys.exit(f"{DIALSUMM} not found: run from the repository root, beside ../shared/data (or --skip long)")
    if args.skip != "workers":
        workers_part(args)
    if args.skip != "long":
        long_part(args)


if __name__ == "__main__":
    main()
