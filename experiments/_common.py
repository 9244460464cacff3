"""Shared machinery of the paper-reproduction experiments (recovery, table4, gap_detection,
filtering, beyond_paper): command-line options, vmapped simulate-and-fit over replications,
per-user posteriors from count histograms, and the PNG + JSON + markdown outputs.

Every script defines ``run(args) -> (numbers, extras)``, ``markdown(numbers)`` and
``figure(numbers, extras)`` and hands them to `main`, which parses the options, runs in float64
and writes ``<out>/<name>.{json,md,png}`` (`write_outputs`). Every fit is the library's certified fit (`fit_stats`: SQUAREM, then the
Newton polish of `jaxpref.core.polish`).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")

import jax
import jax.numpy as jnp
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jaxpref.core import driver, em
from jaxpref.io.data import CountStats, fixed_n_counts, histogram_counts
from jaxpref.core.families import make_family
from jaxpref.options import PAPER_MU_PRIOR
from jaxpref.core.posterior import user_posterior
from jaxpref.simulate import EtaDistribution, eta_distribution, simulate_counts
from jaxpref.study import StudyFits

#: Where the scripts write by default (one folder for the five paper experiments).
RESULTS_DIR = Path(__file__).resolve().parent / "results" / "paper"


#: Our reading of the paper's two-point P_eta: casual users at 0.1 (weight 0.6), attentive at 0.9 (0.4).
TWO_POINT_SUPPORT = (0.1, 0.9)
TWO_POINT_WEIGHT_HI = 0.4


def paper_truths() -> dict:
    """The paper's two P_eta as ``name -> (true distribution, family fitted to it)``: the two-point
    population on the known support, and Beta(3, 5) fitted on 64 grid nodes."""
    return {
        "two_point": (
            eta_distribution("two_point", support=TWO_POINT_SUPPORT, weight_hi=TWO_POINT_WEIGHT_HI),
            make_family("two_point", support=TWO_POINT_SUPPORT),
        ),
        "beta": (eta_distribution("beta", alpha=3.0, beta=5.0), make_family("beta", num_grid=64)),
    }


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """``--quick`` (a minute or two on 2 cores), ``--out`` (output folder), ``--seed``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small grid, few replications (the test runs this)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"output folder (default {RESULTS_DIR})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the experiment's PRNG key")
    return parser.parse_args(argv)


def progress() -> Progress:
    """A rich progress bar that also works in a non-interactive log."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )


def mu_config(family, mu_mode: str, tol: float = 1e-7, max_iter: int = 2000) -> em.EMConfig:
    """`em.EMConfig` for one of the paper's settings: ``known``, ``prior`` (Beta(8, 2)) or ``free``."""
    prior = PAPER_MU_PRIOR if mu_mode == "prior" else (1.0, 1.0)
    return em.EMConfig(family=family, mu_mode=mu_mode, mu_prior=prior, tol=tol, max_iter=max_iter)


def mu_start(config: em.EMConfig, true_mu: float, dtype=None) -> jax.Array:
    """The known gap, or the neutral start 0.75 when EM estimates it (never the truth).

    ``dtype=None`` is the default float (float64 inside `main`).
    """
    return jnp.asarray([true_mu if config.mu_mode == "known" else 0.75], dtype or jnp.result_type(float))


def fit_stats(stats: CountStats, config: em.EMConfig, start_mu: jax.Array) -> em.FitOutput:
    """One certified fit from the default start: SQUAREM, then the Newton polish (traceable, vmappable)."""
    return driver.fit(em.init(config, start_mu), stats, config)


_fit_stats_jitted = jax.jit(fit_stats, static_argnames="config")


@functools.partial(jax.jit, static_argnames=("labels_per_user", "config"))
def _fit_histograms(multiplicity, labels_per_user, config, start_mu):
    k_values = jnp.arange(labels_per_user + 1, dtype=multiplicity.dtype)[:, None]

    def one(weights):
        stats = CountStats(k_values, jnp.full_like(k_values, labels_per_user), weights)
        out = fit_stats(stats, config, start_mu)
        family = out.state.family
        return family.eta_grid, jnp.exp(family.log_weights), family.beta_shape, out.state.mu, out.objective, out.num_iter, out.converged

    return jax.vmap(one)(multiplicity)


