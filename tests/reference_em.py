"""An independent, deliberately plain NumPy/SciPy EM for the attentiveness model.

It shares no code with jaxpref: one row per user (no compression), Python-level clarity
over speed, float64 throughout, and a full numerical maximisation (SciPy) for the Beta
shapes instead of jaxpref's Newton steps. Tests compare jaxpref against it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import betainc, logsumexp


def user_log_lik(eta_grid, users, mu):
    """L[j, g] for a list of per-user label arrays.

    ``users`` is a list of dicts with ``labels`` (0/1 array), and either ``p`` (per-label)
    or ``groups`` (group index per label, gap ``mu[group]``).
    """
    eta = np.asarray(eta_grid, float)[:, None]
    table = np.zeros((len(users), eta.shape[0]))
    for j, user in enumerate(users):
        p = user["p"] if "p" in user else np.asarray(mu)[user["groups"]]
        prob_a = 0.5 + eta * (p[None, :] - 0.5)  # (num_grid, num_labels_of_user)
        likelihood = np.where(user["labels"][None, :] == 1, prob_a, 1.0 - prob_a)
        table[j] = np.log(np.maximum(likelihood, 1e-300)).sum(axis=1)
    return table


def beta_weights(grid, alpha, beta):
    """Beta(alpha, beta) probabilities of the G cells around the nodes, by SciPy's regularised
    incomplete beta function; the cell edges are (1 - cos(pi t)) / 2, t = 0, 1/G, ..., 1."""
    edges = (1.0 - np.cos(np.pi * np.arange(len(grid) + 1) / len(grid))) / 2.0
    np.testing.assert_allclose(grid, (edges[1:] + edges[:-1]) / 2.0, rtol=1e-6)
    return np.diff(betainc(alpha, beta, edges))


def loglik(eta_grid, weights, users, mu):
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    return float(np.sum(logsumexp(log_weights[None, :] + user_log_lik(eta_grid, users, mu), axis=1)))


def em(
    users,
    family,
    eta_grid,
    weights,
    mu,
    mu_mode="known",
    prior=(1.0, 1.0),
    moving_nodes=False,
    beta_shape=None,
    num_iter=200,
    tol=None,
):
    """Plain EM; returns dict(eta_grid, weights, mu, beta_shape, loglik, trace).

    ``tol`` (absolute change in the objective) stops early when given.
    """
    eta_grid = np.array(eta_grid, float)
    weights = np.array(weights, float)
    mu = np.array(mu, float)
    num_groups = mu.shape[0]
    trace = []
    for _ in range(num_iter):
        table = user_log_lik(eta_grid, users, mu)
        with np.errstate(divide="ignore"):
            log_joint = np.log(weights)[None, :] + table
        per_user = logsumexp(log_joint, axis=1)
        value = float(per_user.sum())
        if mu_mode == "prior":
            value += float(np.sum((prior[0] - 1) * np.log(mu) + (prior[1] - 1) * np.log(1 - mu)))
        trace.append(value)
        resp = np.exp(log_joint - per_user[:, None])
        # Expected attentive labels (choosing A / B) per node and group, and labels per node.
        att_a = np.zeros((len(eta_grid), num_groups))
        att_b = np.zeros((len(eta_grid), num_groups))
        labels_per_node = np.zeros(len(eta_grid))
        for j, user in enumerate(users):
            y = user["labels"]
            if "p" in user:
                p, groups = user["p"], np.zeros(len(y), int)
            else:
                groups = user["groups"]
                p = mu[groups]
            eta = eta_grid[:, None]
            q = 0.5 + eta * (p[None, :] - 0.5)
            z = np.where(y[None, :] == 1, eta * p / q, eta * (1 - p) / (1 - q))  # (num_grid, labels)
            weighted = resp[j][:, None] * z
            for t in range(num_groups):
                att_a[:, t] += weighted[:, (groups == t) & (y == 1)].sum(axis=1)
                att_b[:, t] += weighted[:, (groups == t) & (y == 0)].sum(axis=1)
            labels_per_node += resp[j] * len(y)
        node_mass = resp.sum(axis=0)
        if family == "beta":
            grid = eta_grid

            def negative_q(log_shape):
                return -np.sum(node_mass * np.log(beta_weights(grid, *np.exp(log_shape))))

            result = minimize(negative_q, np.log(beta_shape), method="Nelder-Mead",
                              options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
            beta_shape = np.exp(result.x)
            weights = beta_weights(grid, *beta_shape)
        elif family != "point":
            weights = node_mass / node_mass.sum()
        if moving_nodes:
            eta_grid = np.clip((att_a + att_b).sum(axis=1) / labels_per_node, 0.0, 1.0)
        if mu_mode in ("prior", "free"):
            a, b = prior if mu_mode == "prior" else (1.0, 1.0)
            A, B = att_a.sum(axis=0), att_b.sum(axis=0)
            mu = np.clip((A + a - 1) / (A + B + a + b - 2), 0.5 + 1e-6, 1 - 1e-6)
        if tol is not None and len(trace) > 1 and abs(trace[-1] - trace[-2]) < tol:
            break
    return {
        "eta_grid": eta_grid,
        "weights": weights,
        "mu": mu,
        "beta_shape": beta_shape,
        "loglik": loglik(eta_grid, weights, users, mu),
        "trace": np.array(trace),
    }


def users_from_frame(frame, p_column=None, group_column=None):
    """Per-user label arrays, users in order of first appearance."""
    users = []
    for _, rows in frame.groupby("user", sort=False):
        user = {"labels": rows["label"].to_numpy().astype(int)}
        if p_column:
            user["p"] = rows[p_column].to_numpy().astype(float)
        else:
            user["groups"] = rows[group_column].to_numpy().astype(int) if group_column else np.zeros(len(rows), int)
        users.append(user)
    return users
