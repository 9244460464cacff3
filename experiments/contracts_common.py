"""Shared plumbing of the contracts experiments: command line, economies, output files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

from jaxpref.contracts.agent import Economy, economy  # noqa: E402
from jaxpref.contracts.monitoring import Monitor, ex_monitor, sc_monitor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "contracts"

# One economy throughout (the jaxpref model): CARA rho_u = 1, c(a) = a^3 / 3, R(a) = a, u0 = 0,
# limited liability at w >= -5. First best: a_FB = 0.879.
ECONOMY_OPTIONS: dict[str, float] = {
    "risk_aversion": 1.0,
    "cost_scale": 1.0,
    "cost_power": 3.0,
    "revenue_per_action": 1.0,
    "outside_utility": 0.0,
    "min_wage": -5.0,
}


def parse_quick(description: str) -> bool:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small grids, finishes in a couple of minutes")
    return parser.parse_args().quick


def make_economy(monitor: Monitor, num_samples: int = 1) -> Economy:
    return economy(monitor, num_samples, **ECONOMY_OPTIONS)


def named_monitors(quick: bool) -> dict[str, Monitor]:
    monitors = {"SC m2=0.15": sc_monitor(0.15), "EX rho=0.2": ex_monitor(0.2)}
    if not quick:
        monitors |= {
            "SC m2=0.08": sc_monitor(0.08),
            "SC m2=0.25": sc_monitor(0.25),
            "EX rho=0.1": ex_monitor(0.1),
        }
    return monitors


def write_outputs(name: str, payload: dict[str, Any], markdown: str, figure: Any, quick: bool) -> None:
    """Writes ``<name>[_quick].json/.md/.png`` under experiments/results/contracts/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / (f"{name}_quick" if quick else name)
    payload = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "quick": quick, **payload}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown + f"\n![{name}]({stem.name}.png)\n")
    figure.savefig(stem.with_suffix(".png"), dpi=130, bbox_inches="tight")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
