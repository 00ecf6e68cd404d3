"""How fast numbias starts: the wall time of ``numbias --help`` and of ``python -c
"import numbias"``, each the median of several fresh processes, against the 0.5 s target.

Every command and every subprocess pays the start, so it is measured here rather than in
a timed test (a loaded machine would make such a test fail for nothing). Beside the wall
time, the CPU time (user + system) the process used: on a busy machine the wall time
waits for a core, the CPU time does not. A bare ``python -c pass`` is printed too: what
the interpreter costs before numbias.

    python benchmarks/bench_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.5
"""The issue's target for ``numbias --help`` on this machine."""


def numbias_command() -> list[str]:
    """The installed ``numbias`` script beside this interpreter, else ``python -m numbias``."""
    script = Path(sys.executable).with_name("numbias")
    if script.is_file():
        return [str(script)]
    found = shutil.which("numbias")
    return [found] if found else [sys.executable, "-m", "numbias"]


def timed_runs(command: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of ``runs`` fresh processes of ``command``, after one
    warm-up run (so the disk cache and byte-code are warm, as for a user's second call)."""
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> None:
    """Print one line per command: its median, fastest and slowest wall time, its median
    CPU time, and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per command (default 7)")
    runs = parser.parse_args().runs
    cases = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        'python -c "import numbias"': ([sys.executable, "-c", "import numbias"], TARGET_S),
        "numbias --help": ([*numbias_command(), "--help"], TARGET_S),
    }
    print(f"start-up time, median of {runs} fresh processes (target {TARGET_S} s wall)")
    for name, (command, target) in cases.items():
        walls, cpus = timed_runs(command, runs)
        median = statistics.median(walls)
        verdict = "" if target is None else "  within target" if median <= target else "  OVER target"
        print(
            f"  {name:<28} wall {median:6.3f} s (min {min(walls):.3f}, max {max(walls):.3f})  "
            f"cpu {statistics.median(cpus):.3f} s{verdict}"
        )


if __name__ == "__main__":
    main()
