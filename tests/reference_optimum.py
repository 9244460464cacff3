"""An independent optimiser of the attentiveness model's exact objective, in NumPy/SciPy.

Shares no code with jaxpref: the likelihood is written out again, the Beta cell masses come from
SciPy's regularised incomplete beta function, and the maximisation uses SciPy's optimisers
(L-BFGS-B from many starts then Nelder-Mead for the parametric families, SLSQP on the simplex for
npmle, a bounded scalar search over mu around it). Used to check that jaxpref's certified fits
reach the optimum.
"""

import itertools

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import betainc, expit, logsumexp

NPMLE_GRID = 64


def beta_nodes_and_edges(num_grid):
    edges = (1.0 - np.cos(np.pi * np.arange(num_grid + 1) / num_grid)) / 2.0
    return (edges[1:] + edges[:-1]) / 2.0, edges


def log_table(rows, nodes, mu):
    """``(num_rows, num_nodes)`` log-likelihood of count rows ``(k, n)`` with one column per group."""
    num_pref_a, num_labels = rows
    q = 0.5 + nodes[None, :] * (np.asarray(mu)[:, None] - 0.5)  # (groups, nodes)
    return num_pref_a @ np.log(q) + (num_labels - num_pref_a) @ np.log1p(-q)


class Problem:
    """The exact objective sum_j m_j log sum_g w_g exp(L_jg) + log prior(mu).

    Args:
        rows: ``(num_pref_a, num_labels)``, each ``(num_rows, num_groups)``; or None with ``table``.
        multiplicity: ``(num_rows,)``.
        family: point, two_point, beta or npmle.
        mu_mode: known, prior, free or per_label (then ``table`` is the fixed L on the npmle/beta grid).
        mu: known gaps (per group).
        prior: Beta(a, b) of mu.
        support: fixed two_point support or None.
        table: fixed L for per-label p.
    """

    def __init__(self, rows, multiplicity, family, mu_mode, mu=None, prior=(8.0, 2.0), support=None, table=None,
                 num_grid=NPMLE_GRID):
        self.rows, self.multiplicity, self.family, self.mu_mode = rows, np.asarray(multiplicity, float), family, mu_mode
        self.known_mu = None if mu is None else np.atleast_1d(np.asarray(mu, float))
        self.prior, self.support, self.table = prior, support, table
        self.num_groups = 1 if rows is None else rows[0].shape[1]
        self.num_grid = num_grid

    # -- pieces ---------------------------------------------------------------------------------
    def mu_of(self, free):
        if self.mu_mode in ("known", "per_label"):
            return self.known_mu, free
        return 0.5 + 0.5 * expit(free[: self.num_groups]), free[self.num_groups:]

    def log_prior(self, mu):
        if self.mu_mode != "prior":
            return 0.0
        a, b = self.prior
        return float(np.sum((a - 1) * np.log(mu) + (b - 1) * np.log1p(-mu)))

    def family_of(self, free):
        """``(nodes, weights)`` from the family's unconstrained parameters."""
        if self.family == "point":
            return np.array([expit(free[0])]), np.array([1.0])
        if self.family == "two_point":
            nodes = np.asarray(self.support, float) if self.support is not None else np.sort(expit(free[1:3]))
            share = expit(free[0])
            return nodes, np.array([1.0 - share, share])
        nodes, edges = beta_nodes_and_edges(self.num_grid)
        return nodes, np.diff(betainc(np.exp(free[0]), np.exp(free[1]), edges))

    def objective_at(self, nodes, weights, mu):
        table = self.table if self.table is not None else log_table(self.rows, nodes, mu)
        with np.errstate(divide="ignore"):
            per_row = logsumexp(table + np.log(weights)[None, :], axis=1)
        return float(self.multiplicity @ per_row) + (self.log_prior(mu) if mu is not None else 0.0)

    def num_family_free(self):
        return {"point": 1, "two_point": 1 if self.support is not None else 3, "beta": 2}[self.family]

    # -- optimisation ---------------------------------------------------------------------------
    def negative(self, free):
        mu, rest = self.mu_of(free)
        nodes, weights = self.family_of(rest)
        value = self.objective_at(nodes, weights, mu)
        return -value if np.isfinite(value) else 1e300

    def maximise(self):
        """The largest objective found, and where."""
        if self.family == "npmle":
            return self._maximise_npmle()
        num_mu = 0 if self.mu_mode in ("known", "per_label") else self.num_groups
        size = num_mu + self.num_family_free()
        values = [-3.0, -0.5, 1.0, 4.0] if size <= 3 else [-1.0, 2.0]
        best = None
        for start in itertools.product(values, repeat=size):
            result = minimize(self.negative, np.asarray(start, float), method="L-BFGS-B")
            if best is None or result.fun < best.fun:
                best = result
        for _ in range(3):
            best = minimize(self.negative, best.x, method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 40000})
        return -best.fun, best.x

    def _npmle_at(self, mu):
        nodes = np.linspace(0.0, 1.0, self.num_grid)
        table = self.table if self.table is not None else log_table(self.rows, nodes, mu)
        likelihood = np.exp(table - table.max(axis=1, keepdims=True))
        shift = float(self.multiplicity @ table.max(axis=1))
        total = self.multiplicity.sum()

        def negative(weights):
            return -float(self.multiplicity @ np.log(np.maximum(likelihood @ weights, 1e-300)))

        def gradient(weights):
            return -(self.multiplicity / np.maximum(likelihood @ weights, 1e-300)) @ likelihood

        start = np.full(self.num_grid, 1.0 / self.num_grid)
        result = minimize(negative, start, jac=gradient, method="SLSQP", bounds=[(0.0, 1.0)] * self.num_grid,
                          constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
                          options={"ftol": 1e-15, "maxiter": 2000})
        weights = np.maximum(result.x, 0.0)
        weights /= weights.sum()
        # A few EM steps from SLSQP's point (each never lowers the objective).
        for _ in range(2000):
            weights = weights * ((self.multiplicity / (likelihood @ weights)) @ likelihood) / total
        value = -negative(weights) + shift + (self.log_prior(mu) if mu is not None else 0.0)
        return value, weights

    def _maximise_npmle(self):
        if self.mu_mode in ("known", "per_label"):
            return self._npmle_at(self.known_mu)
        assert self.num_groups == 1, "the reference profiles one gap only"
        result = minimize_scalar(lambda mu: -self._npmle_at(np.array([mu]))[0], bounds=(0.5 + 1e-6, 1.0 - 1e-6),
                                 method="bounded", options={"xatol": 1e-7})
        return self._npmle_at(np.array([result.x]))[0], result.x
