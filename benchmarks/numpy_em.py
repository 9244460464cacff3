"""A plain NumPy EM, the baseline of the benchmarks (independent of jaxpref's code).

Rows are (k, n) count patterns with a multiplicity (or users, multiplicity 1), nodes are
fixed (two_point with a given support, npmle, beta by quadrature), and mu is known, MAP
under a Beta(a, b) prior, or free. Written as one would without JAX: vectorised NumPy,
float64, log space, one Python loop over iterations.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp


def log_lik_table(k: np.ndarray, n: np.ndarray, grid: np.ndarray, mu: float) -> np.ndarray:
    """``(rows, nodes)`` log-likelihood of k successes out of n at q = 1/2 + eta (mu - 1/2)."""
    q = 0.5 + grid * (mu - 0.5)
    return k[:, None] * np.log(q)[None, :] + (n - k)[:, None] * np.log1p(-q)[None, :]


def beta_log_weights(grid: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    log_density = (alpha - 1.0) * np.log(grid) + (beta - 1.0) * np.log1p(-grid)
    return log_density - logsumexp(log_density)


def dense_step(table: np.ndarray, multiplicity: np.ndarray, log_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """One EM step for fixed-node weights on a fixed table: ``(new_log_weights, loglik)``."""
    log_joint = table + log_weights[None, :]
    per_row = logsumexp(log_joint, axis=1)
    totals = multiplicity @ np.exp(log_joint - per_row[:, None])
    return np.log(np.maximum(totals, 1e-300)) - np.log(totals.sum()), float(multiplicity @ per_row)


def fit(
    k: np.ndarray,
    n: np.ndarray,
    multiplicity: np.ndarray,
    family: str,
    grid: np.ndarray,
    mu: float,
    mu_mode: str = "known",
    prior: tuple[float, float] = (1.0, 1.0),
    tol: float = 1e-7,
    max_iter: int = 20000,
) -> dict:
    """Plain EM until the objective changes by at most ``tol`` per user; returns a dict of results."""
    num_users = multiplicity.sum()
    shape = np.array([2.0, 2.0])
    log_weights = beta_log_weights(grid, *shape) if family == "beta" else np.full(grid.size, -np.log(grid.size))
    previous = -np.inf
    for iteration in range(1, max_iter + 1):
        table = log_lik_table(k, n, grid, mu)
        log_joint = table + log_weights[None, :]
        per_row = logsumexp(log_joint, axis=1)
        objective = float(multiplicity @ per_row)
        if mu_mode == "prior":
            objective += (prior[0] - 1.0) * np.log(mu) + (prior[1] - 1.0) * np.log1p(-mu)
        if abs(objective - previous) <= tol * num_users:
            break
        previous = objective
        resp = np.exp(log_joint - per_row[:, None]) * multiplicity[:, None]
        totals = resp.sum(axis=0)
        if family == "beta":
            def negative_q(log_shape, totals=totals):
                return -float(totals @ beta_log_weights(grid, *np.exp(log_shape)))

            shape = np.exp(minimize(negative_q, np.log(shape), method="L-BFGS-B", bounds=[(-4.6, 6.9)] * 2).x)
            log_weights = beta_log_weights(grid, *shape)
        else:
            log_weights = np.log(np.maximum(totals, 1e-300)) - np.log(totals.sum())
        if mu_mode in ("prior", "free"):
            q = 0.5 + grid * (mu - 0.5)
            a_total = float(np.sum((resp.T @ k) * grid * mu / q))
            b_total = float(np.sum((resp.T @ (n - k)) * grid * (1.0 - mu) / (1.0 - q)))
            a, b = prior if mu_mode == "prior" else (1.0, 1.0)
            mu = float(np.clip((a_total + a - 1.0) / (a_total + b_total + a + b - 2.0), 0.5 + 1e-6, 1 - 1e-6))
    return {"objective": objective, "num_iter": iteration, "mu": mu, "weights": np.exp(log_weights), "shape": shape}
