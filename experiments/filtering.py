"""Filtering users by estimated attentiveness: what the kept labels look like vs the threshold.

The data side of the paper's "sweet spot", at the gaps mu = 0.74 and 0.98: a higher threshold keeps fewer labels but cleaner ones.
For each P_eta (two-point, Beta(3, 5): mostly casual, Beta(5, 3): mostly attentive) we simulate
label-level data (`jaxpref.simulate`, which records whether each label was given attentively),
fit EM (the family of the truth; mu under the Beta(8, 2) prior, and mu known), keep the users
with E[eta | data] >= threshold, and report over the kept labels:

- fraction of labels kept;
- attentive share: the fraction of kept labels given attentively (truth z);
- noise rate: the fraction of kept labels that chose the weaker model B, and the flip rate
  (1 - attentive share) / 2, the label noise a DPO learner sees (docs/model.md);
- signal: kept labels x (2 * attentive share * (mu - 1/2))^2, relative to no filtering. This is
  a proxy for the information about the preference direction (the squared mean margin of a
  label times the number of labels); its maximum over the threshold is a "sweet spot".

The oracle keeps users by their true eta. The paper's own rule, MAP eta >= 0.5, is marked too.

Usage:
    python experiments/filtering.py --quick
    python experiments/filtering.py
"""

from __future__ import annotations

import _common as common
import jax
import numpy as np

from jaxpref.core.families import make_family
from jaxpref.simulate import simulate

GAPS = (0.74, 0.98)
THRESHOLDS = np.round(np.linspace(0.0, 0.95, 20), 2)
MU_MODES = ("prior", "known")
FULL = {"users": 5000, "labels": 10, "replications": 5}
QUICK = {"users": 1000, "labels": 10, "replications": 1}


def truths() -> dict:
    """name -> (options of `jaxpref.simulate`, fitted family)."""
    two_point = {"family": "two_point", "support": common.TWO_POINT_SUPPORT, "weight_hi": common.TWO_POINT_WEIGHT_HI}
    beta = make_family("beta", num_grid=64)
    return {
        "two_point": (two_point, make_family("two_point", support=common.TWO_POINT_SUPPORT)),
        "beta(3,5)": ({"family": "beta", "alpha": 3.0, "beta": 5.0}, beta),
        "beta(5,3)": ({"family": "beta", "alpha": 5.0, "beta": 3.0}, beta),
    }


def kept_label_metrics(
    keep_user: np.ndarray, user: np.ndarray, label: np.ndarray, attentive: np.ndarray, gap: float
) -> dict:
    """Metrics of the labels of the kept users (NaN when nothing is kept)."""
    kept = keep_user[user]
    if not kept.any():
        nan = float("nan")
        return {"labels_kept": 0.0, "attentive_share": nan, "noise_rate": nan, "flip_rate": nan, "signal": 0.0}
    share = float(attentive[kept].mean())
    return {
        "labels_kept": float(kept.mean()),
        "attentive_share": share,
        "noise_rate": float(1.0 - label[kept].mean()),
        "flip_rate": (1.0 - share) / 2.0,
        "signal": float(kept.sum() * (2.0 * share * (gap - 0.5)) ** 2),
    }


def run(args) -> tuple[dict, None]:
    size = QUICK if args.quick else FULL
    key = jax.random.key(args.seed)
    curves = []
    work = [(name, gap, r) for name in truths() for gap in GAPS for r in range(size["replications"])]
    with common.progress() as bar:
        task = bar.add_task("filtering data sets", total=len(work))
        for name, gap, replication in work:
            options, family = truths()[name]
            data_key = jax.random.fold_in(jax.random.fold_in(key, replication), list(truths()).index(name))
            data_key = jax.random.fold_in(data_key, int(1000 * gap))
            sim = simulate(data_key, size["users"], size["labels"], mu=gap, **options)
            user, label = sim.frame["user"].to_numpy(), sim.frame["label"].to_numpy()
            num_pref_a = np.bincount(user, weights=label, minlength=size["users"]).astype(np.int64)
            num_labels = np.bincount(user, minlength=size["users"])
            baseline = kept_label_metrics(np.ones(size["users"], bool), user, label, sim.attentive, gap)["signal"]
            scores = {"oracle": (sim.eta, None)}
            for mode in MU_MODES:
                config = common.mu_config(family, mode, tol=1e-9, max_iter=3000)
                fit = common.fit_users(num_pref_a, num_labels, config, common.mu_start(config, gap))
                scores[f"EM, mu {mode}"] = (fit.eta_mean, fit.eta_map)
            for scorer, (score, eta_map) in scores.items():
                rows = []
                for threshold in THRESHOLDS:
                    metrics = kept_label_metrics(score >= threshold, user, label, sim.attentive, gap)
                    rows.append({"threshold": float(threshold), **metrics, "signal": metrics["signal"] / baseline})
                paper_rule = None
                if eta_map is not None:
                    paper_rule = kept_label_metrics(eta_map >= 0.5, user, label, sim.attentive, gap)
                    paper_rule["signal"] /= baseline
                curves.append({"truth": name, "mu": gap, "replication": replication, "scorer": scorer, "sweep": rows,
                               "map_rule_0.5": paper_rule})
            bar.advance(task)
    return {"size": size, "gaps": GAPS, "thresholds": THRESHOLDS, "curves": _averaged(curves)}, None


