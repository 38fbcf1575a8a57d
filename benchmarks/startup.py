"""What ``python -m pipeline --help`` costs over the bare interpreter, measured as one ratio in one run.

Usage: ``.venv/bin/python benchmarks/startup.py [--runs 20]``. Each round starts the bare interpreter
(``python -c pass``) and ``python -m pipeline --help`` back to back, so both see the same machine load;
the medians and their difference are printed, with ``--version`` for comparison. Issue 22's target: at
most 60 ms over the interpreter.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "bare interpreter": ["-c", "pass"],
    "pipeline --help": ["-m", "pipeline", "--help"],
    "pipeline --version": ["-m", "pipeline", "--version"],
}


def wall(args: list[str]) -> float:
    """Seconds one fresh interpreter takes to run ``args``."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    """Print the median wall time of each command and the overhead of ``--help``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    for args in COMMANDS.values():
        wall(args)  # warm the page cache and the bytecode
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, args in COMMANDS.items():
            times[name].append(wall(args))
    medians = {name: statistics.median(values) for name, values in times.items()}
    bare = medians["bare interpreter"]
    print(f"{runs} rounds, {sys.executable} ({sys.version.split()[0]})")
    for name, median in medians.items():
        print(f"  {name:<20} {median * 1000:6.1f} ms  ({median / bare:.2f}x the bare interpreter)")
    print(f"--help overhead: {(medians['pipeline --help'] - bare) * 1000:.1f} ms (target: at most 60 ms)")


if __name__ == "__main__":
    main()
