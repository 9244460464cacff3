"""Getting data into a fit, speed and memory: rows -> counts (`stream_counts`) beside a bare read of
the same file, integer vs string ids; and counts -> fit (`load_counts` + `fit_attentiveness`) beside
one ``np.bincount`` of the same arrays.

    python benchmarks/bench_ingest.py --rows 10000000 [--baseline DIR]   # results/ingest.{json,md}
    python benchmarks/bench_ingest.py --counts-users 10000000 [--baseline DIR]   # results/counts_fit.*

Every measurement runs in a fresh process (peak RSS = that process's ``VmHWM``; time = the call
alone, imports excluded) on the same files: parquet with integer ids, parquet with string ids
(``u123456``) and CSV (ids read as text). Floors in the same run: ``pyarrow.parquet.read_table`` (CSV:
``pyarrow.csv.read_csv``) of the file, and a bare polars streaming ``group_by(user)`` with no checks.
Counts: 20 labels per user, k ~ Binomial(20, 0.7), int64 arrays made in the child before timing;
the fit (defaults) is compiled first on the first 1e5 users (same count patterns, same shapes), so
the time is loading + compressing + EM + the per-user table; ``extra_mb`` = peak RSS minus the RSS
before the timed call. ``--baseline DIR`` also times the ``jaxpref`` package found in ``DIR`` (e.g. ``git archive main
jaxpref | tar -x -C DIR``), so before and after share the files and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from benchmarks.common import RESULTS, markdown_table, write_results

#: Run in a child process: ``argv = [engine, path]``; prints ``{"seconds", "peak_mb", "labels"}``.
CHILD = r"""
import json, sys, time
import numpy as np, polars as pl, pyarrow.csv, pyarrow.parquet
engine, path = sys.argv[1:3]
if engine.startswith("jaxpref"):
    from jaxpref.scale.streaming import stream_counts
start = time.perf_counter()
if engine == "read_table":
    read = pyarrow.csv.read_csv if path.endswith(".csv") else pyarrow.parquet.read_table
    labels = read(path).num_rows
elif engine == "polars_group_by":
    scan = pl.scan_csv(path, schema_overrides={"user": pl.String}) if path.endswith(".csv") else pl.scan_parquet(path)
    counts = scan.group_by("user").agg(n=pl.len(), k=pl.col("label").sum()).collect(engine="streaming")
    labels = int(counts["n"].sum())
else:
    labels = stream_counts(path, progress=False).num_labels
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries the parent's peak across fork + exec into ru_maxrss.
peak_mb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "labels": labels}))
"""


#: ``argv = [engine, num_users]``: counts -> fit, or the bincount floor.
COUNTS_CHILD = r"""
import json, sys, time
import numpy as np
engine, num_users = sys.argv[1], int(sys.argv[2])
rss = lambda field: next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field)) / 1024
n = np.full(num_users, 20, np.int64)
k = np.random.default_rng(0).binomial(20, 0.7, num_users).astype(np.int64)
if engine != "bincount":
    from jaxpref import fit_attentiveness, load_counts
    fit_attentiveness(load_counts(k[:100_000], n[:100_000]))
before = rss("VmRSS")
start = time.perf_counter()
if engine == "bincount":
    labels = int(np.bincount(n * 21 + k, minlength=21 * 21).sum() * 20)
else:
    fit = fit_attentiveness(load_counts(k, n))
    labels = fit.data.num_labels
seconds = time.perf_counter() - start
fit_peak_mb = rss("VmHWM")
# The per-user table (seven columns of num_users values), built when first asked for.
start = time.perf_counter()
if engine != "bincount":
    assert int(fit.users["n_labels"].sum()) == labels
users_table_s = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": fit_peak_mb, "extra_mb": fit_peak_mb - before, "labels": labels,
                  "users_table_s": users_table_s, "users_table_peak_mb": rss("VmHWM")}))
