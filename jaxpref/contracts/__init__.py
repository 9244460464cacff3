"""Monitoring annotators and paying them: incentive contracts for preference labelling.

The questions and the [P] claims (self-consistency vs expert monitoring, their sample
complexity, gaps to the first best Θ(1/sqrt(I n log n)) for binary and Θ(1/(I n)) for linear
contracts, linear contracts rate-optimal, exp(-Θ(n)) with discrete actions) are from Liu, Wang,
Ma & Li, "How Humans Help LLMs: Assessing and Incentivizing Human Preference Annotators"
(arXiv 2502.06387). The formulas are **the jaxpref model** (docs/contracts.md), our reconstruction:

- `monitoring`: monitors as ``phi(a) = 1/2 + scale a^power``, Fisher information by autodiff,
  simulation, the estimator of the action, sample sizes, SC vs EX;
- `agent`: the `Economy` pytree, expected utility of a wage schedule, global best response;
- `principal`: first best, optimal binary and linear contracts (global IC, IR, limited
  liability), second best, gap curves and rate fits;
- `general`: the optimal contract of any form (Holmström–Mirrlees, first-order approach);
- `bridge`: the EM's posterior bonus rule as a binary contract;
- `cli`: the ``jaxpref contracts`` typer sub-app.

Every public function computes in float64 (inside ``jax.enable_x64``) and returns NumPy arrays.
"""

from jaxpref.contracts.agent import Economy, best_response, economy, expected_utility
from jaxpref.contracts.bridge import PosteriorBonusRule, posterior_bonus_rule
from jaxpref.contracts.general import GeneralContract, general_contract
from jaxpref.contracts.monitoring import (
    Monitor,
    comparison_monitor,
    crossover_action,
    estimate_action,
    ex_monitor,
    monitor_fisher,
    sample_complexity,
    sc_beats_ex,
    sc_monitor,
)
from jaxpref.contracts.principal import (
    BinaryContract,
    LinearContract,
    SecondBest,
    binary_contract,
    binary_contract_at_cutoff,
    binary_contract_two_actions,
    first_best,
    fit_rate,
    gap_curve,
    linear_contract,
    second_best,
)

__all__ = [
    "BinaryContract",
    "Economy",
    "GeneralContract",
    "LinearContract",
    "Monitor",
    "PosteriorBonusRule",
    "SecondBest",
    "best_response",
    "binary_contract",
    "binary_contract_at_cutoff",
    "binary_contract_two_actions",
    "comparison_monitor",
    "crossover_action",
    "economy",
    "estimate_action",
    "ex_monitor",
    "expected_utility",
    "first_best",
    "fit_rate",
    "gap_curve",
    "general_contract",
    "linear_contract",
    "monitor_fisher",
    "posterior_bonus_rule",
    "sample_complexity",
    "sc_beats_ex",
    "sc_monitor",
    "second_best",
]
