"""The paper's Table 4: relative estimation error of (P_eta, mu) vs m users and n labels per user.

Truths (our reading of the paper's Table 4, see experiments/README.md, "Choices"): a two-point
P_eta with weights 0.6 (casual, eta = 0.1) and 0.4 (attentive, eta = 0.9), and Beta(3, 5);
mu = 0.98 for both. Settings for mu: known, MAP under the paper's Beta(8, 2) prior, and the free
MLE. The two-point support is either known ({0.1, 0.9}) or estimated (then its error counts too;
with mu free it is not identified, so that combination is skipped).

Error of one replication: ||theta_hat - theta|| / ||theta|| over the estimated parameters
(two-point: both weights [, both nodes] [, mu]; Beta: alpha, beta [, mu]); mean and sd over the
replications. Each replication's histogram of k_j is drawn from its exact law, Multinomial(m,
P(k_j = k)) (`_common.sample_histograms`), and all replications of one (m, n, setting) are
fitted as one vmapped EM computation.
Float64 throughout; EM tolerance 1e-10 per user on the objective.

Usage:
    python experiments/table4.py --quick     # about a minute on 2 cores
    python experiments/table4.py             # m in {1e2 .. 1e5}, n in {5, 10, 20, 50}, 100 replications
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import _common as common
import numpy as np

from jaxpref.core.families import make_family
from jaxpref.core.families.base import Family
from jaxpref.simulate import EtaDistribution, eta_distribution
from jaxpref.study import StudyFits

TRUE_MU = 0.98
TOLERANCE = 1e-10
MAX_ITER = 5000
FULL = {"users": (100, 1_000, 10_000, 100_000), "labels": (5, 10, 20, 50), "replications": 100}
QUICK = {"users": (300, 3_000), "labels": (10,), "replications": 16}


class Setting(NamedTuple):
    """One row block of the table: a family to fit, the truth it is fitted to, and the mu modes."""

    name: str
    family: Family
    truth: EtaDistribution
    mu_modes: tuple[str, ...]


def settings() -> list[Setting]:
    two_point = eta_distribution(
        "two_point", support=common.TWO_POINT_SUPPORT, weight_hi=common.TWO_POINT_WEIGHT_HI
    )
    return [
        Setting("two_point", make_family("two_point", support=common.TWO_POINT_SUPPORT), two_point, ("known", "prior", "free")),
        Setting("two_point_support_estimated", make_family("two_point"), two_point, ("known", "prior")),
        Setting("beta", make_family("beta", num_grid=64), eta_distribution("beta", alpha=3.0, beta=5.0), ("known", "prior", "free")),
    ]


def parameter_vectors(setting: Setting, mu_mode: str, fits: StudyFits) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(estimates (R, P), truth (P,), names)`` of the parameters this setting estimates."""
    truth = setting.truth
    if setting.family.name == "beta":
        estimates, true_values, names = [fits.beta_shape], [truth.alpha, truth.beta], ["alpha", "beta"]
    else:
        # EM may swap the two nodes when they move: compare in the order (casual, attentive).
        order = np.argsort(fits.eta_grid, axis=1)
        estimates = [np.take_along_axis(fits.weights, order, axis=1)]
        true_values, names = list(truth.weights), ["weight_casual", "weight_attentive"]
        if setting.family.support is None:
            estimates.append(np.take_along_axis(fits.eta_grid, order, axis=1))
            true_values += list(truth.support)
            names += ["eta_casual", "eta_attentive"]
    if mu_mode != "known":
        estimates.append(fits.mu)
        true_values.append(TRUE_MU)
        names.append("mu")
    return np.concatenate(estimates, axis=1), np.asarray(true_values), names


def summarise(setting: Setting, mu_mode: str, fits: StudyFits) -> dict:
    estimates, truth, names = parameter_vectors(setting, mu_mode, fits)
    relative = np.linalg.norm(estimates - truth, axis=1) / np.linalg.norm(truth)
    return {
        "relative_error": common.mean_sd(relative),
        "estimates": {name: common.mean_sd(estimates[:, i]) for i, name in enumerate(names)},
        "truth": dict(zip(names, truth.tolist())),
        "converged_share": float(np.mean(fits.converged)),
        "max_iter_used": int(np.max(fits.num_iter)),
    }


def run(args) -> dict:
    grid = QUICK if args.quick else FULL
    cells = []
    # Larger n first: the costly profile fits are those with few labels per user.
    labels = sorted(grid["labels"], reverse=True)
    work = [(s, mode, m, n) for s in settings() for mode in s.mu_modes for n in labels for m in grid["users"]]
    with common.progress() as bar:
        task = bar.add_task("Table 4 cells", total=len(work))
        for setting, mu_mode, num_users, labels_per_user in work:
            # Same data for every fitted setting and mu mode of one truth, m and n.
            seed = (args.seed, num_users, labels_per_user, int(setting.truth.family == "beta"))
            histograms = common.sample_histograms(
                seed, grid["replications"], num_users, labels_per_user, TRUE_MU, setting.truth
            )
            config = common.mu_config(setting.family, mu_mode, tol=TOLERANCE, max_iter=MAX_ITER)
            fits = common.fit_histograms(histograms, labels_per_user, config, TRUE_MU)
            cells.append({"setting": setting.name, "mu_mode": mu_mode, "users": num_users, "labels": labels_per_user,
                          **summarise(setting, mu_mode, fits)})
            bar.advance(task)
            bar.log(f"{setting.name} mu {mu_mode} n={labels_per_user} m={num_users}: "
                    f"{100 * cells[-1]['relative_error']['mean']:.2f} %")
            # A checkpoint, so that an interrupted full run still leaves its finished cells.
            common.write_json(Path(args.out) / "table4.partial.json", {"grid": grid, "cells": cells})
    (Path(args.out) / "table4.partial.json").unlink()
    return {"grid": grid, "true_mu": TRUE_MU, "tolerance": TOLERANCE, "cells": cells}, None


