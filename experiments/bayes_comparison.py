"""Bayesian model comparison on simulated topics: which mu structure and which family?

Data: 300 users x 20 labels, two topics with gaps mu = (0.65, 0.9), P_eta two_point on
(0.1, 0.9) with weight 0.6 on 0.9. Models: (one mu, per-topic mu, mu known per topic) x
(two_point with free support, beta), each fitted once by NUTS at the defaults; then
PSIS-LOO (and WAIC from the same fits), stacking weights, Bayes factors by bridge sampling,
posterior predictive p-values. Bridge sampling is checked against exact quadrature on two
small cases (1 and 2 parameters). Grid size 32 vs 64: time of one beta fit each.

Writes experiments/results/bayes/: comparison.csv, waic.csv, evidence_check.json, ppc.png,
summary.json.

    python experiments/bayes_comparison.py
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import special, stats

from jaxpref.bayes import checks
from jaxpref.bayes.compare import compare_models
from jaxpref.bayes.evidence import log_evidence
from jaxpref.bayes.model import fit_bayes
from jaxpref.simulate import simulate

OUT = Path(__file__).parent / "results" / "bayes"
MU = (0.65, 0.9)
SUPPORT = (0.1, 0.9)
console = Console()


def models() -> dict[str, dict]:
    structures = {"one mu": {}, "per topic": {"group_column": "group"},
                  "mu known": {"group_column": "group", "mu": list(MU)}}
    return {f"{structure} / {family}": {"family": family, **options}
            for structure, options in structures.items() for family in ("two_point", "beta")}


def exact_log_evidence(frame, mu_prior: tuple[float, float] | None, num_cells: int = 800) -> float:
    """log p(labels) by midpoint quadrature: over weight_hi (mu known 0.8) or (mu, weight_hi)."""
    grouped = frame.groupby("user", sort=False)["label"]
    k, n = grouped.sum().to_numpy(), grouped.count().to_numpy()
    weight = (np.arange(num_cells) + 0.5) / num_cells
    if mu_prior is None:
        mu, log_prior = np.array([0.8]), np.zeros(1)
        area = 1.0 / num_cells
    else:
        mu = 0.5 + 0.5 * (np.arange(num_cells) + 0.5) / num_cells
        log_prior = stats.beta.logpdf(mu, *mu_prior) - np.log(stats.beta.sf(0.5, *mu_prior))
        area = 0.5 / num_cells**2
    mu_mesh, weight_mesh = np.meshgrid(mu, weight, indexing="ij")
    log_joint = log_prior[:, None] + np.zeros_like(weight_mesh)
    for k_value, n_value in zip(k, n):
        terms = [np.log(w) + k_value * np.log(0.5 + eta * (mu_mesh - 0.5))
                 + (n_value - k_value) * np.log(0.5 - eta * (mu_mesh - 0.5))
                 for eta, w in ((SUPPORT[0], 1.0 - weight_mesh), (SUPPORT[1], weight_mesh))]
        log_joint = log_joint + np.logaddexp(*terms)
    return float(special.logsumexp(log_joint) + np.log(area))


def evidence_check() -> list[dict]:
    frame = simulate(jax.random.key(11), 100, 10, family="two_point", support=SUPPORT, weight_hi=0.4, mu=0.8).frame
    rows = []
    for label, options, prior in (("weight_hi (mu known)", {"mu": 0.8}, None),
                                  ("mu, weight_hi", {"mu_prior": (8.0, 2.0)}, (8.0, 2.0))):
        fit = fit_bayes(frame, family="two_point", support=SUPPORT, num_samples=1000, **options)
        estimate = log_evidence(fit)
        exact = exact_log_evidence(frame, prior)
        rows.append({"parameters": label, "bridge": estimate.log_evidence, "mc_sd": estimate.mc_sd,
                     "quadrature": exact, "difference": estimate.log_evidence - exact})
    return rows


def grid_timing(frame) -> dict[str, float]:
    seconds = {}
    for num_grid in (32, 64):
        start = time.perf_counter()
        fit_bayes(frame, family="beta", num_grid=num_grid)
        seconds[str(num_grid)] = time.perf_counter() - start
    return seconds


def show(table, title: str, columns: list[str]) -> None:
    view = Table(title=title)
    for column in columns:
        view.add_column(column)
    for row in table[columns].itertuples(index=False):
        view.add_row(*(f"{value:.3f}" if isinstance(value, float) else str(value) for value in row))
    console.print(view)


def main() -> None:
    warnings.simplefilter("ignore", FutureWarning)
    OUT.mkdir(parents=True, exist_ok=True)
    frame = simulate(jax.random.key(2026), 300, 20, family="two_point", support=SUPPORT, weight_hi=0.6, mu=MU).frame
    start = time.perf_counter()
    with console.status("fitting 6 models by NUTS...") as status:
        result = compare_models(frame, models(), "loo", evidence=True,
                                progress=lambda line: status.update(line))
    loo_seconds = time.perf_counter() - start
    table = result.table
    # WAIC from the same fits: nothing is refitted.
    waic = compare_models(frame, result.fits, "waic").table
    columns = ["model", "score", "se", "diff", "diff_se", "weight", "pareto_k_max", "ppc_p_value", "log_evidence",
               "log_evidence_sd", "log_bf"]
    show(table, "PSIS-LOO, stacking weights, Bayes factors, predictive p-values", columns)
    show(waic, "WAIC (same fits)", ["model", "score", "diff", "diff_se", "weight"])
    for problem in result.problems:
        console.print(f"[yellow]{problem}[/yellow]")
    table.to_csv(OUT / "comparison.csv", index=False)
    waic.to_csv(OUT / "waic.csv", index=False)
    figure_checks = {name: checks.predictive_check(result.fits[name].inference_data)
                     for name in ("per topic / two_point",)}
    checks.plot_predictive_check(figure_checks["per topic / two_point"],
                                 "posterior predictive check: per topic / two_point").savefig(OUT / "ppc.png", dpi=100)
    with console.status("bridge sampling against quadrature..."):
        evidence_rows = evidence_check()
    console.print(evidence_rows)
    (OUT / "evidence_check.json").write_text(json.dumps(evidence_rows, indent=1))
    with console.status("grid 32 vs 64..."):
        grid_seconds = grid_timing(frame)
    summary = {"loo_with_evidence_seconds": loo_seconds, "fit_seconds_by_grid": grid_seconds,
               "problems": result.problems, "explanation": table.attrs["explanation"]}
    console.print(summary)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
