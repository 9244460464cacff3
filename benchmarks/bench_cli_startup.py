"""CLI start-up: `jaxpref fit` of a 30-row file (first run, empty compilation cache; second run, warm cache)
and a rejected option, against a bare ``python -c "import jax"``, all measured in the same run. Every
figure but the first run is the median of 5 runs, interleaved with the ``import jax`` runs.

    python benchmarks/bench_cli_startup.py            # prints a table, writes results/cli_startup.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


REPEATS = 5


def seconds(command: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    work = tempfile.mkdtemp()
    data = Path(work) / "small.csv"
    data.write_text("user,label\n" + "".join(f"u{i % 6},{(i * 7) % 3 % 2}\n" for i in range(30)))
    env = {
        **os.environ,
        "JAXPREF_COMPILATION_CACHE": str(Path(work) / "xla"),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    cli = [sys.executable, "-m", "jaxpref.cli"]
    fit = [*cli, "fit", str(data), "--mu", "0.74"]
    commands = {
        "python -c 'import jax'": ([sys.executable, "-c", "import jax"], env),
        "fit 30 rows, second (warm cache)": (fit, env),
        "fit 30 rows, cache off": (fit, {**env, "JAXPREF_COMPILATION_CACHE": "off"}),
        "rejected option (--family gauss)": ([*cli, "fit", str(data), "--family", "gauss"], env),
        "unknown option (--nope)": ([*cli, "fit", str(data), "--nope"], env),
    }
    first = seconds(fit, env, work)  # fills the cache
    runs = {name: [] for name in commands}
    for _ in range(REPEATS):
        for name, (command, command_env) in commands.items():
            runs[name].append(seconds(command, command_env, work))
    rows = {name: statistics.median(values) for name, values in runs.items()}
    rows["fit 30 rows, first (empty cache)"] = first
    base = rows["python -c 'import jax'"]
    for name, value in rows.items():
        print(f"{name:40s} {value:6.2f} s  {value / base:5.1f}x import jax")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_startup.json").write_text(json.dumps({"seconds": rows, "import_jax_s": base}, indent=2))


if __name__ == "__main__":
    main()