def _averaged(curves: list[dict]) -> list[dict]:
    """Averages the sweeps of the replications of each (truth, scorer)."""
    merged: dict = {}
    for curve in curves:
        merged.setdefault((curve["truth"], curve["mu"], curve["scorer"]), []).append(curve)
    out = []
    for (truth, gap, scorer), group in merged.items():
        metrics = [k for k in group[0]["sweep"][0] if k != "threshold"]
        sweep = [
            {"threshold": group[0]["sweep"][t]["threshold"],
             **{m: float(np.nanmean([g["sweep"][t][m] for g in group])) for m in metrics}}
            for t in range(len(group[0]["sweep"]))
        ]
        rule = None
        if group[0]["map_rule_0.5"] is not None:
            rule = {m: float(np.nanmean([g["map_rule_0.5"][m] for g in group])) for m in metrics}
        best = max(sweep, key=lambda row: row["signal"])
        out.append({"truth": truth, "mu": gap, "scorer": scorer, "sweep": sweep, "map_rule_0.5": rule,
                    "best_threshold_by_signal": best["threshold"]})
    return out


def markdown(result: dict) -> str:
    rows = []
    for curve in result["curves"]:
        for row in curve["sweep"]:
            if row["threshold"] in (0.0, 0.3, 0.5, 0.7, 0.9):
                rows.append([curve["truth"], curve["mu"], curve["scorer"], row["threshold"], row["labels_kept"], row["attentive_share"],
                             row["noise_rate"], row["flip_rate"], row["signal"]])
        if curve["map_rule_0.5"] is not None:
            rule = curve["map_rule_0.5"]
            rows.append([curve["truth"], curve["mu"], curve["scorer"], "MAP >= 0.5", rule["labels_kept"], rule["attentive_share"],
                         rule["noise_rate"], rule["flip_rate"], rule["signal"]])
    best = [[c["truth"], c["mu"], c["scorer"], c["best_threshold_by_signal"]] for c in result["curves"]]
    size = result["size"]
    return (
        f"## Filtering by E[eta | data] >= threshold (m = {size['users']}, n = {size['labels']}, "
        f"{size['replications']} replication(s))\n\n"
        + common.markdown_table(
            ["P_eta", "mu", "users kept by", "threshold", "labels kept", "attentive share", "noise rate (chose B)", "flip rate", "signal (rel.)"],
            rows,
        )
        + "\n### Threshold with the largest signal proxy\n\n"
        + common.markdown_table(["P_eta", "mu", "users kept by", "best threshold"], best)
    )


def figure(result: dict, unused_extras=None):
    import matplotlib.pyplot as plt

    del unused_extras
    panels = [(name, gap) for name in truths() for gap in result["gaps"]]
    metrics = ("labels_kept", "attentive_share", "flip_rate", "signal")
    fig, axes = plt.subplots(len(panels), len(metrics), figsize=(4 * len(metrics), 3.3 * len(panels)), squeeze=False)
    styles = {"oracle": ":", "EM, mu prior": "-", "EM, mu known": "--"}
    for row, (name, gap) in enumerate(panels):
        for col, metric in enumerate(metrics):
            axis = axes[row, col]
            for curve in (c for c in result["curves"] if (c["truth"], c["mu"]) == (name, gap)):
                axis.plot([r["threshold"] for r in curve["sweep"]], [r[metric] for r in curve["sweep"]],
                          styles[curve["scorer"]], label=curve["scorer"])
                if curve["map_rule_0.5"] is not None and curve["scorer"] == "EM, mu prior":
                    axis.plot([0.5], [curve["map_rule_0.5"][metric]], "k*", ms=9, label="MAP eta >= 0.5 (mu prior)")
            axis.set(xlabel="threshold on E[eta | data]", title=f"{name}, mu = {gap}: {metric}")
            axis.legend(fontsize=6)
    return common.finish_figure(fig, "Filtering users: kept labels vs threshold")


if __name__ == "__main__":
    common.main("filtering", __doc__.splitlines()[0], run, markdown, figure)
