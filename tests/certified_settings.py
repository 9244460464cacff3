"""The settings on which jaxpref's certified fits are checked against the independent optimiser
(`reference_optimum`): every family, mu known / prior / free / per group, per-label p, unequal
n, the all-B case, one label per user and Beta(0.5, 0.8) attentiveness. Shared by the test and by
``benchmarks/bench_certificate.py``."""

import numpy as np
import pandas as pd

from reference_optimum import Problem


def _counts(rng, num_users, labels, eta, mu):
    labels = np.broadcast_to(labels, (num_users,))
    return rng.binomial(labels, 0.5 + eta * (mu - 0.5)), labels


def _rows(num_pref_a, num_labels):
    """Distinct (k, n) rows with multiplicities, one column per group."""
    keys = np.concatenate([num_pref_a, num_labels], axis=1)
    unique, counts = np.unique(keys, axis=0, return_counts=True)
    groups = num_pref_a.shape[1]
    return (unique[:, :groups].astype(float), unique[:, groups:].astype(float)), counts


def setting(name):
    """``(frame, fit options, reference Problem)`` of one named setting."""
    rng = np.random.default_rng(sum(map(ord, name)))  # hash() is salted per process
    p_column = group_column = None
    if name == "beta(0.5, 0.8), mu known":
        k, n = _counts(rng, 40_000, 10, rng.beta(0.5, 0.8, 40_000), 0.8)
        options, problem_args = {"family": "beta", "mu": 0.8}, {"family": "beta", "mu_mode": "known", "mu": 0.8}
    elif name == "beta, mu prior":
        # The example: default_rng(1), m = 5000, n = 15, Beta(3, 5), mu = 0.9.
        rng = np.random.default_rng(1)
        k = rng.binomial(15, 0.5 + rng.beta(3, 5, 5000) * 0.4)
        n = np.full(5000, 15)
        options, problem_args = {"family": "beta"}, {"family": "beta", "mu_mode": "prior"}
    elif name == "beta, mu known":
        k, n = _counts(rng, 20_000, 10, rng.beta(3, 5, 20_000), 0.8)
        options, problem_args = {"family": "beta", "mu": 0.8}, {"family": "beta", "mu_mode": "known", "mu": 0.8}
    elif name == "beta, unequal n, mu prior":
        n = 1 + rng.poisson(9, 5000)
        k, n = _counts(rng, 5000, n, rng.beta(2, 2, 5000), 0.85)
        options, problem_args = {"family": "beta"}, {"family": "beta", "mu_mode": "prior"}
    elif name == "npmle, mu known":
        k, n = _counts(rng, 4000, 10, rng.choice([0.1, 0.5, 0.9], 4000), 0.8)
        options, problem_args = {"family": "npmle", "mu": 0.8}, {"family": "npmle", "mu_mode": "known", "mu": 0.8}
    elif name == "npmle, mu prior":
        k, n = _counts(rng, 4000, 12, rng.choice([0.2, 0.9], 4000), 0.85)
        options, problem_args = {"family": "npmle"}, {"family": "npmle", "mu_mode": "prior"}
    elif name == "two_point free support, mu known":
        k, n = _counts(rng, 5000, 20, rng.choice([0.15, 0.85], 5000, p=[0.6, 0.4]), 0.9)
        options = {"family": "two_point", "mu": 0.9}
        problem_args = {"family": "two_point", "mu_mode": "known", "mu": 0.9}
    elif name == "two_point fixed support, mu free":
        k, n = _counts(rng, 5000, 20, rng.choice([0.0, 1.0], 5000, p=[0.6, 0.4]), 0.85)
        options = {"family": "two_point", "support": (0.0, 1.0), "mu": "free"}
        problem_args = {"family": "two_point", "mu_mode": "free", "support": (0.0, 1.0)}
    elif name == "point, mu free (ridge)":
        k, n = _counts(rng, 3000, 10, 0.6, 0.8)
        options, problem_args = {"family": "point", "mu": "free"}, {"family": "point", "mu_mode": "free"}
    elif name == "two_point, mu per group, prior":
        num_users = 3000
        eta = rng.choice([0.0, 1.0], num_users, p=[0.5, 0.5])
        k1, n1 = _counts(rng, num_users, 6, eta, 0.65)
        k2, n2 = _counts(rng, num_users, 6, eta, 0.9)
        frame = pd.DataFrame({
            "user": np.concatenate([np.repeat(np.arange(num_users), 6)] * 2),
            "group": np.repeat(["a", "b"], 6 * num_users),
            "label": np.concatenate([_labels_from_counts(k1, n1), _labels_from_counts(k2, n2)]),
        })
        rows, multiplicity = _rows(np.stack([k1, k2], 1), np.stack([n1, n2], 1))
        options = {"family": "two_point", "support": (0.0, 1.0), "group_column": "group"}
        problem = Problem(rows, multiplicity, "two_point", "prior", support=(0.0, 1.0))
        return frame, options, problem
    elif name == "npmle, per-label p":
        num_users, labels = 600, 12
        users = np.repeat(np.arange(num_users), labels)
        p = 1.0 / (1.0 + np.exp(-rng.normal(1.2, 0.8, users.size)))
        eta = rng.choice([0.1, 0.9], num_users)[users]
        label = (rng.uniform(size=users.size) < 0.5 + eta * (p - 0.5)).astype(int)
        frame = pd.DataFrame({"user": users, "label": label, "p": p})
        nodes = np.linspace(0.0, 1.0, 64)
        q = 0.5 + nodes[None, :] * (p[:, None] - 0.5)
        per_label = np.where(label[:, None] == 1, np.log(q), np.log1p(-q))
        table = np.zeros((num_users, 64))
        np.add.at(table, users, per_label)
        options = {"family": "npmle", "p_column": "p"}
        problem = Problem(None, np.ones(num_users), "npmle", "per_label", table=table)
        return frame, options, problem
    elif name == "all labels B, two_point, mu prior":
        k, n = np.zeros(500, int), np.full(500, 10)
        options, problem_args = {"family": "two_point"}, {"family": "two_point", "mu_mode": "prior"}
    elif name == "one label per user, two_point, mu prior":
        k, n = _counts(rng, 20_000, 1, 0.5, 0.8)
        options, problem_args = {"family": "two_point"}, {"family": "two_point", "mu_mode": "prior"}
    else:
        raise KeyError(name)
    frame = pd.DataFrame({"user": np.repeat(np.arange(len(k)), n), "label": _labels_from_counts(k, n)})
    rows, multiplicity = _rows(np.asarray(k)[:, None], np.asarray(n)[:, None])
    return frame, options, Problem(rows, multiplicity, **problem_args)


def _labels_from_counts(k, n):
    """Label rows (1 = chose A): for each user, k ones then n - k zeros (order does not matter)."""
    position = np.arange(int(np.sum(n))) - np.repeat(np.cumsum(n) - n, n)
    return (position < np.repeat(k, n)).astype(int)


SETTINGS = [
    "two_point free support, mu known",
    "two_point fixed support, mu free",
    "two_point, mu per group, prior",
    "point, mu free (ridge)",
    "beta, mu known",
    "beta, mu prior",
    "beta, unequal n, mu prior",
    "beta(0.5, 0.8), mu known",
    "npmle, mu known",
    "npmle, mu prior",
    "npmle, per-label p",
    "all labels B, two_point, mu prior",
    "one label per user, two_point, mu prior",
]

__all__ = ["SETTINGS", "setting"]
