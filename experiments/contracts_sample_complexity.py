"""Units needed to assess an annotator: self-consistency (SC) vs expert agreement (EX).

Liu, Wang, Ma & Li (arXiv 2502.06387) compare the sample complexity of the two monitors; the
formulas here are the jaxpref model (docs/contracts.md, "Monitors"):
n(eps, delta) = z^2 / (I(a) eps^2) with the Fisher information of each monitor, the crossover
action where I_SC = I_EX, and the exact binomial coverage of the estimator at that n by
simulation (2000 replications).

    python experiments/contracts_sample_complexity.py --quick
"""

from __future__ import annotations

import jax
import matplotlib.pyplot as plt
import numpy as np
from contracts_common import markdown_table, parse_quick, write_outputs

from jaxpref.contracts.monitoring import (
    crossover_action,
    estimate_action,
    ex_monitor,
    monitor_fisher,
    monitor_phi,
    sample_complexity,
    sc_monitor,
)

EPS, DELTA = 0.05, 0.05
ACTIONS = (0.3, 0.6, 0.9)
M2S = (0.02, 0.08)
RHOS = (0.0, 0.02, 0.08)


def coverage(key, monitor, a: float, units: float, replications: int) -> float | None:
    """Share of replications with |a_hat - a| <= eps at ``units`` units (None if infinite)."""
    if not np.isfinite(units) or units > 1e8:
        return None
    successes = jax.random.binomial(key, units, float(monitor_phi(monitor, a)), shape=(replications,))
    estimates = np.asarray(estimate_action(np.asarray(successes, dtype=np.float64), units, monitor))
    return float(np.mean(np.abs(estimates - a) <= EPS))


def main() -> None:
    quick = parse_quick(__doc__.splitlines()[0])
    replications = 500 if quick else 2000
    key = jax.random.key(0)
    monitors = {f"SC m2={m2}": sc_monitor(m2) for m2 in M2S} | {
        f"EX rho={rho}": ex_monitor(rho) for rho in RHOS
    }
    rows, table = [], {}
    for name, monitor in monitors.items():
        units = np.asarray(sample_complexity(np.array(ACTIONS), monitor, EPS, DELTA))
        covered = []
        for a, n in zip(ACTIONS, units):
            key, subkey = jax.random.split(key)
            covered.append(coverage(subkey, monitor, a, float(n), replications))
        table[name] = {
            "units": [None if not np.isfinite(n) else float(n) for n in units],
            "coverage": covered,
        }
        rows.append(
            [
                name,
                *("inf" if not np.isfinite(n) else int(n) for n in units),
                *("-" if c is None else f"{c:.3f}" for c in covered),
            ]
        )
    crossings = {
        f"m2={m2}, rho={rho}": (None if np.isnan(c := float(crossover_action(m2, rho))) else c)
        for m2 in M2S
        for rho in RHOS
        if rho > 0
    }

    grid = np.linspace(0.01, 1.0, 200)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, monitor in monitors.items():
        if "rho=0.0" in name:
            continue
        axis.semilogy(grid, monitor_fisher(monitor, grid), "-" if name.startswith("SC") else "--", label=name)
    axis.set(
        xlabel="action a", ylabel="Fisher information per unit", title="SC grows with a; EX is flat in a"
    )
    axis.legend()
    axis.grid(alpha=0.3, which="both")

    markdown = "\n".join(
        [
            f"# Sample complexity n(eps = {EPS}, delta = {DELTA}) (jaxpref model)",
            "",
            "Cramér–Rao units, then the simulated coverage P(|a_hat - a| <= eps) at that n"
            f" ({replications} exact-binomial replications; target {1 - DELTA}). EX with rho = 0 never learns a.",
            "",
            markdown_table(
                ["monitor", *(f"n at a={a}" for a in ACTIONS), *(f"coverage a={a}" for a in ACTIONS)], rows
            ),
            "",
            "Crossover action (I_SC = I_EX; SC is better per unit above it):",
            "",
            markdown_table(
                ["setting", "crossover a"],
                [[k, "none in [0, 1]" if v is None else v] for k, v in crossings.items()],
            ),
        ]
    )
    payload = {
        "eps": EPS,
        "delta": DELTA,
        "actions": list(ACTIONS),
        "table": table,
        "crossover_action": crossings,
    }
    write_outputs("sample_complexity", payload, markdown, figure, quick)


if __name__ == "__main__":
    main()
