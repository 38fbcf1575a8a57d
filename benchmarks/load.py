"""Load benchmark: a synthetic day through ``standardize`` → ``s3`` (moto), against a naive baseline.

    .venv/bin/python benchmarks/load.py                 # 1,000,000 rows: 50,000 pages of 20
    .venv/bin/python benchmarks/load.py --rows 100000   # a quicker look

``streaming`` is the real path: ``run_stages`` with a generator extractor, the
``standardize`` transformer and the ``s3`` loader (cleaned CSV in parts, raw zone,
manifest). ``naive`` runs the same extractor and transformer, keeps every chunk, builds
the whole CSV in memory and sends it with one ``put_object``; it writes no raw zone and
no manifest, so it does less work. Each scenario runs in its own subprocess so that its
peak RSS (``VmHWM``) is its own; moto runs in this parent process, so its copy of the
uploaded bytes counts against neither.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioboto3
import pandas as pd

from pipeline.datalake import Layout, formats, schema
from pipeline.options import NoOptions
from pipeline.runner import Stages, run_stages
from pipeline.stage import Batch, Extractor, Feed, RunContext
from stages.loaders.s3 import MiB, S3Loader, S3Options
from stages.loaders.s3_store import S3Store
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer

PAGE_SIZE = 20
TREND_DATE = dt.date(2026, 11, 25)
FEED = Feed()
SCENARIOS = ("streaming", "naive")
ENV = {
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def synthetic_page(number: int) -> dict[str, Any]:
    """A TMDB-shaped trending page of 20 made-up movies."""
    first = (number - 1) * PAGE_SIZE + 1
    return {
        "page": number,
        "results": [
            {
                "id": i,
                "title": f"Synthetic Movie {i}",
                "original_title": f"Film Synthétique {i}",
                "original_language": ("en", "fr", "ja", "es")[i % 4],
                "media_type": "movie",
                "popularity": 10_000.0 / (i % 977 + 1),
                "release_date": f"20{i % 25:02d}-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                "vote_average": (i % 100) / 10,
                "vote_count": i % 5000,
                "genre_ids": [28, 12 + i % 5],
                "poster_path": f"/p{i}.jpg",
            }
            for i in range(first, first + PAGE_SIZE)
        ],
        "total_pages": 500,
        "total_results": 10_000,
    }


class SyntheticExtractor(Extractor[NoOptions]):
    """Yields ``pages`` synthetic pages, made one at a time (nothing held back)."""

    def __init__(self, context: RunContext, pages: int) -> None:
        super().__init__(NoOptions(), context, name="synthetic")
        self.pages = pages
        self._made = 0

    @property
    def feed(self) -> Feed:
        return FEED

    def statistics(self, feed: Feed | None = None) -> Mapping[str, float]:
        return {"pages": self._made}

    async def batches(self) -> AsyncGenerator[Batch, None]:
        now = dt.datetime.now(dt.UTC)
        for number in range(1, self.pages + 1):
            self._made += 1
            yield Batch(page=number, payload=synthetic_page(number), feed=FEED, extracted_at=now)


def peak_rss_mib() -> float:
    """This process's peak resident set size, in MiB.

    Linux keeps ``ru_maxrss`` across ``exec``, so a child would inherit the parent's peak
    (moto's copy of the uploads); ``VmHWM`` belongs to the new address space, so use it.
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


async def streaming(endpoint: str, bucket: str, pages: int, part_size: int) -> dict[str, Any]:
    """The real path: run_stages → standardize → s3."""
    context = RunContext(trend_date=TREND_DATE, run_id=uuid.uuid4().hex[:12], started_at=dt.datetime.now(dt.UTC))
    loader = S3Loader(S3Options(bucket=bucket, endpoint_url=endpoint, part_size=part_size), context, name="s3")
    transformer = StandardizeTransformer(StandardizeOptions(), context, name="standardize")
    started = time.perf_counter()
    result = await run_stages(Stages(SyntheticExtractor(context, pages), transformer, loader), context)
    wall = time.perf_counter() - started
    async with loader:
        manifest = await loader.read_manifest(TREND_DATE, FEED)
        store = loader.store  # an S3Store: it counts the requests it sent, by operation
    assert manifest is not None and isinstance(store, S3Store)
    return {
        "rows": result.rows,
        "wall_s": wall,
        "cleaned_bytes": manifest["objects"]["cleaned"]["bytes"],
        "uploaded_bytes": sum(o["bytes"] for o in manifest["objects"].values()),
        "parts": store.requests["upload_part"],
        "put_object": store.requests["put_object"],
        "stage_s": result.timings,
    }


async def naive(endpoint: str, bucket: str, pages: int, part_size: int) -> dict[str, Any]:
    """Keep every chunk, build one CSV in memory, one put_object."""
    context = RunContext(trend_date=TREND_DATE, run_id=uuid.uuid4().hex[:12], started_at=dt.datetime.now(dt.UTC))
    extractor = SyntheticExtractor(context, pages)
    transformer = StandardizeTransformer(StandardizeOptions(), context, name="standardize")
    started = time.perf_counter()
    frames = [await transformer.transform(batch) async for batch in extractor.batches()]
    transformed = time.perf_counter()
    body = schema.to_csv_bytes(schema.conform(pd.concat(frames, ignore_index=True)), header=True)
    encoded = time.perf_counter()
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("s3", endpoint_url=endpoint) as client:
        await client.put_object(
            Bucket=bucket,
            Key=Layout().key("cleaned", TREND_DATE, FEED),
            Body=body,
            ContentType=formats.CONTENT_TYPES["csv"],
            ChecksumAlgorithm="SHA256",
        )
    wall = time.perf_counter() - started
    return {
        "rows": sum(len(f) for f in frames),
        "wall_s": wall,
        "cleaned_bytes": len(body),
        "uploaded_bytes": len(body),
        "parts": 0,
        "put_object": 1,
        "stage_s": {
            "extract+transform": round(transformed - started, 3),
            "encode": round(encoded - transformed, 3),
            "upload": round(wall - (encoded - started), 3),
        },
    }


def run_child(args: argparse.Namespace) -> int:
    """Run one scenario in this process and print its figures as one JSON line."""
    start_rss = peak_rss_mib()
    scenario = {"streaming": streaming, "naive": naive}[args.scenario]
    figures = asyncio.run(scenario(args.endpoint, args.bucket, args.rows // PAGE_SIZE, args.part_size * MiB))
    figures.update(scenario=args.scenario, peak_rss_mib=peak_rss_mib(), rss_after_imports_mib=start_rss)
    print(json.dumps(figures))
    return 0


def run_all(args: argparse.Namespace) -> int:
    """Start moto, run each scenario in a subprocess, print the comparison."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(ENV)
    results = []
    try:
        for scenario in SCENARIOS:
            bucket = f"bench-{scenario}-{uuid.uuid4().hex[:8]}"
            asyncio.run(_create_bucket(endpoint, bucket))
            command = [
                sys.executable,
                __file__,
                "--scenario",
                scenario,
                "--endpoint",
                endpoint,
                "--bucket",
                bucket,
                "--rows",
                str(args.rows),
                "--part-size",
                str(args.part_size),
            ]
            print(f"running {scenario} ({args.rows:,} rows) ...", file=sys.stderr, flush=True)
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **ENV}, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            asyncio.run(_drop_bucket(endpoint, bucket))  # frees moto's copy before the next scenario
    finally:
        server.stop()
    report(results, args)
    return 0


async def _create_bucket(endpoint: str, bucket: str) -> None:
    async with aioboto3.Session(region_name="us-east-1").client("s3", endpoint_url=endpoint) as client:
        await client.create_bucket(Bucket=bucket)


async def _drop_bucket(endpoint: str, bucket: str) -> None:
    async with aioboto3.Session(region_name="us-east-1").client("s3", endpoint_url=endpoint) as client:
        listed = await client.list_objects_v2(Bucket=bucket)
        for item in listed.get("Contents", []):
            await client.delete_object(Bucket=bucket, Key=item["Key"])
        await client.delete_bucket(Bucket=bucket)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Print the table and the verdict against the target."""
    print(
        f"load benchmark: {args.rows:,} rows, part_size {args.part_size} MiB, moto {sys.platform}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(
        f"{'scenario':<10} {'rows':>9} {'wall s':>8} {'CSV MB':>8} {'MB/s':>7} {'parts':>6} {'puts':>5} "
        f"{'peak RSS MiB':>13}"
    )
    for r in results:
        mb = r["cleaned_bytes"] / 1e6
        print(
            f"{r['scenario']:<10} {r['rows']:>9,} {r['wall_s']:>8.1f} {mb:>8.1f} {mb / r['wall_s']:>7.2f} "
            f"{r['parts']:>6} {r['put_object']:>5} {r['peak_rss_mib']:>13.0f}"
        )
    for r in results:
        print(
            f"  {r['scenario']}: stage seconds {r['stage_s']}; RSS after imports {r['rss_after_imports_mib']:.0f} MiB"
        )
    by = {r["scenario"]: r for r in results}
    rss_ratio = by["streaming"]["peak_rss_mib"] / by["naive"]["peak_rss_mib"]
    wall_ratio = by["streaming"]["wall_s"] / by["naive"]["wall_s"]
    print(
        f"peak RSS streaming/naive = {rss_ratio:.2f} (target <= 0.50); wall streaming/naive = {wall_ratio:.2f} "
        "(target <= 1.00)"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the command line; run all scenarios, or one (internal, for the subprocesses)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the synthetic day (default 1,000,000)")
    parser.add_argument("--part-size", type=int, default=8, help="multipart part size in MiB (default 8)")
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return run_child(args) if args.scenario else run_all(args)


if __name__ == "__main__":
    raise SystemExit(main())