def count_probabilities(distribution: EtaDistribution, labels_per_user: int, mu: float) -> np.ndarray:
    """``(labels_per_user + 1,)`` exact P(k_j = k) for one user: the Binomial(n, q(eta)) law mixed over P_eta.

    Two-point: a finite mixture. Beta: the integrand is a polynomial of degree n in eta, so
    Gauss-Jacobi quadrature with ``n + 1`` nodes against the Beta(alpha, beta) weight is exact.
    """
    from scipy import special, stats

    if distribution.family == "beta":
        alpha, beta = distribution.alpha, distribution.beta
        nodes, weights = special.roots_sh_jacobi(labels_per_user + 1, alpha + beta - 1.0, alpha)
        weights = weights / weights.sum()
    else:
        nodes, weights = np.asarray(distribution.support), np.asarray(distribution.weights)
    q = 0.5 + nodes * (mu - 0.5)
    k = np.arange(labels_per_user + 1)
    return stats.binom.pmf(k[:, None], labels_per_user, q[None, :]) @ weights


def sample_histograms(
    seed: tuple[int, ...], num_replications: int, num_users: int, labels_per_user: int, mu: float, distribution: EtaDistribution
) -> np.ndarray:
    """``(num_replications, labels_per_user + 1)`` histograms of k over m simulated users.

    Users are i.i.d., so the histogram of m users is Multinomial(m, `count_probabilities`):
    the same law as histogramming `jaxpref.simulate.simulate_counts` draws (a test checks this),
    but its cost does not grow with m and nothing is compiled per m, which is what makes the
    full grid up to m = 100,000 fit on two CPU cores.
    """
    probabilities = count_probabilities(distribution, labels_per_user, mu)
    generator = np.random.default_rng(list(seed))
    return generator.multinomial(num_users, probabilities / probabilities.sum(), size=num_replications).astype(np.float64)


def fit_histograms(
    multiplicity: np.ndarray, labels_per_user: int, config: em.EMConfig, true_mu: float
) -> StudyFits:
    """A certified fit (`fit_stats`) of each replication's histogram of k (all n_j =
    ``labels_per_user``), one vmapped call; ``converged`` is the certificate's verdict. The
    compiled fit depends on n and the configuration only, not on the number of users.
    """
    multiplicity = jnp.asarray(multiplicity, jnp.result_type(float))
    start = mu_start(config, true_mu, multiplicity.dtype)
    fits = _fit_histograms(multiplicity, labels_per_user, config, start)
    return StudyFits(*jax.device_get(fits))


class ScoredUsers(NamedTuple):
    """Simulated users with their truth and posterior scores; arrays ``(num_data_sets, num_users)``
    except ``mu_hat``, ``(num_data_sets,)``."""

    eta: np.ndarray
    num_pref_a: np.ndarray
    eta_mean: np.ndarray
    eta_map: np.ndarray
    mu_hat: np.ndarray


@functools.partial(jax.jit, static_argnames=("num_users", "labels_per_user", "distribution", "config"))
def _simulate_and_score(keys, gaps, num_users, labels_per_user, distribution, config):
    def one(key, gap):
        num_pref_a, _, eta = simulate_counts(key, num_users, labels_per_user, gap, distribution)
        stats = fixed_n_counts(num_pref_a, labels_per_user)
        start = jnp.where(config.mu_mode == "known", gap, 0.75)[None]
        out = fit_stats(stats, config, start)
        summary = user_posterior(em.node_log_posterior(out.state, stats), out.state.family.eta_grid, jnp.asarray(0.5, gap.dtype))
        row = num_pref_a.astype(jnp.int32)
        return eta, num_pref_a, summary.eta_mean[row], summary.eta_map[row], out.state.mu[0]

    return jax.vmap(one)(keys, gaps)


def simulate_and_score(
    key: jax.Array, gaps: np.ndarray, num_users: int, labels_per_user: int, distribution: EtaDistribution, config: em.EMConfig
) -> ScoredUsers:
    """Simulates one data set per gap in ``gaps`` (all n_j equal), fits each, scores every user.

    One vmapped computation over the data sets; data set i uses ``fold_in(key, i)``.
    """
    gaps = jnp.asarray(gaps, jnp.result_type(float))
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(gaps.shape[0]))
    return ScoredUsers(*jax.device_get(_simulate_and_score(keys, gaps, num_users, labels_per_user, distribution, config)))


