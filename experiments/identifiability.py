"""Is mu identified? Profile likelihoods, the error of mu against m and n, and SBC of NUTS.

    python experiments/identifiability.py --quick   # a couple of minutes on 2 cores
    python experiments/identifiability.py           # full mode

Writes ``experiments/results/identifiability/{identifiability.png, results.json, results.md}``.

1. Profile log-likelihood of mu on one data set (two_point truth, support (0.1, 0.9)) under:
   two_point with a free support (flat above the edge eta <= 1), two_point with the support
   fixed, beta (support [0, 1]), and a free support with the Beta(8, 2) prior.
2. Root-mean-square error of the MLE of mu (mu free; the argmax of the profile) over simulated replications, for
   m users and n labels per user: beta truth fitted by beta, two_point truth fitted with
   the support fixed, and with the support free.
3. Simulation-based calibration of mu for the marginalised NUTS model, and observed-
   information standard errors (EM) against NUTS posterior sds on one data set.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from rich.console import Console
from rich.progress import track

from jaxpref.core import em
from jaxpref.bayes.model import fit_bayes
from jaxpref.bayes.sbc import plot_ranks, simulation_based_calibration
from jaxpref.io.data import fixed_n_counts
from jaxpref.estimator import fit_attentiveness
from jaxpref.core.families import make_family
from jaxpref.identifiability import flat_profile, plot_profile, profile_from_stats, profile_loglik_mu
from jaxpref.simulate import eta_distribution, replicate, simulate

matplotlib.use("Agg")
import matplotlib.pyplot as plt

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)

OUT = Path(__file__).parent / "results" / "identifiability"
MU = 0.8
console = Console()

#: (label, true P_eta, fitted family, fixed support or None)
SETTINGS = [
    ("beta truth, beta fit", eta_distribution("beta", alpha=3.0, beta=5.0), "beta", None),
    ("two_point truth, support fixed", eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4),
     "two_point", (0.1, 0.9)),
    ("two_point truth, support free", eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4),
     "two_point", None),
]


def profiles(num_users: int) -> dict:
    sim = simulate(jax.random.key(0), num_users, 20, family="two_point", support=(0.1, 0.9), weight_hi=0.4, mu=MU)
    cases = {
        "two_point, free support": {"family": "two_point"},
        "two_point, support fixed": {"family": "two_point", "support": (0.1, 0.9)},
        "beta": {"family": "beta"},
        "free support + Beta(8, 2) prior": {"family": "two_point", "mu_prior": (8.0, 2.0)},
    }
    return {name: profile_loglik_mu(sim.frame, **options) for name, options in cases.items()}


def mu_errors(num_users_values, num_labels_values, num_replications: int) -> dict:
    """RMSE, median absolute error and bias of the mu MLE per setting, m and n.

    The MLE is the maximiser of the profile likelihood on a grid of mu (refined by a
    parabola through the best grid point and its neighbours): EM with mu free crawls
    along a flat ridge and would stop near its start, which would understate the error.
    """
    results = {}
    mu_grid = jnp.linspace(0.51, 0.99, 49)
    step = float(mu_grid[1] - mu_grid[0])
    jobs = [(s, m, n) for s in SETTINGS for m in num_users_values for n in num_labels_values]
    for (label, truth, family, support), num_users, num_labels in track(jobs, description="mu error vs m, n"):
        key = jax.random.fold_in(jax.random.key(1), num_users * 1000 + num_labels)
        num_pref_a, _, _ = replicate(key, num_replications, num_users, num_labels, MU, truth)
        stats = jax.vmap(lambda k: fixed_n_counts(k, num_labels))(num_pref_a)
        config = em.EMConfig(family=make_family(family, 32, support), mu_mode="known", tol=1e-6, max_iter=1000)
        profile = np.asarray(
            jax.lax.map(lambda s: profile_from_stats(jax.random.key(2), s, config, mu_grid, 1), stats), np.float64
        )
        best = np.clip(np.argmax(profile, axis=1), 1, mu_grid.shape[0] - 2)
        left, centre, right = (np.take_along_axis(profile, (best + shift)[:, None], 1)[:, 0] for shift in (-1, 0, 1))
        curvature = left - 2.0 * centre + right
        offset = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
        mu_hat = np.asarray(mu_grid, np.float64)[best] + np.clip(offset, -1.0, 1.0) * step
        error = mu_hat - MU
        results.setdefault(label, []).append(
            {
                "num_users": num_users,
                "num_labels": num_labels,
                "rmse": float(np.sqrt(np.mean(error**2))),
                "median_abs_error": float(np.median(np.abs(error))),
                "bias": float(np.mean(error)),
            }
        )
    return results


def se_against_posterior_sd(num_warmup: int, num_samples: int) -> dict:
    sim = simulate(jax.random.key(3), 500, 20, family="beta", alpha=3.0, beta=5.0, mu=MU)
    options = {"family": "beta", "mu": None, "mu_prior": (8.0, 2.0), "num_grid": 32}
    em_fit = fit_attentiveness(sim.frame, **options)
    bayes_fit = fit_bayes(sim.frame, **options, num_warmup=num_warmup, num_samples=num_samples, num_chains=4)
    rows = {}
    for name, row in (("mu[0]", "mu[0]"), ("alpha", "alpha"), ("beta", "beta")):
        rows[name] = {
            "em_estimate": em_fit.params["mu"] if name == "mu[0]" else em_fit.params[name],
            "em_se": em_fit.standard_errors[name],
            "posterior_mean": float(bayes_fit.summary.loc[row, "mean"]),
            "posterior_sd": float(bayes_fit.summary.loc[row, "sd"]),
            "r_hat": float(bayes_fit.summary.loc[row, "r_hat"]),
        }
    return rows


#: Model structures calibrated by SBC: fixed and free support, a Beta P_eta, and one mu per group.
SBC_CASES = {
    "two_point, fixed support": {"family": "two_point", "support": (0.1, 0.9)},
    "two_point, free support": {"family": "two_point", "support": None},
    "beta (grid 16)": {"family": "beta", "num_grid": 16},
    "two_point, two groups": {"family": "two_point", "support": (0.1, 0.9), "num_groups": 2},
}


def run_sbc(quick: bool) -> dict:
    """SBC of every parameter of each `SBC_CASES` structure; rank histograms to sbc_ranks.png."""
    runs = {}
    for case, options in track(SBC_CASES.items(), description="SBC"):
        runs[case] = simulation_based_calibration(
            jax.random.key(2026), 32 if quick else 200, num_warmup=150 if quick else 300,
            num_samples=150 if quick else 300, thin=3, **options,
        )
    plot_ranks(runs).savefig(OUT / "sbc_ranks.png", dpi=100)
    return runs


def sbc_summary(runs: dict) -> dict:
    return {
        case: {"num_replications": int(len(next(iter(run.ranks.values())))), "num_draws": run.num_draws,
               "num_divergences": run.num_divergences, "parameters": run.table.to_dict(orient="records")}
        for case, run in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a couple of minutes)")
    parser.add_argument("--sbc-only", action="store_true", help="only the SBC (sbc.json, sbc_ranks.png)")
    args = parser.parse_args()
    quick = args.quick
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.sbc_only:
        summary = sbc_summary(run_sbc(quick))
        (OUT / "sbc.json").write_text(json.dumps(summary, indent=2))
        console.print(summary)
        return

    console.print("[bold]1. profile likelihoods of mu[/bold]")
    profile_results = profiles(300 if quick else 1000)
    console.print("[bold]2. error of mu against m and n[/bold]")
    num_users_values = (100, 1000) if quick else (100, 300, 1000, 3000)
    num_labels_values = (5, 20) if quick else (5, 10, 20, 40)
    errors = mu_errors(num_users_values, num_labels_values, 16 if quick else 50)
    console.print("[bold]3. SBC of every parameter (NUTS) and standard errors[/bold]")
    sbc_runs = run_sbc(quick)
    se_rows = se_against_posterior_sd(200 if quick else 500, 200 if quick else 500)

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, profile in profile_results.items():
        plot_profile(profile, axes[0], label=name)
    axes[0].set_ylim(-30, 1)
    axes[0].set_title(f"profile log-likelihood of mu (truth {MU})")
    axes[0].axvline(MU, color="black", linewidth=0.8)
    axes[0].legend(fontsize=7)
    for label, rows in errors.items():
        for num_labels in num_labels_values:
            points = [r for r in rows if r["num_labels"] == num_labels]
            axes[1].plot([r["num_users"] for r in points], [r["rmse"] for r in points], marker="o",
                         label=f"{label}, n={num_labels}",
                         linestyle="-" if "beta" in label else ("--" if "fixed" in label else ":"))
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("users m")
    axes[1].set_ylabel("RMSE of mu (MLE, mu free)")
    axes[1].set_title("error of mu against m and n")
    axes[1].legend(fontsize=6)
    first = next(iter(sbc_runs.values()))
    counts = np.bincount(first.ranks["mu[0]"] * first.num_bins // (first.num_draws + 1), minlength=first.num_bins)
    axes[2].bar(np.arange(first.num_bins), counts, color="tab:blue", alpha=0.7)
    axes[2].axhline(len(first.ranks["mu[0]"]) / first.num_bins, color="black", linestyle=":")
    mu_row = first.table.set_index("parameter").loc["mu[0]"]
    axes[2].set_title(f"SBC ranks of mu (NUTS)\nchi2 p={mu_row['chi2_pvalue']:.2f}, "
                      f"90% coverage {mu_row['coverage']:.2f}")
    axes[2].set_xlabel("rank bin")
    figure.tight_layout()
    figure.savefig(OUT / "identifiability.png", dpi=120)

    results = {
        "mode": "quick" if quick else "full",
        "mu_true": MU,
        "profiles": {
            name: {"interval": list(p.interval), "mu_hat": p.mu_hat, "flat": flat_profile(p)}
            for name, p in profile_results.items()
        },
        "mu_error": errors,
        "sbc": sbc_summary(sbc_runs),
        "se_vs_posterior_sd": se_rows,
        "seconds": time.perf_counter() - start,
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    lines = ["| profile | 95% LR interval of mu | flat |", "|---|---|---|"]
    for name, value in results["profiles"].items():
        lo, hi = value["interval"]
        lines.append(f"| {name} | [{lo:.3f}, {hi:.3f}] | {value['flat']} |")
    lines += ["", "| setting | m | n | RMSE | bias |", "|---|---|---|---|---|"]
    for label, rows in errors.items():
        lines += [f"| {label} | {r['num_users']} | {r['num_labels']} | {r['rmse']:.4f} | {r['bias']:+.4f} |"
                  for r in rows]
    lines += ["", "| parameter | EM estimate | EM se | posterior mean | posterior sd | r_hat |",
              "|---|---|---|---|---|---|"]
    for name, row in se_rows.items():
        lines.append(f"| {name} | {row['em_estimate']:.4f} | {row['em_se']:.4f} | {row['posterior_mean']:.4f} | "
                     f"{row['posterior_sd']:.4f} | {row['r_hat']:.3f} |")
    lines += ["", "| SBC case | parameter | chi2 p | 90% coverage |", "|---|---|---|---|"]
    for case, run in results["sbc"].items():
        lines += [f"| {case} | {row['parameter']} | {row['chi2_pvalue']:.3f} | {row['coverage']:.3f} |"
                  for row in run["parameters"]]
    lines += ["", f"mode: {results['mode']}, {results['seconds']:.0f} s"]
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    console.print("\n".join(lines))


if __name__ == "__main__":
    main()
