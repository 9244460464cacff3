"""Beyond the paper: heterogeneous labels per user, per-group gaps, and per-label p from a reward model.

Three data-generating settings the paper's single-gap, equal-n model does not cover, each fitted
by `jaxpref.fit_attentiveness` (two-point P_eta on the known support {0.1, 0.9}, weights 0.6 / 0.4;
mu under the Beta(8, 2) prior unless said otherwise) the rich way and the plain way:

1. ``n_j = 1 + Poisson(9)`` labels per user: rank users by E[eta | data] (which weighs each user's
   evidence by n_j) vs by the raw agreement rate k_j / n_j.
2. Two topics with gaps mu = (0.60, 0.95), labels split at random: one gap per group
   (``group_column``) vs one pooled gap.
3. Per-label p = sigmoid(r_A - r_B) with reward gaps ~ Normal(1.0, 1.5) (E[p] ~ 0.69): the
   per-label likelihood (``p_column``) vs one estimated gap.

Reported: error of the attentive weight, mu estimates, ROC AUC of users (truly attentive:
eta = 0.9) and of labels (truly attentive: z = 1, scored by P(z = 1 | data)), precision / recall
when keeping the top 40 % of users, and BIC where the two fits share the data.

Usage:
    python experiments/beyond_paper.py --quick
    python experiments/beyond_paper.py
"""

from __future__ import annotations

import _common as common
import jax
import numpy as np

from jaxpref import fit_attentiveness, simulate
from jaxpref.metrics import precision_recall, roc_auc

FULL = {"users": 3000, "labels": 10, "replications": 5}
QUICK = {"users": 800, "labels": 10, "replications": 1}
TOPIC_GAPS = (0.60, 0.95)
REWARD_GAP = (1.0, 1.5)
KEEP_FRACTION = 0.4