class UserFit(NamedTuple):
    """One data set's EM fit with per-user posterior summaries.

    Attributes:
        output: the core's `em.FitOutput`.
        eta_mean, eta_map, eta_sd, prob_attentive: ``(num_users,)`` NumPy arrays.
    """

    output: em.FitOutput
    eta_mean: np.ndarray
    eta_map: np.ndarray
    eta_sd: np.ndarray
    prob_attentive: np.ndarray


def fit_users(
    num_pref_a: np.ndarray,
    num_labels: np.ndarray,
    config: em.EMConfig,
    start_mu: jax.Array,
    threshold: float = 0.5,
) -> UserFit:
    """Fits one data set of one-gap counts and maps the posterior of each (k, n) row back to users.

    Args:
        num_pref_a: ``(num_users,)`` k_j.
        num_labels: ``(num_users,)`` n_j (any mix of values).
        config: EM configuration.
        start_mu: ``(1,)`` starting (or known) gap.
        threshold: tau of ``prob_attentive = P(eta >= tau | data)``.
    """
    max_labels = int(np.max(num_labels))
    stats = histogram_counts(jnp.asarray(num_pref_a), jnp.asarray(num_labels), max_labels)
    output = _fit_stats_jitted(stats, config, start_mu)
    log_resp = em.node_log_posterior(output.state, stats)
    summary = user_posterior(log_resp, output.state.family.eta_grid, jnp.asarray(threshold, start_mu.dtype))
    row = np.asarray(num_labels, np.int64) * (max_labels + 1) + np.asarray(num_pref_a, np.int64)
    return UserFit(output, *(np.asarray(values, np.float64)[row] for values in summary))


def mean_sd(values: np.ndarray) -> dict[str, float]:
    """``{"mean", "sd"}`` over the finite values (NaN when there are too few; JSON-ready floats)."""
    values = np.asarray(values, np.float64).ravel()
    finite = values[np.isfinite(values)]
    return {
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
    }


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table; floats printed with 4 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, (float, np.floating)):
            return "nan" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def finish_figure(figure, title: str):
    """Adds the title above the panels (leaving room for it) and returns the figure."""
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    return figure


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path: Path, numbers: dict[str, Any]) -> None:
    """Writes ``numbers`` as indented JSON (NumPy values converted, NaN as null)."""
    os.makedirs(Path(path).parent, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(_json_ready(numbers), handle, indent=1)


def write_outputs(
    args: argparse.Namespace,
    name: str,
    numbers: dict[str, Any],
    markdown: str,
    figure,
    started: float,
) -> dict[str, Path]:
    """Writes ``<out>/<name>.json`` (numbers + run metadata), ``.md`` and ``.png``; closes the figure.

    Returns:
        ``{"json": path, "md": path, "png": path}``.
    """
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    paths = {suffix: Path(args.out) / f"{name}.{suffix}" for suffix in ("json", "md", "png")}
    meta = {
        "mode": "quick" if args.quick else "full",
        "seed": args.seed,
        "seconds": round(time.time() - started, 1),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "machine": platform.machine(),
    }
    write_json(paths["json"], {"meta": meta, **numbers})
    mode_note = f"\n_Mode: {meta['mode']}, seed {args.seed}, {meta['seconds']} s on {meta['backend']}._\n"
    paths["md"].write_text(markdown + mode_note)
    figure.savefig(paths["png"], dpi=110, bbox_inches="tight")
    plt.close(figure)
    return paths


def main(name: str, description: str, run, markdown, figure, argv: list[str] | None = None) -> None:
    """The whole script: parse options, ``run(args) -> (numbers, extras)`` in float64, write outputs.

    Args:
        name: output file stem.
        description: the ``--help`` line.
        run: computes the JSON-ready numbers and any extras the figure needs.
        markdown: ``numbers -> str``.
        figure: ``(numbers, extras) -> matplotlib Figure``.
    """
    args = parse_args(description, argv)
    started = time.time()
    # Float64 everywhere so that optimisation error does not pollute the statistical error.
    with jax.enable_x64(True):
        numbers, extras = run(args)
        drawn = figure(numbers, extras)
    paths = write_outputs(args, name, numbers, markdown(numbers), drawn, started)
    print(paths["md"].read_text())
