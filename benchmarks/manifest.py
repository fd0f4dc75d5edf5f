"""Benchmark: reading a store's manifest with one object per channel-day, and merged per channel (issue 14).

Tasks write one manifest record per channel-day (:func:`seisgrid.manifest.write_record`); at the end of a run
the driver merges them into one object per channel (:func:`seisgrid.manifest.merge_records`). This measures
:func:`seisgrid.manifest.read_records` for ``CHANNELS × DAYS`` records written as ingest writes them (records of
the same size as ingest's day records: sources, segments, shard checksums), before and after the merge, on
local disk and on the local S3 API server (``cluster/s3-local.sh``, moto): seconds, objects read, and the
requests that takes (S3: list pages of 1000 keys + one GET per object). The ratio is per-unit seconds ÷ merged
seconds. The merge itself is timed too. Medians of ``--repeats`` reads.

Usage (from the repository root)::

    python benchmarks/manifest.py                       # 24 channels × 365 days, local and S3; ~3 minutes
    python benchmarks/manifest.py --channels 6 --days 60 --quick
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from seisgrid import config, manifest, storage  # noqa: E402


def day_record(cid: str, day: int) -> dict:
    """A record shaped like ingest's channel-day record (about 600 bytes of JSON)."""
    label = f"2021-{1 + day // 28:02d}-{1 + day % 28:02d}-{day}"
    return {"id": cid, "day": label, "fingerprint": hashlib.sha1(f"{cid}{day}".encode()).hexdigest(),
            "sources": [f"s3://archive/2021/XX/{cid}.D/{cid}.D.2021.{day:03d}"], "samples": 8640000,
            "segments": [[day * 8640000, (day + 1) * 8640000]], "overlaps": 0, "overlap_samples": 0,
            "conflicting_samples": 0, "max_snap_samples": 0.0, "failed": [],
            "shards": {f"c/{day}": "sha256:" + hashlib.sha256(label.encode()).hexdigest()}}


def objects_under(url: str, prefix: str) -> int:
    fs, root = storage.filesystem(url)
    fs.invalidate_cache()
    base = f"{root.rstrip('/')}/{prefix}"
    found = fs.find(base) if fs.exists(base) else []
    return len([p for p in found if p.endswith("/zarr.json") and p != f"{base}/zarr.json"])


def measure(url: str, channels: int, days: int, repeats: int) -> dict:
    """Write the records, read them per unit, merge, read them merged."""
    ids = [f"XX.S{c:03d}..HHZ" for c in range(channels)]
    t0 = time.perf_counter()
    for cid in ids:
        for day in range(days):
            record = day_record(cid, day)
            manifest.write_record(url, storage.storage_options(url), "days", cid, record["day"], record)
    write_seconds = time.perf_counter() - t0

    def read() -> float:
        fs, _ = storage.filesystem(url)
        fs.invalidate_cache()
        start = time.perf_counter()
        records = manifest.read_records(url, storage.storage_options(url), "days")
        assert len(records) == channels * days
        return time.perf_counter() - start

    per_unit = [read() for _ in range(repeats)]
    per_unit_objects = objects_under(url, "_manifest/days")
    t0 = time.perf_counter()
    merged_count = manifest.merge_records(url, storage.storage_options(url), "days")
    merge_seconds = time.perf_counter() - t0
    merged = [read() for _ in range(repeats)]
    merged_objects = objects_under(url, "_manifest/merged/days")
    assert merged_count == channels * days and merged_objects == channels

    def requests(objects: int) -> int:
        return math.ceil(objects / 1000) + objects  # list pages + one GET per object

    return {"records": channels * days, "write_seconds": round(write_seconds, 2),
            "per_unit": {"objects": per_unit_objects, "requests": requests(per_unit_objects),
                         "seconds": round(common.median(per_unit), 3), "all_seconds": [round(x, 3) for x in per_unit]},
            "merged": {"objects": merged_objects, "requests": requests(merged_objects),
                       "seconds": round(common.median(merged), 3), "all_seconds": [round(x, 3) for x in merged]},
            "merge_seconds": round(merge_seconds, 2),
            "ratio": round(common.median(per_unit) / common.median(merged), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=24)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-s3", action="store_true", help="local disk only")
    parser.add_argument("--quick", action="store_true", help="write benchmarks/results/manifest-quick.json")
    args = parser.parse_args()
    loads = [common.load_average()]
    result = {"metric": "manifest read seconds, per channel-day objects ÷ merged per channel", "unit": "ratio",
              "channels": args.channels, "days": args.days, "repeats": args.repeats}
    with common.work_folder(None, "bench-manifest-") as folder:
        common.log(f"local: {args.channels} × {args.days} records")
        result["local"] = measure(str(folder / "store.zarr"), args.channels, args.days, args.repeats)
        common.log(f"  {result['local']}")
        if not args.no_s3:
            repo = common.REPO
            started = subprocess.run(["bash", str(repo / "cluster" / "s3-local.sh"), "start"], capture_output=True,
                                     text=True, check=True, env={**os.environ, "SEISGRID_S3_PORT": "5561"})
            for line in started.stdout.splitlines():
                if line.startswith("export "):
                    for word in shlex.split(line.removeprefix("export ")):
                        key, _, value = word.partition("=")
                        os.environ[key] = value
            config.refresh()  # the endpoint's SEISGRID_* variable
            try:
                common.log(f"S3 (moto): {args.channels} × {args.days} records")
                result["s3"] = measure("s3://seisgrid/bench-manifest.zarr", args.channels, args.days, args.repeats)
                common.log(f"  {result['s3']}")
            finally:
                subprocess.run(["bash", str(repo / "cluster" / "s3-local.sh"), "stop"], capture_output=True,
                               env={**os.environ, "SEISGRID_S3_PORT": "5561"})
    loads.append(common.load_average())
    result["value"] = result.get("s3", result["local"])["ratio"]
    result["busy"] = common.busy_machine([common.cpu_scaling()], loads, "so the seconds are pessimistic")
    result.update(common.provenance("manifest", f" --channels {args.channels} --days {args.days}",
                                    ["zarr", "fsspec", "s3fs", "moto"]))
    common.write_result(result, "manifest", args.quick)


if __name__ == "__main__":
    main()
