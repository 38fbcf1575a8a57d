"""Whole-process runs of ``python -m pipeline run`` against the stand-in: one feed, then three feeds. Asserts nothing.

Usage::

    .venv/bin/python benchmarks/feeds.py                      # 500 pages a feed, 35 req/s, server cap 40/s
    .venv/bin/python benchmarks/feeds.py --pages 100 --repeat 3
    .venv/bin/python benchmarks/feeds.py --only one --no-report --repeat 10 --python /tmp/rt/bin/python

The last one measures the process as the daily job installs it: a venv of ``requirements/runtime.lock``
alone (``uv venv /tmp/rt && uv pip install --python /tmp/rt/bin/python --require-hashes -r
requirements/runtime.lock && uv pip install --python /tmp/rt/bin/python --no-deps .``), 48 distributions
where the test venv has 119 (every run reads the entry points of each, twice: pydantic's plugins and the
stages).

Each scenario is one ``python -m pipeline run`` process (``config/pipeline.yml`` with the
markdown report written to a scratch folder, a fresh local lake) against the stand-in in
its own process (80 ms latency, cap 40 requests in any one second). Wall time runs from
spawning the process to its exit. The stand-in's arrival times (the same monotonic clock)
split it into start-up (spawn to first request), fetching (first to last request) and tail
(last request to exit). The floor is the limiter's: ``pages / rate``. Peak RSS is the
child's own (``wait4``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from standin_process import configure, standin_process, standin_stats

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-token"


def run_once(
    base_url: str,
    feeds: list[str],
    pages: int,
    rate: float,
    cap: float,
    latency: float,
    *,
    report: bool = True,
    cache: str,
    python: str = sys.executable,
) -> dict[str, Any]:
    """One whole-process run; its wall time split by the stand-in's arrivals, and its peak RSS.

    ``cache`` is the TMDB lookup cache's folder (``PIPELINE_CACHE_DIR``): a run that finds the lookups there
    makes 500 requests for 500 pages, one that does not makes 502 (503 with TV).
    """
    configure(base_url, {"latency": latency, "rate_cap": cap, "total_pages": 500})
    with tempfile.TemporaryDirectory(prefix="feeds-bench-") as scratch:
        argv = [
            python,
            "-m",
            "pipeline",
            "run",
            "-q",
            "--config",
            "config/pipeline.yml",
            "--set",
            f"extractor.options.feeds={json.dumps(feeds)}",
            "--set",
            f"extractor.options.pages={pages}",
            "--set",
            f"extractor.options.rate_limit={rate}",
            "--set",
            f"loader.options.root={scratch}/lake",
            "--set",
            f"reporter=[{{type: markdown, options: {{path: {scratch}/L.md}}}}]" if report else "reporter=[]",
        ]
        env = {**os.environ, "TMDB_ACCESS_TOKEN": TOKEN, "TMDB_BASE_URL": base_url, "PIPELINE_CACHE_DIR": cache}
        started = time.monotonic()
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(child.pid, 0)
        ended = time.monotonic()
        child.returncode = os.waitstatus_to_exitcode(status)
        out, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"run failed ({child.returncode}):\n{err.decode()[-3000:]}")
    stats = standin_stats(base_url)
    rss_mib = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return {
        "wall": ended - started,
        "startup": stats["first_arrival"] - started,
        "fetching": stats["last_arrival"] - stats["first_arrival"],
        "tail": ended - stats["last_arrival"],
        "requests": stats["requests"],
        "429s": stats["statuses"].get("429", 0),
        "peak_per_second": stats["peak_per_second"],
        "rss_mib": round(rss_mib, 1),
        "summary": out.decode().strip().splitlines()[:1],
    }


def site_packages(python: str) -> str:
    """Where ``python`` installs packages."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def distributions(python: str) -> int:
    """How many distributions ``python`` has installed: each run reads the entry points of every one, twice."""
    code = "import importlib.metadata as m; print(len(list(m.distributions())))"
    return int(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=500, help="pages per feed")
    parser.add_argument("--rate", type=float, default=35, help="client rate_limit, req/s (shared by the feeds)")
    parser.add_argument("--server-cap", type=float, default=40, help="stand-in cap, requests in any one second")
    parser.add_argument("--latency", type=float, default=0.08, help="stand-in latency, seconds")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", choices=("one", "three"), help="run one scenario only")
    parser.add_argument("--no-report", action="store_true", help="no reporter (the ETL alone)")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="every run with an empty TMDB lookup cache (default: one cache for the whole benchmark: the first run "
        "fetches the lookups and later runs reuse them)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of the measured runs, e.g. a venv of requirements/runtime.lock alone, as the daily job "
        "and `make run` install it (default: this one)",
    )
    args = parser.parse_args(argv)
    # The measured process runs from bytecode, as an installed package does: with PYTHONDONTWRITEBYTECODE set
    # (some CI images and sandboxes), a module changed since its .pyc would be compiled again in every run.
    for package in ("pipeline", "stages"):
        compileall.compile_dir(ROOT / package, quiet=1)
    if args.python != sys.executable:  # its libraries too: uv installs no bytecode
        compile_libraries = [args.python, "-m", "compileall", "-q", "-x", "/tests?/", site_packages(args.python)]
        subprocess.run(compile_libraries, check=False, stdout=subprocess.DEVNULL)
    scenarios = [("one feed", ["movie/day"]), ("three feeds", ["movie/day", "tv/day", "person/day"])]
    if args.only:
        scenarios = [scenarios[0 if args.only == "one" else 1]]
    print(
        f"feeds benchmark: {args.pages} pages a feed, client {args.rate:g} req/s shared, server cap "
        f"{args.server_cap:g}/s, latency {args.latency * 1000:g} ms; python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        f"{', no report' if args.no_report else ', markdown report'}"
        f"{', lookup cache empty every run' if args.cold else ', lookup cache kept between runs'}"
        f"{'' if args.python == sys.executable else ', runs with ' + args.python}"
        f" ({distributions(args.python)} distributions installed)"
    )
    header = (
        f"{'scenario':<12} {'pages':>5} {'wall s':>7} {'floor s':>7} {'ratio':>6} {'target s':>8} {'start':>6} "
        f"{'fetch':>7} {'tail':>5} {'reqs':>5} {'429':>4} {'peak/s':>6} {'RSS MiB':>7}"
    )
    print(header)
    print("-" * len(header))
    with standin_process() as base_url, tempfile.TemporaryDirectory(prefix="feeds-bench-cache-") as kept:
        for name, feeds in scenarios:
            pages = args.pages * len(feeds)
            floor = pages / args.rate
            target = 1.02 * floor + 0.5 if len(feeds) == 1 else 1.03 * floor + 1
            walls: list[float] = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix="feeds-bench-cache-") as empty:
                    got = run_once(
                        base_url,
                        feeds,
                        args.pages,
                        args.rate,
                        args.server_cap,
                        args.latency,
                        report=not args.no_report,
                        cache=empty if args.cold else kept,
                        python=args.python,
                    )
                print(
                    f"{name:<12} {pages:>5} {got['wall']:>7.2f} {floor:>7.2f} {got['wall'] / floor:>6.3f} "
                    f"{target:>8.2f} {got['startup']:>6.2f} {got['fetching']:>7.2f} {got['tail']:>5.2f} "
                    f"{got['requests']:>5} {got['429s']:>4} {got['peak_per_second']:>6} {got['rss_mib']:>7}",
                    flush=True,
                )
                walls.append(got["wall"])
            if len(walls) > 1:
                within = sum(wall <= target for wall in walls)
                print(
                    f"{name}: median {statistics.median(walls):.2f} s over {len(walls)} runs, {within} within "
                    f"{target:.2f} s (start-up is what varies from run to run: read the median)",
                    flush=True,
                )
    print("start = spawn to first request; fetch = first to last request; tail = last request to exit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