#: A cell of the grid with no result (a run stopped before it: see the mode note).
NOT_RUN = "not run"


def markdown(result: dict) -> str:
    grid = result["grid"]
    header = ["P_eta fitted", "mu", "n"] + [f"m = {m:,}" for m in grid["users"]]
    rows = []
    for (setting, mode, n), group in _grouped(result["cells"]).items():
        by_m = {c["users"]: c["relative_error"] for c in group}
        rows.append([setting, mode, n] + [
            f"{100 * by_m[m]['mean']:.2f} ± {100 * by_m[m]['sd']:.2f} %" if m in by_m else NOT_RUN for m in grid["users"]
        ])
    largest = max(grid["users"])
    estimate_rows = [
        [c["setting"], c["mu_mode"], c["labels"],
         ", ".join(f"{k} {v['mean']:.4g} (sd {v['sd']:.2g}; true {c['truth'][k]:.4g})" for k, v in c["estimates"].items()),
         ", ".join(f"{k} {100 * relative_rmse(v, c['truth'][k]):.2f}" for k, v in c["estimates"].items()),
         f"{100 * c['relative_error']['mean']:.2f} %", f"{c['converged_share']:.2f}"]
        for c in result["cells"] if c["users"] == largest
    ]
    bias_rows = [
        [setting, mode, n] + [
            f"{100 * relative_error_of_mean(by_m[m]):.2f} %" if m in by_m else NOT_RUN for m in grid["users"]
        ]
        for (setting, mode, n), group in _grouped(result["cells"]).items()
        for by_m in [{c["users"]: c for c in group}]
    ]
    return (
        f"## Table 4: relative error ||theta_hat - theta|| / ||theta|| (mean ± sd over {grid['replications']} replications)\n\n"
        + common.markdown_table(header, rows)
        + f"\n### Mean estimates at m = {largest:,}\n\n"
        + common.markdown_table(
            ["P_eta fitted", "mu", "n", "mean estimates", "relative RMSE per parameter (%)", "rel. error", "converged"],
            estimate_rows,
        )
        + "\n### Relative error of the mean estimate, ||mean(theta_hat) - theta|| / ||theta|| (the bias)\n\n"
        + "The paper's Beta row (3.01, 5.02) -> 0.4 % reads like this quantity: |3.01 - 3| / 3 = 0.33 %, "
        + "|5.02 - 5| / 5 = 0.4 %.\n\n"
        + common.markdown_table(header, bias_rows)
    )


def relative_rmse(summary: dict, truth: float) -> float:
    """sqrt(bias^2 + sd^2) / |truth| of one parameter, from its mean and sd over replications."""
    return float(((summary["mean"] - truth) ** 2 + summary["sd"] ** 2) ** 0.5 / abs(truth))


def relative_error_of_mean(cell: dict) -> float:
    """||mean over replications of theta_hat - theta|| / ||theta||."""
    means = [cell["estimates"][name]["mean"] for name in cell["truth"]]
    truth = list(cell["truth"].values())
    return float(np.linalg.norm(np.subtract(means, truth)) / np.linalg.norm(truth))


def _grouped(cells: list[dict]) -> dict:
    groups: dict = {}
    for cell in cells:
        groups.setdefault((cell["setting"], cell["mu_mode"], cell["labels"]), []).append(cell)
    return groups


def figure(result: dict, unused_extras=None):
    del unused_extras
    import matplotlib.pyplot as plt

    names = [s.name for s in settings()]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), sharey=True)
    styles = {"known": "-", "prior": "--", "free": ":"}
    colors = dict(zip(result["grid"]["labels"], plt.cm.viridis(np.linspace(0, 0.9, len(result["grid"]["labels"])))))
    for axis, name in zip(axes, names):
        for (setting, mode, n), group in _grouped(result["cells"]).items():
            if setting != name:
                continue
            users = [c["users"] for c in group]
            errors = [100 * c["relative_error"]["mean"] for c in group]
            axis.plot(users, errors, styles[mode], marker="o", color=colors[n], label=f"n={n}, mu {mode}")
        axis.axhline(0.5, color="grey", lw=0.8)
        axis.text(users[0], 0.55, "paper: 0.4-0.5 %", color="grey", fontsize=8)
        axis.set(xscale="log", yscale="log", xlabel="m users", title=name)
        axis.legend(fontsize=6)
    axes[0].set_ylabel("relative error (%)")
    return common.finish_figure(fig, "Table 4: relative estimation error vs m and n (true mu = 0.98)")


if __name__ == "__main__":
    common.main("table4", __doc__.splitlines()[0], run, markdown, figure)
