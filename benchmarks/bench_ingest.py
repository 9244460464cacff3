"""Ingestion speed: `stream_counts` (per-user counts without holding the rows) of parquet and CSV labels.

    python benchmarks/bench_ingest.py --rows 20000000   # prints a table, writes results/ingest.json

Ids are 1e6 integer users, written as integers (parquet) and as text (CSV, read as strings so that
``007`` and ``7`` stay two users).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from jaxpref.scale.streaming import stream_counts

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    table = pa.table({"user": rng.integers(0, args.users, args.rows), "label": rng.integers(0, 2, args.rows)})
    folder = Path(tempfile.mkdtemp())
    pq.write_table(table, folder / "labels.parquet", row_group_size=1 << 20)
    pa_csv.write_csv(table, folder / "labels.csv")
    rows = {}
    for name in ("labels.parquet", "labels.csv"):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            counts = stream_counts(folder / name, progress=False)
            times.append(time.perf_counter() - start)
        assert counts.num_labels == args.rows
        rows[name] = {"median_s": float(np.median(times)), "labels_per_s": args.rows / float(np.median(times))}
        print(f"{name:16s} {rows[name]['median_s']:6.2f} s  {rows[name]['labels_per_s'] / 1e6:6.1f} M labels/s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps({"rows": args.rows, "users": args.users, **rows}, indent=2))


if __name__ == "__main__":
    main()
