"""Benchmark the ``tmdb-trending`` extractor against the local TMDB stand-in. Prints figures; asserts nothing.

Usage::

    .venv/bin/python benchmarks/extract.py                    # the README scenarios
    .venv/bin/python benchmarks/extract.py --pages 100 --sequential-pages 500

The stand-in runs in its own process (so it does not share the client's event loop or
memory); every scenario runs in a fresh child process so that its peak RSS is its own.
For each scenario it prints wall time, the floor (pages / min(server cap, client rate)),
wall/floor, requests, 429s, server-side peak in flight and per second, and peak RSS.
The sequential baseline is the first scenario with ``concurrency: 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from standin_process import configure, standin_process, standin_stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def _extract(base_url: str, options: dict[str, Any]) -> dict[str, Any]:
    from pipeline.options import build_options
    from pipeline.runner import new_context
    from stages.extractors.tmdb.extractor import TmdbOptions, TmdbTrendingExtractor

    opts = build_options(TmdbOptions, {"base_url": base_url, **options}, "extractor.options")
    extractor = TmdbTrendingExtractor(opts, new_context(), name="tmdb-trending")  # a live list is today's
    pages = 0
    started = time.perf_counter()
    async with extractor:
        async for _batch in extractor.batches():
            pages += 1
    wall = time.perf_counter() - started
    return {"pages": pages, "wall": wall, "counters": dict(extractor.statistics())}


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Child process: configure the stand-in, run one extraction, report figures."""
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("TMDB_ACCESS_TOKEN", "benchmark-token")
    base_url = spec["base_url"]
    configure(base_url, spec["standin"])
    outcome = asyncio.run(_extract(base_url, spec["options"]))
    stats = standin_stats(base_url)
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mib = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
    return {**outcome, "server": stats, "peak_rss_mib": round(rss_mib, 1)}


def _child(base_url: str, standin: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    spec = {"base_url": base_url, "standin": standin, "options": options}
    done = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"scenario failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print one line each."""
    parser = argparse.ArgumentParser(description="tmdb-trending extractor benchmark (prints, asserts nothing)")
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.08, help="server latency, seconds")
    parser.add_argument("--server-cap", type=float, default=40, help="server rate cap, req/s")
    parser.add_argument("--throttled-cap", type=float, default=20, help="server cap of the 429 scenario")
    parser.add_argument("--rate", type=float, default=35, help="client rate_limit, req/s")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered with a fault")
    parser.add_argument(
        "--sequential-pages", type=int, default=100, help="pages of the concurrency-1 baseline (500 takes ~45 s)"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0

    with standin_process() as base_url:
        faults = {"fault_rate": args.fault_rate, "faults": ["500", "html502", "reset", "truncated"]}
        common = {"latency": args.latency, "total_pages": 500, **faults}
        client = {"rate_limit": args.rate, "concurrency": args.concurrency, "enrich": True}
        scenarios = [
            (
                f"cap {args.server_cap:g}/s, no 429 expected",
                args.pages,
                args.server_cap,
                {**common, "rate_cap": args.server_cap},
                client,
            ),
            (
                f"cap {args.throttled_cap:g}/s, 429 + Retry-After: 1",
                args.pages,
                args.throttled_cap,
                {**common, "rate_cap": args.throttled_cap, "retry_after": "1"},
                {**client, "max_attempts": 10},
            ),
            (
                f"sequential baseline (concurrency 1), cap {args.server_cap:g}/s",
                args.sequential_pages,
                args.server_cap,
                {**common, "rate_cap": args.server_cap},
                {**client, "concurrency": 1},
            ),
        ]
        print(
            f"tmdb-trending extractor benchmark: latency {args.latency * 1000:g} ms, client {args.rate:g} req/s, "
            f"concurrency {args.concurrency}, fault rate {args.fault_rate:g}, python {sys.version.split()[0]}"
        )
        header = (
            f"{'scenario':<48} {'pages':>5} {'wall s':>7} {'floor s':>7} {'ratio':>6} {'target':>14} "
            f"{'requests':>8} {'429s':>5} {'in-flight':>9} {'peak/s':>6} {'RSS MiB':>7}"
        )
        print(header)
        print("-" * len(header))
        for index, (name, pages, cap, standin, options) in enumerate(scenarios):
            outcome = _child(base_url, standin, {**options, "pages": pages})
            floor = pages / min(cap, args.rate)
            wall = outcome["wall"]
            target = {0: f"<= {1.10 * floor + 1:.1f}s", 1: f"<= {1.3 * floor:.1f}s"}.get(index, "-")
            server_stats = outcome["server"]
            print(
                f"{name:<48} {outcome['pages']:>5} {wall:>7.2f} {floor:>7.2f} {wall / floor:>6.3f} {target:>14} "
                f"{outcome['counters'].get('requests', 0):>8} {outcome['counters'].get('http_429', 0):>5} "
                f"{server_stats['max_in_flight']:>9} {server_stats['peak_per_second']:>6} {outcome['peak_rss_mib']:>7}"
            )
        print("floor = pages / min(server cap, client rate); ratio = wall / floor; in-flight and peak/s server-side")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
