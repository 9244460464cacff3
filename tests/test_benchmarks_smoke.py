"""Every benchmark script runs end to end with --quick and writes its JSON, markdown and PNG."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, stem", [("bench_accelerate", "accelerate"), ("bench_dense", "dense"),
                                        ("bench_scale", "scale"), ("bench_fit", "fit"),
                                        ("bench_sharding", "sharding")])
def test_benchmark_quick_run(tmp_path, name, stem):
    completed = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(tmp_path)],
                               cwd=ROOT, capture_output=True, check=False, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    payload = json.loads((tmp_path / f"{stem}.json").read_text())
    assert payload["machine"]["cpu_count"] >= 1
    assert (tmp_path / f"{stem}.md").read_text().startswith(("|", "End to end"))
    assert (tmp_path / f"{stem}.png").stat().st_size > 1000


def test_gpu_benchmark_quick_run_on_cpu(tmp_path):
    """The accelerator benchmark runs anywhere (JAX picks the device); --quick sizes on the CI's CPU."""
    completed = subprocess.run([sys.executable, "-m", "benchmarks.bench_gpu", "--quick", "--out", str(tmp_path)],
                               cwd=ROOT, capture_output=True, check=False, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    payload = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert {"dense", "counts_fit", "per_label_fit"} <= set(payload)
    assert all(row["optimality_gap"] <= 1e-3 for row in payload["counts_fit"] + payload["per_label_fit"])
