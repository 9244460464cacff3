"""The arena experiment and benchmark run end to end in their quick modes and write their outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def _run(*arguments):
    completed = subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_simulation_quick(tmp_path):
    _run("experiments/arena_simulation.py", "--quick", "--out", str(tmp_path))
    summary = pd.read_csv(tmp_path / "simulation.csv")
    assert set(summary["method"]) == {"aware", "plain"}
    assert json.loads((tmp_path / "simulation.json").read_text())["arena_rank"].startswith("not run")
    for name in ("leaderboard", "eta_histogram", "ranks_plain_vs_aware", "metrics_vs_share"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_benchmark_quick(tmp_path):
    _run("-m", "benchmarks.bench_arena", "--quick", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "arena.json").read_text())["rows"]
    assert rows[0]["aware_votes_per_second"] > 0 and rows[0]["plain_votes_per_second"] > 0
    assert (tmp_path / "arena.png").stat().st_size > 1000
