"""Shared helpers of the benchmark scripts: timing, machine facts, and writing JSON / markdown / PNG."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def median_seconds(function: Callable[[], Any], repeats: int, block: Callable[[Any], Any] = lambda x: x) -> float:
    """Median wall time of ``function()`` over ``repeats`` runs after one warm-up run."""
    block(function())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(function())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def machine() -> dict[str, Any]:
    """What the numbers were measured on (the 2-core CI box is shared: load average included)."""
    import jax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0].device_kind),
    }


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(name, "")) for name in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(out_dir: Path, name: str, payload: dict[str, Any], table: str) -> None:
    """Writes ``name.json`` and ``name.md`` under ``out_dir`` and prints the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float))
    (out_dir / f"{name}.md").write_text(table + "\n")
    print(table)


def new_figure(**subplots_options: Any):
    """``(pyplot, figure, axes)`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(**subplots_options)
    return plt, figure, axes


def save_figure(plt: Any, figure: Any, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
