"""Time to fit and select every mitigation family on stored items (no model calls).

Runs ``numbias mitigate`` on a config whose answers are all in its store (the
default: docs/results/mitigate.yaml, 500 VADER items, four scales and their range
ensemble) with the model forbidden, and prints the wall time of the plain selection
(choice on 200 dev items, every table row fitted and tested), then of the nested
estimate with its bootstrap stability, then of a label-efficiency curve. Each phase
is one run of the same comparison with one more check switched on, so the figures
are comparable within a run.

    python benchmarks/select_from_store.py [CONFIG] [--draws 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from numbias.judge.config import read_yaml
from numbias.judge.judging import store_only
from numbias.studies.mitigation import mitigate, parse_mitigate


def timed(settings: dict, out: str) -> tuple[float, float, int]:
    """Wall and CPU seconds of one run (CPU time, this process's: the figure that holds
    on a machine shared with other work), and the number of candidate settings."""
    config = parse_mitigate({**settings, "out": out})
    start, cpu = time.perf_counter(), time.process_time()
    with store_only():
        mitigate(config)
    return time.perf_counter() - start, time.process_time() - cpu, len(config.candidates())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="docs/results/mitigate.yaml")
    parser.add_argument("--draws", type=int, default=2, help="label-efficiency draws per size")
    parser.add_argument("--resamples", type=int, default=20)
    args = parser.parse_args()
    base = {**read_yaml(args.config), "oracle": False, "resamples": 0, "label_draws": 0}
    phases = [
        ("select and fit every family", {}),
        (f"+ nested estimate, {args.resamples} resamples", {"resamples": args.resamples}),
        (f"+ label efficiency, {args.draws} draws x 5 sizes", {"resamples": args.resamples, "label_draws": args.draws}),
        ("+ oracle row", {"resamples": args.resamples, "label_draws": args.draws, "oracle": True}),
    ]
    print(f"{'phase':<44} {'candidates':>10} {'wall s':>8} {'CPU s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, change in phases:
            seconds, cpu, n = timed({**base, **change}, tmp)
            print(f"{name:<44} {n:>10} {seconds:>8.1f} {cpu:>8.1f}")


if __name__ == "__main__":
    main()