def top_fraction(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ``fraction`` highest scores (ties by order)."""
    keep = np.zeros(scores.shape[0], bool)
    keep[np.argsort(-scores, kind="stable")[: round(fraction * scores.shape[0])]] = True
    return keep


def score_users(name: str, scores: np.ndarray, truth: np.ndarray) -> dict:
    precision, recall = precision_recall(top_fraction(scores, KEEP_FRACTION), truth)
    return {f"{name}_auc": roc_auc(scores, truth), f"{name}_precision_top40": precision, f"{name}_recall_top40": recall}


def describe_fit(fit, sim) -> dict:
    """Numbers shared by every fitted variant."""
    attentive_user = sim.eta >= 0.5
    mu = fit.params["mu"]
    return {
        "weight_attentive": fit.params["weights"][1],
        "weight_error": abs(fit.params["weights"][1] - common.TWO_POINT_WEIGHT_HI),
        "mu_hat": mu if mu is None or isinstance(mu, float) else list(mu.values()),
        "bic": fit.bic,
        **score_users("user", fit.users["eta_mean"].to_numpy(), attentive_user),
        "label_auc": roc_auc(fit.label_attentiveness(), sim.attentive),
    }


def heterogeneous_counts(key, size) -> dict:
    sim = simulate(key, size["users"], size["labels"], label_count="poisson", mu=0.74, **_two_point())
    fit = fit_attentiveness(sim.frame, support=common.TWO_POINT_SUPPORT, dtype="float64")
    users = fit.users
    raw_rate = (users["n_pref_a"] / users["n_labels"]).to_numpy()
    return {
        "EM (uses n_j)": describe_fit(fit, sim),
        "raw agreement k/n": score_users("user", raw_rate, sim.eta >= 0.5),
        "labels_per_user_range": [int(users["n_labels"].min()), int(users["n_labels"].max())],
    }


def per_group_gap(key, size) -> dict:
    sim = simulate(key, size["users"], size["labels"], mu=TOPIC_GAPS, **_two_point())
    grouped = fit_attentiveness(sim.frame, support=common.TWO_POINT_SUPPORT, group_column="group", dtype="float64")
    pooled = fit_attentiveness(sim.frame, support=common.TWO_POINT_SUPPORT, dtype="float64")
    return {"EM, mu per group": describe_fit(grouped, sim), "EM, one pooled mu": describe_fit(pooled, sim)}


def per_label_p(key, size) -> dict:
    sim = simulate(key, size["users"], size["labels"], reward_gap=REWARD_GAP, **_two_point())
    rich = fit_attentiveness(sim.frame, support=common.TWO_POINT_SUPPORT, p_column="p", dtype="float64")
    plain = fit_attentiveness(sim.frame, support=common.TWO_POINT_SUPPORT, dtype="float64")
    return {"EM, per-label p": describe_fit(rich, sim), "EM, one mu": describe_fit(plain, sim),
            "true_mean_p": float(sim.mu[0])}


def _two_point() -> dict:
    return {"family": "two_point", "support": common.TWO_POINT_SUPPORT, "weight_hi": common.TWO_POINT_WEIGHT_HI}


STUDIES = {
    "heterogeneous n_j": heterogeneous_counts,
    "two topics, mu = (0.60, 0.95)": per_group_gap,
    "per-label p from a reward model": per_label_p,
}


def run(args) -> tuple[dict, None]:
    size = QUICK if args.quick else FULL
    key = jax.random.key(args.seed)
    raw: dict = {name: [] for name in STUDIES}
    with common.progress() as bar:
        task = bar.add_task("studies x replications", total=len(STUDIES) * size["replications"])
        for index, (name, study) in enumerate(STUDIES.items()):
            for replication in range(size["replications"]):
                raw[name].append(study(jax.random.fold_in(jax.random.fold_in(key, index), replication), size))
                bar.advance(task)
    return {"size": size, "studies": {name: _average(runs) for name, runs in raw.items()}}, None


def _average(runs: list[dict]) -> dict:
    """Mean over replications of every number (lists element-wise), keeping the nesting."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: _average([r[key] for r in runs]) for key in first}
    if first is None:
        return None
    return np.mean(np.asarray(runs, np.float64), axis=0).tolist()


def markdown(result: dict) -> str:
    rows = []
    for study, variants in result["studies"].items():
        for variant, numbers in variants.items():
            if not isinstance(numbers, dict):
                continue
            mu = _format_mu(numbers["mu_hat"]) if "mu_hat" in numbers else "-"
            rows.append([study, variant, numbers.get("weight_error", float("nan")), mu,
                         numbers["user_auc"], numbers["user_precision_top40"], numbers["user_recall_top40"],
                         numbers.get("label_auc", float("nan")), numbers.get("bic", float("nan"))])
    size = result["size"]
    extras = result["studies"]["per-label p from a reward model"]["true_mean_p"]
    return (
        f"## Beyond the paper (m = {size['users']}, n = {size['labels']}, {size['replications']} replication(s); "
        "two-point P_eta 0.6 / 0.4 on {0.1, 0.9})\n\n"
        + common.markdown_table(
            ["setting", "fit", "abs. error of weight 0.4", "mu_hat", "user AUC", "precision top 40 %", "recall top 40 %",
             "label AUC", "BIC"],
            rows,
        )
        + f"\nPer-label p study: true mean p = {extras:.3f}.\n"
    )


def _format_mu(mu) -> str:
    if mu is None:
        return "per label"
    return ", ".join(f"{v:.3f}" for v in np.atleast_1d(mu))


def figure(result: dict, unused_extras=None):
    import matplotlib.pyplot as plt

    del unused_extras
    metrics = ("user_auc", "label_auc", "user_precision_top40", "weight_error")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4))
    for axis, metric in zip(axes, metrics):
        labels, values = [], []
        for study, variants in result["studies"].items():
            for variant, numbers in variants.items():
                if isinstance(numbers, dict):
                    # Every panel lists every fit, so the rows line up (no bar: not defined for it).
                    labels.append(f"{study}\n{variant}")
                    values.append(numbers.get(metric, float("nan")))
        axis.barh(range(len(values)), values, color=plt.cm.tab10(np.arange(len(values)) // 2 % 10))
        axis.set_yticks(range(len(values)), labels if axis is axes[0] else [""] * len(values), fontsize=7)
        axis.set(title=metric)
        axis.invert_yaxis()
    return common.finish_figure(fig, "Using n_j, per-group mu and per-label p vs the plain single-mu fit")


if __name__ == "__main__":
    common.main("beyond_paper", __doc__.splitlines()[0], run, markdown, figure)
