"""CLI start-up: `jaxpref fit` of a 30-row file (first run, empty compilation cache; second run, warm cache)
and a rejected option, against a bare ``python -c "import jax"``, all measured in the same run.

    python benchmarks/bench_cli_startup.py            # prints a table, writes results/cli_startup.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


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
    rows = {
        "python -c 'import jax'": seconds([sys.executable, "-c", "import jax"], env, work),
        "fit 30 rows, first (empty cache)": seconds([*cli, "fit", str(data), "--mu", "0.74"], env, work),
        "fit 30 rows, second (warm cache)": seconds([*cli, "fit", str(data), "--mu", "0.74"], env, work),
        "fit 30 rows, cache off": seconds(
            [*cli, "fit", str(data), "--mu", "0.74"], {**env, "JAXPREF_COMPILATION_CACHE": "off"}, work
        ),
        "rejected option (--family gauss)": seconds([*cli, "fit", str(data), "--family", "gauss"], env, work),
        "unknown option (--nope)": seconds([*cli, "fit", str(data), "--nope"], env, work),
    }
    base = rows["python -c 'import jax'"]
    for name, value in rows.items():
        print(f"{name:40s} {value:6.2f} s  {value / base:5.1f}x import jax")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_startup.json").write_text(json.dumps({"seconds": rows, "import_jax_s": base}, indent=2))


if __name__ == "__main__":
    main()
