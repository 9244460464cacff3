"""Recovery in the style of the paper's Figure 3: estimated vs true eta per user, and estimated vs
true P_eta, for a two-point and a Beta(3, 5) P_eta at the gaps mu in {0.60, 0.74, 0.98}.

Each data set: m users with n labels each, simulated from the model; EM fits the family of the
truth (two-point on the known support {0.1, 0.9}, or Beta on a 64-node grid) with mu under the
paper's Beta(8, 2) prior ("Prior") and with mu known ("Knowing mu"). Per user we report the
posterior mean of eta; for P_eta, its fitted CDF against the true CDF.

Usage:
    python experiments/recovery.py --quick   # m = 500, n = 10
    python experiments/recovery.py           # m = 2000, n = 20
"""

from __future__ import annotations

import _common as common
import jax
import numpy as np
from scipy import stats as scipy_stats

from jaxpref.simulate import simulate_counts

GAPS = (0.60, 0.74, 0.98)
MU_MODES = ("prior", "known")
FULL = {"users": 2000, "labels": 20}
QUICK = {"users": 500, "labels": 10}


def true_cdf(distribution, eta: np.ndarray) -> np.ndarray:
    if distribution.family == "beta":
        return scipy_stats.beta.cdf(eta, distribution.alpha, distribution.beta)
    nodes, weights = np.asarray(distribution.support), np.asarray(distribution.weights)
    return (nodes[None, :] <= eta[:, None]) @ weights


def fitted_cdf(fit: common.UserFit, eta: np.ndarray) -> np.ndarray:
    family = fit.output.state.family
    nodes, weights = np.asarray(family.eta_grid), np.exp(np.asarray(family.log_weights))
    return (nodes[None, :] <= eta[:, None]) @ weights


def run(args) -> tuple[dict, dict]:
    size = QUICK if args.quick else FULL
    key = jax.random.key(args.seed)
    results, curves = [], {}
    work = [(name, mu, mode) for name in common.paper_truths() for mu in GAPS for mode in MU_MODES]
    with common.progress() as bar:
        task = bar.add_task("recovery fits", total=len(work))
        for name, mu, mode in work:
            distribution, family = common.paper_truths()[name]
            data_key = jax.random.fold_in(jax.random.fold_in(key, int(100 * mu)), int(name == "beta"))
            num_pref_a, num_labels, eta = (
                np.asarray(v) for v in simulate_counts(data_key, size["users"], size["labels"], mu, distribution)
            )
            config = common.mu_config(family, mode, tol=1e-9, max_iter=3000)
            fit = common.fit_users(num_pref_a, num_labels, config, common.mu_start(config, mu))
            state = fit.output.state
            entry = {
                "truth": name, "mu": mu, "mu_mode": mode,
                "mu_hat": float(state.mu[0]),
                "eta_rmse": float(np.sqrt(np.mean((fit.eta_mean - eta) ** 2))),
                "eta_correlation": float(np.corrcoef(fit.eta_mean, eta)[0, 1]),
                "cdf_max_error": float(np.max(np.abs(fitted_cdf(fit, np.linspace(0, 1, 401)) - true_cdf(distribution, np.linspace(0, 1, 401))))),
                "num_iter": int(fit.output.num_iter),
            }
            if name == "beta":
                entry["alpha_beta_hat"] = np.asarray(state.family.beta_shape).tolist()
            else:
                entry["weights_hat"] = np.exp(np.asarray(state.family.log_weights)).tolist()
                entry["map_accuracy"] = float(np.mean((fit.eta_map >= 0.5) == (eta >= 0.5)))
            results.append(entry)
            curves[(name, mu, mode)] = (eta, fit)
            bar.advance(task)
    return {"size": size, "results": results}, curves


def markdown(result: dict) -> str:
    rows = []
    for r in result["results"]:
        fitted = (
            f"alpha, beta = {r['alpha_beta_hat'][0]:.2f}, {r['alpha_beta_hat'][1]:.2f} (true 3, 5)"
            if r["truth"] == "beta"
            else f"weights = {r['weights_hat'][0]:.3f}, {r['weights_hat'][1]:.3f} (true 0.6, 0.4)"
        )
        rows.append([r["truth"], r["mu"], r["mu_mode"], f"{r['mu_hat']:.3f}", fitted, r["eta_rmse"], r["eta_correlation"], r["cdf_max_error"]])
    size = result["size"]
    return (
        f"## Recovery (Figure 3 style): m = {size['users']} users, n = {size['labels']} labels each\n\n"
        + common.markdown_table(
            ["P_eta", "true mu", "mu setting", "mu_hat", "fitted P_eta", "RMSE of E[eta|data]", "corr(E[eta|data], eta)", "max |CDF error|"],
            rows,
        )
    )


def figure(result: dict, curves: dict):
    import matplotlib.pyplot as plt

    names = list(common.paper_truths())
    fig, axes = plt.subplots(2 * len(names), len(GAPS), figsize=(4 * len(GAPS), 3.4 * 2 * len(names)))
    grid = np.linspace(0, 1, 401)
    jitter = np.random.default_rng(0)
    for row, name in enumerate(names):
        distribution = common.paper_truths()[name][0]
        for col, mu in enumerate(GAPS):
            eta, fit = curves[(name, mu, "prior")]
            axis = axes[2 * row, col]
            shown = eta + (jitter.normal(0, 0.015, eta.shape) if name == "two_point" else 0.0)
            axis.scatter(shown, fit.eta_mean, s=3, alpha=0.3)
            axis.plot([0, 1], [0, 1], "k--", lw=0.8)
            axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="true eta", ylabel="E[eta | data]", title=f"{name}, mu = {mu} (prior)")
            axis = axes[2 * row + 1, col]
            axis.plot(grid, true_cdf(distribution, grid), "k", lw=2, label="true P_eta")
            for mode, style in zip(MU_MODES, ("-", "--")):
                axis.plot(grid, fitted_cdf(curves[(name, mu, mode)][1], grid), style, label=f"EM, mu {mode}")
            axis.set(xlabel="eta", ylabel="CDF", title=f"{name} P_eta, mu = {mu}")
            axis.legend(fontsize=7)
    return common.finish_figure(fig, f"Recovery of eta and P_eta (m = {result['size']['users']}, n = {result['size']['labels']})")


if __name__ == "__main__":
    common.main("recovery", __doc__.splitlines()[0], run, markdown, figure)