"""


def run_child(engine: str, path: Path | int, package_dir: Path | None, code: str = CHILD) -> dict[str, float]:
    environment = dict(os.environ)
    if package_dir is not None:
        environment["PYTHONPATH"] = str(package_dir)
    output = subprocess.run(
        [sys.executable, "-c", code, engine, str(path)],
        capture_output=True, text=True, check=True, env=environment,
        cwd=package_dir or Path(__file__).resolve().parents[1],
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def write_files(rows: int, users: int, folder: Path) -> dict[str, Path]:
    """The same labels three ways: parquet with integer ids, parquet with string ids, CSV."""
    rng = np.random.default_rng(0)
    user = rng.integers(0, users, rows)
    label = rng.integers(0, 2, rows, dtype=np.int8)
    integer = pa.table({"user": user, "label": label})
    files = {"parquet, int ids": folder / "int.parquet", "parquet, string ids": folder / "str.parquet",
             "csv, ids as text": folder / "int.csv"}
    pq.write_table(integer, files["parquet, int ids"], row_group_size=1 << 20)
    text = pc.binary_join_element_wise("u", pc.cast(integer["user"], pa.string()), "")
    pq.write_table(pa.table({"user": text, "label": label}), files["parquet, string ids"], row_group_size=1 << 20)
    pa_csv.write_csv(integer, files["csv, ids as text"])
    return files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None, help="a directory holding an older jaxpref/")
    parser.add_argument("--counts-users", type=int, default=None, help="measure counts -> fit instead")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.counts_users is not None:
        counts_to_fit(args)
        return
    engines = {"read_table": None, "polars_group_by": None, "jaxpref": None}
    if args.baseline is not None:
        engines["jaxpref_baseline"] = args.baseline.resolve()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, path in write_files(args.rows, args.users, Path(folder)).items():
            row = {"file": name, "mb": round(path.stat().st_size / 2**20, 1)}
            # Repeats interleave the engines, so a change in the shared machine's load hits all alike.
            runs_of = {engine: [] for engine in engines}
            for _ in range(args.repeats):
                for engine, package_dir in engines.items():
                    runs_of[engine].append(run_child(engine, path, package_dir))
            for engine, runs in runs_of.items():
                assert all(run["labels"] == args.rows for run in runs), (engine, runs)
                row[f"{engine}_s"] = float(np.median([run["seconds"] for run in runs]))
                row[f"{engine}_peak_mb"] = float(max(run["peak_mb"] for run in runs))
            for engine in engines:
                row[f"{engine}_over_read"] = row[f"{engine}_s"] / row["read_table_s"]
            rows.append(row)
    for row in rows:
        row["jaxpref_over_int_ids"] = row["jaxpref_s"] / rows[0]["jaxpref_s"]
    columns = ["file", "mb"] + [f"{engine}_{what}" for engine in engines for what in ("s", "peak_mb", "over_read")]
    columns.append("jaxpref_over_int_ids")
    payload = {"rows": args.rows, "users": args.users, "repeats": args.repeats, "results": rows,
               "load_average": os.getloadavg()}
    write_results(args.out, "ingest", payload, markdown_table(rows, columns))


def counts_to_fit(args: argparse.Namespace) -> None:
    """`load_counts` + `fit_attentiveness` of ``--counts-users`` users beside the bincount floor."""
    engines = {"bincount": None, "jaxpref": None}
    if args.baseline is not None:
        engines["jaxpref_baseline"] = args.baseline.resolve()
    runs_of = {engine: [] for engine in engines}
    for _ in range(args.repeats):
        for engine, package_dir in engines.items():
            runs_of[engine].append(run_child(engine, args.counts_users, package_dir, COUNTS_CHILD))
    rows = []
    for engine, runs in runs_of.items():
        assert all(run["labels"] == 20 * args.counts_users for run in runs), (engine, runs)
        seconds = float(np.median([run["seconds"] for run in runs]))
        rows.append({"engine": engine, "users": args.counts_users, "s": seconds,
                     "peak_mb": max(run["peak_mb"] for run in runs),
                     "extra_mb": max(run["extra_mb"] for run in runs),
                     "users_table_s": float(np.median([run["users_table_s"] for run in runs])),
                     "users_table_peak_mb": max(run["users_table_peak_mb"] for run in runs)})
    for row in rows:
        row["over_bincount"] = row["s"] / rows[0]["s"]
    payload = {"users": args.counts_users, "labels_per_user": 20, "repeats": args.repeats, "results": rows,
               "load_average": os.getloadavg()}
    write_results(args.out, "counts_fit", payload, markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
