"""Peak memory of a whole run against the number of pages: 1 page against 500 (and points between).

    .venv/bin/python benchmarks/memory.py                  # 1, 100 and 500 pages
    .venv/bin/python benchmarks/memory.py --pages 1 500

Each scenario is ``python -m pipeline run`` in a process of its own (``pipeline.cli.main``
with the real stages: ``tmdb-trending`` → ``standardize`` → ``local`` lake → ``markdown``
report), against the local TMDB stand-in (``tests/support/tmdb_standin.py``, no latency, no rate
cap) started once in a separate process. Peak RSS is the child's own ``VmHWM`` from
``/proc/self/status``, read after the run, so it covers imports, the run and the report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from standin_process import standin_process

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.10  # the most pages may cost, as a multiple of the 1-page peak


def vm_hwm_mib() -> float:
    """This process's peak resident set size (``VmHWM``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Child process: one ``pipeline run``; its figures as a dict."""
    os.environ["TMDB_ACCESS_TOKEN"] = "benchmark-token"
    sys.path.insert(0, str(ROOT))
    from pipeline.cli import main

    started = time.perf_counter()
    code = main(["run", "--config", spec["config"], "-q"])
    wall = time.perf_counter() - started
    return {"code": code, "wall": round(wall, 2), "peak_rss_mib": round(vm_hwm_mib(), 1)}


def write_config(folder: Path, base_url: str, pages: int) -> Path:
    """The scenario's config: the real stages, a lake of its own."""
    config = {
        "extractor": {
            "type": "tmdb-trending",
            "options": {"base_url": base_url, "pages": pages, "rate_limit": 1000, "concurrency": 10},
        },
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(folder / "lake")}},
        "reporter": {"type": "markdown", "options": {"path": str(folder / "LATEST_UPDATE.md")}},
    }
    path = folder / "pipeline.yml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def child(config: Path) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMDB_", "AWS_"))}
    done = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps({"config": str(config)})],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scenario failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print one line each; exit 1 if the most pages cost more than 1.1x one page."""
    parser = argparse.ArgumentParser(description="peak RSS of a whole run by pages")
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return 0

    with standin_process() as base_url:
        print(
            f"peak RSS of `python -m pipeline run` (tmdb-trending → standardize → local → markdown), "
            f"python {sys.version.split()[0]}"
        )
        print(f"{'pages':>5} {'rows':>6} {'wall s':>7} {'peak RSS MiB':>12} {'x 1 page':>8}")
        figures = {}
        with tempfile.TemporaryDirectory(prefix="pipeline-memory-") as scratch:
            for pages in args.pages:
                folder = Path(scratch) / f"p{pages}"
                folder.mkdir()
                outcome = child(write_config(folder, base_url, pages))
                if outcome["code"] != 0:
                    raise RuntimeError(f"{pages} pages: the run exited {outcome['code']}")
                figures[pages] = outcome["peak_rss_mib"]
                ratio = outcome["peak_rss_mib"] / figures[min(figures)]
                print(
                    f"{pages:>5} {pages * 20:>6} {outcome['wall']:>7.2f} {outcome['peak_rss_mib']:>12.1f} {ratio:>8.3f}"
                )
    worst = figures[max(figures)] / figures[min(figures)]
    print(f"{max(figures)} pages cost {worst:.3f}x the peak of {min(figures)} (target <= {TARGET:.2f}x)")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
