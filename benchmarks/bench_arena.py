"""Arena throughput: votes per second from a parquet file to a leaderboard with sandwich intervals.

Times `jaxpref.arena.fit_leaderboard` (read, validate, sparse statistics, certified EM, covariances)
for the attentiveness-aware fit (two_point) and plain Bradley-Terry (``family="none"``), warm
(compiled) runs, and LMArena's arena-rank 0.1.1 BT on the same file when ``--arena-rank-python``
names an environment that has it (it pins jax 0.8.1 / numpy 2.3.3; its time is also read to
ratings with sandwich intervals, second call in its process). Prints a table and writes
``arena.json``, ``arena.md`` and ``arena.png`` to ``--out`` (default ``results/``).

    python -m benchmarks.bench_arena [--votes 100000 400000] [--arena-rank-python PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import RESULTS, machine, markdown_table, median_seconds, new_figure, save_figure, write_results

from jaxpref.arena import fit_leaderboard, simulate_arena

RUNNER = Path(__file__).resolve().parent.parent / "experiments" / "arena_rank_runner.py"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--arena-rank-python", default=None)
    parser.add_argument("--quick", action="store_true", help="one small file, one repeat")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.votes, args.models, args.repeats = [5_000], 10, 1
    scratch = Path(tempfile.mkdtemp(prefix="bench_arena_"))
    rows = []
    for num_votes in args.votes:
        votes, _, _ = simulate_arena(num_votes, num_models=args.models, num_voters=num_votes // 20,
                                     votes_per_voter=20, random_share=0.3, tie_share=0.1)
        path = scratch / f"votes_{num_votes}.parquet"
        votes.to_parquet(path)
        row = {"votes": len(votes), "voters": votes["judge"].nunique(), "models": args.models}
        for method, family in (("aware", "two_point"), ("plain", "none")):
            seconds = median_seconds(lambda: fit_leaderboard(path, family=family), args.repeats)
            row[f"{method}_seconds"] = seconds
            row[f"{method}_votes_per_second"] = len(votes) / seconds
        if args.arena_rank_python:
            completed = subprocess.run([args.arena_rank_python, str(RUNNER)], input=json.dumps([str(path)] * 2),
                                       capture_output=True, text=True, check=True)
            seconds = json.loads(completed.stdout)[1]["seconds"]
            row["arena_rank_seconds"] = seconds
            row["arena_rank_votes_per_second"] = len(votes) / seconds
            row["aware_over_arena_rank_time"] = row["aware_seconds"] / seconds
            row["plain_over_arena_rank_time"] = row["plain_seconds"] / seconds
        rows.append(row)
        print(row, flush=True)
    out = Path(args.out)
    write_results(out, "arena", {"machine": machine(), "rows": rows}, markdown_table(rows, list(rows[0])))
    plt, figure, axes = new_figure(figsize=(6, 3.5))
    methods = [name[: -len("_votes_per_second")] for name in rows[0] if name.endswith("_votes_per_second")]
    for offset, method in enumerate(methods):
        axes.bar([i + 0.25 * offset for i in range(len(rows))], [row[f"{method}_votes_per_second"] for row in rows],
                 width=0.25, label=method)
    axes.set_xticks(range(len(rows)), [f"{row['votes']:,} votes" for row in rows])
    axes.set_ylabel("votes per second (parquet to leaderboard)")
    axes.legend()
    save_figure(plt, figure, out / "arena.png")


if __name__ == "__main__":
    main()
