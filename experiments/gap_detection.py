"""How the gap mu limits what can be learned: finding the attentive users vs mu and n.

For each P_eta (two-point: attentive = the users at eta = 0.9; Beta(3, 5): attentive = eta >= 0.5),
gap mu and labels per user n, we simulate m users, fit EM (mu under the paper's Beta(8, 2) prior,
and mu known), and measure

- ROC AUC of the posterior mean E[eta | data] for the truly attentive users. With every n_j equal
  the posterior mean is increasing in k_j whatever the fitted parameters, so this AUC equals the
  AUC of the raw agreement count k_j: it measures what the data allow, not the fit;
- precision and recall of the paper's rule "MAP eta >= 0.5", which does depend on the fit.

Replications and gaps of one (P_eta, n, mu setting) run as one vmapped computation.

Usage:
    python experiments/gap_detection.py --quick
    python experiments/gap_detection.py
"""

from __future__ import annotations

import _common as common
import jax
import numpy as np

from jaxpref.metrics import precision_recall, roc_auc

FULL = {"gaps": (0.55, 0.60, 0.65, 0.74, 0.85, 0.98), "labels": (5, 10, 20, 50), "users": 2000, "replications": 10,
        "mu_modes": ("prior", "known")}
QUICK = {"gaps": (0.60, 0.74, 0.98), "labels": (10,), "users": 1000, "replications": 3, "mu_modes": ("prior",)}
ATTENTIVE_ETA = 0.5


def run(args) -> tuple[dict, None]:
    grid = QUICK if args.quick else FULL
    key = jax.random.key(args.seed)
    gaps = np.repeat(np.asarray(grid["gaps"]), grid["replications"])
    cells = []
    work = [(name, mode, n) for name in common.paper_truths() for mode in grid["mu_modes"] for n in grid["labels"]]
    with common.progress() as bar:
        task = bar.add_task("gap x n cells", total=len(work))
        for name, mode, labels_per_user in work:
            distribution, family = common.paper_truths()[name]
            config = common.mu_config(family, mode, tol=1e-9, max_iter=3000)
            data_key = jax.random.fold_in(jax.random.fold_in(key, labels_per_user), int(name == "beta"))
            scored = common.simulate_and_score(data_key, gaps, grid["users"], labels_per_user, distribution, config)
            for gap in grid["gaps"]:
                sets = np.flatnonzero(gaps == gap)
                auc, auc_raw, precision, recall, mu_hat = [], [], [], [], []
                for i in sets:
                    attentive = scored.eta[i] >= ATTENTIVE_ETA
                    auc.append(roc_auc(scored.eta_mean[i], attentive))
                    auc_raw.append(roc_auc(scored.num_pref_a[i], attentive))
                    p, r = precision_recall(scored.eta_map[i] >= ATTENTIVE_ETA, attentive)
                    precision.append(p)
                    recall.append(r)
                    mu_hat.append(scored.mu_hat[i])
                cells.append({
                    "truth": name, "mu_mode": mode, "labels": labels_per_user, "mu": gap,
                    "auc": common.mean_sd(auc), "auc_raw_count": common.mean_sd(auc_raw),
                    "precision": common.mean_sd(precision), "recall": common.mean_sd(recall),
                    "mu_hat": common.mean_sd(mu_hat),
                })
            bar.advance(task)
    return {"grid": grid, "attentive_eta": ATTENTIVE_ETA, "cells": cells}, None


def markdown(result: dict) -> str:
    rows = [
        [c["truth"], c["mu_mode"], c["labels"], c["mu"], f"{c['mu_hat']['mean']:.3f}",
         f"{c['auc']['mean']:.3f} ± {c['auc']['sd']:.3f}", f"{c['auc_raw_count']['mean']:.3f}",
         c["precision"]["mean"], c["recall"]["mean"]]
        for c in result["cells"]
    ]
    grid = result["grid"]
    return (
        f"## Finding attentive users vs the gap mu and n (m = {grid['users']}, {grid['replications']} replications)\n\n"
        "Attentive = eta >= 0.5. AUC of E[eta | data]; AUC of the raw count k (equal, see the docstring); "
        "precision / recall of MAP eta >= 0.5 (NaN precision: nobody selected).\n\n"
        + common.markdown_table(
            ["P_eta", "mu setting", "n", "true mu", "mu_hat", "AUC", "AUC of k", "precision", "recall"], rows
        )
    )


def figure(result: dict, unused_extras=None):
    import matplotlib.pyplot as plt

    del unused_extras
    grid = result["grid"]
    names = list(common.paper_truths())
    fig, axes = plt.subplots(len(names), 3, figsize=(14, 4 * len(names)), squeeze=False)
    colors = dict(zip(grid["labels"], plt.cm.viridis(np.linspace(0, 0.9, len(grid["labels"])))))
    styles = {"prior": "-", "known": "--"}
    for row, name in enumerate(names):
        for col, metric in enumerate(("auc", "precision", "recall")):
            axis = axes[row, col]
            for mode in grid["mu_modes"]:
                for n in grid["labels"]:
                    cells = [c for c in result["cells"] if (c["truth"], c["mu_mode"], c["labels"]) == (name, mode, n)]
                    if metric == "auc" and mode != grid["mu_modes"][0]:
                        continue  # the AUC does not depend on the fit (docstring)
                    axis.plot([c["mu"] for c in cells], [c[metric]["mean"] for c in cells], styles[mode], marker="o",
                              color=colors[n], label=f"n={n}" + ("" if metric == "auc" else f", mu {mode}"))
            axis.set(xlabel="true gap mu", ylabel=metric, title=f"{name}: {metric}", ylim=(0, 1.02))
            axis.legend(fontsize=6)
    return common.finish_figure(fig, "Finding attentive users (eta >= 0.5): AUC, and precision / recall of MAP eta >= 0.5")


if __name__ == "__main__":
    common.main("gap_detection", __doc__.splitlines()[0], run, markdown, figure)
