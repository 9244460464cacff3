"""From the EM posterior to a contract: a bonus rule on ``P(eta >= tau | labels)`` is a binary contract.

In comparison mode (docs/model.md) user j's labels say "model A" with probability
``1/2 + eta_j (mu - 1/2)``: exactly the monitor `comparison_monitor(mu)` of the jaxpref
contracts model, with ``K = k_j`` (labels for A out of ``n``) as the score. The EM already turns
``(k_j, n)`` into the posterior ``P(eta_j >= tau | data)``; for a fixed ``n`` and ``mu > 1/2`` that
posterior increases with ``k`` (the likelihood ratio in eta is monotone in k), so the rule
"bonus when P(eta >= tau | data) >= level" pays exactly when ``k >= k*``: a binary contract with
cutoff ``k*``. `posterior_bonus_rule` finds ``k*`` from a fitted prior over eta, and
`jaxpref.contracts.principal.binary_contract_at_cutoff` prices it against the optimal binary and
linear contracts. This bridge is **the jaxpref model**, not a result of Liu, Wang, Ma & Li.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jaxtyping import Array, ArrayLike

from jaxpref.contracts._float64 import float64
from jaxpref.contracts.agent import binomial_log_pmf
from jaxpref.contracts.monitoring import phi_comparison
from jaxpref.core.posterior import user_posterior

__all__ = ["PosteriorBonusRule", "posterior_bonus_rule"]


class PosteriorBonusRule(NamedTuple):
    """The rule "bonus iff P(eta >= threshold | k of n labels for A) >= level", tabulated.

    Attributes:
        prob_attentive: ``(n + 1,)`` posterior ``P(eta >= threshold | k)`` for ``k = 0..n``.
        cutoff: smallest ``k`` that earns the bonus (``n + 1`` when none does).
        monotone: whether the posterior is non-decreasing in ``k`` (then the rule is a cutoff rule).
    """

    prob_attentive: Array
    cutoff: int
    monotone: bool


@float64
def posterior_bonus_rule(
    eta_grid: ArrayLike,
    weights: ArrayLike,
    mu: float,
    num_labels: int,
    *,
    threshold: float = 0.5,
    level: float = 0.9,
) -> PosteriorBonusRule:
    """Tabulates the EM's posterior bonus rule over all label counts of a user with ``n`` labels.

    Args:
        eta_grid: nodes of the fitted P_eta (``AttentivenessEM.params_["eta_grid"]``).
        weights: their probabilities (``params_["weights"]`` for ``two_point`` / ``npmle``).
        mu: the gap (known or fitted).
        num_labels: ``n``, labels per user.
        threshold: ``tau`` in ``P(eta >= tau | data)``, as ``AttentivenessEM(threshold=...)``.
        level: the posterior probability that earns the bonus.

    Returns:
        `PosteriorBonusRule`; the posterior summary is jaxpref's own `user_posterior`.
    """
    eta_grid = np.asarray(eta_grid, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if eta_grid.shape != weights.shape or eta_grid.ndim != 1:
        raise ValueError("eta_grid and weights must be 1-D arrays of the same length (the fitted P_eta)")
    if not 0.5 < mu <= 1.0:
        raise ValueError(f"mu={mu!r} must lie in (1/2, 1]: at mu = 1/2 labels carry no signal about eta")
    if int(num_labels) != num_labels or num_labels < 1:
        raise ValueError(f"num_labels={num_labels!r} must be a positive integer")
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level={level!r} must lie in (0, 1]")
    counts = jnp.arange(num_labels + 1, dtype=jnp.float64)
    prob_a = phi_comparison(jnp.asarray(eta_grid), mu)
    log_joint = jnp.log(jnp.asarray(weights))[None, :] + binomial_log_pmf(
        counts[:, None], num_labels, prob_a[None, :]
    )
    log_resp = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
    prob = user_posterior(log_resp, jnp.asarray(eta_grid), jnp.asarray(threshold)).prob_attentive
    prob_np = np.asarray(prob)
    earning = np.flatnonzero(prob_np >= level)
    cutoff = int(earning[0]) if earning.size else num_labels + 1
    return PosteriorBonusRule(prob, cutoff, bool(np.all(np.diff(prob_np) >= -1e-12)))
