"""Model comparison: model specifications and existing fits by PSIS-LOO / WAIC (NumPyro + arviz),
Bayes factors (bridge sampling), or P_eta families by BIC (EM).

``compare(data, models={name: spec or BayesFit, ...})`` fits each specification once (a spec is
a mapping of `SPEC_KEYS`: family x mu structure, known / prior / free / per group / per-label p,
support fixed or free), takes already fitted `BayesFit`s as they are, and returns a ranked
table, best first. ``compare(data, families=[...])`` is the short form for one spec per family.
The pointwise unit is the user: ``l_j``, the marginal log-likelihood of all of user j's labels
(eta summed out), so leave-one-out means leave one *user* out; every model must see the same
users.

Scores and ties:

- ``loo`` / ``waic``: ``score`` is the elpd (higher is better), ``se`` its standard error,
  ``diff`` = elpd(best) - elpd (>= 0) with ``diff_se`` from the paired per-user
  differences, ``weight`` the stacking weights (`arviz.compare`). ``pareto_k_max`` is the
  largest PSIS Pareto k (LOO is unreliable above 0.7), ``ppc_p_value`` the posterior
  predictive p-value of `jaxpref.bayes.checks.predictive_check` (near 0: the model does not
  reproduce the spread of users' counts; models with one mu are checked per group of any
  model that has groups), ``log_evidence`` / ``log_bf`` (with
  ``evidence=True``) the log marginal likelihood and the log Bayes factor against the first row.
- ``bic``: ``score`` is BIC = p log(num_users) - 2 loglik at the EM estimate (lower is
  better), ``se = 2 sqrt(m var_j l_j)``, ``diff`` = BIC - BIC(best) (>= 0) with
  ``diff_se = 2 sqrt(m var_j(l_j^best - l_j))`` (as in Vuong's test) and
  ``weight = exp(-diff / 2)`` normalised (approximate posterior model probabilities).

A candidate is ``tied_with_best`` when its difference to the best is within noise:
``diff < 2 diff_se``, or below the conventional "small" thresholds, 4 on the elpd scale
(Sivula, Magnusson & Vehtari 2022) and 2 on the BIC scale (Kass & Raftery 1995).

Rank and weight answer different questions (`RANK_VS_WEIGHT`, printed by the CLI).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from jaxpref.bayes import checks
from jaxpref.errors import DataError
from jaxpref.io.data import load_preferences
from jaxpref.core.families import REGISTRY
from jaxpref.options import FAMILIES, FitOptions

__all__ = ["METHODS", "SPEC_KEYS", "RANK_VS_WEIGHT", "Comparison", "compare", "compare_models", "ranking_json"]

METHODS = ("loo", "waic", "bic")
#: What a model specification may set (the rest, sampler settings and columns, is shared).
SPEC_KEYS = ("family", "mu", "mu_prior", "support", "num_grid", "group_column", "p_column")
#: Differences below these are "small" whatever their standard error (elpd, BIC scales).
SMALL_DIFFERENCE = {"loo": 4.0, "waic": 4.0, "bic": 2.0}
#: A posterior predictive p-value below this flags a model that does not reproduce the data.
MISFIT_P_VALUE = 0.05
COLUMNS = ["model", "family", "rank", "score", "se", "diff", "diff_se", "weight", "num_params",
           "tied_with_best", "warning", "pareto_k_max", "ppc_p_value"]
RANK_VS_WEIGHT = (
    "rank orders the models by estimated predictive accuracy (elpd) alone. weight is the stacking weight: "
    "the share of each model in the mixture of all of them that predicts a new user best. They differ when "
    "models predict alike: a model ranked first can get weight ~0 when a lower-ranked model makes the same "
    "predictions and adds something, and weights are not probabilities that a model is true (for that, "
    "read the Bayes factors, log_bf, under the stated priors). A tie (diff < 2 diff_se or < 4) means the "
    "data cannot tell the models apart by prediction."
)


class Comparison(NamedTuple):
    """The full result of `compare_models`.

    Attributes:
        table: the ranked table (see the module docstring).
        fits: the `BayesFit` (loo/waic) or `AttentivenessFit` (bic) of each model, by name.
        problems: sentences naming each diagnostic problem (convergence, Pareto k, misfit) and its fix.
    """

    table: pd.DataFrame
    fits: dict[str, Any]
    problems: list[str]


def _check_families(families: Sequence[str] | str) -> list[str]:
    if isinstance(families, str):
        families = [part.strip() for part in families.split(",") if part.strip()]
    families = list(families)
    unknown = [name for name in families if name not in FAMILIES]
    if unknown:
        raise DataError(f"families={unknown!r} unknown: choose from {', '.join(FAMILIES)}")
    if len(families) < 2 or len(set(families)) != len(families):
        raise DataError(f"families={families!r} must name at least two distinct families to compare")
    return families


def _check_models(models: Mapping[str, Any]) -> dict[str, Any]:
    """Validates the names and spec keys (fits are checked when their users are compared)."""
    from jaxpref.bayes.model import BayesFit

    if not isinstance(models, Mapping) or len(models) < 2:
        raise DataError("models must map at least two names to specifications (dicts) or fitted BayesFits")
    checked = {}
    for name, model in models.items():
        if isinstance(model, BayesFit):
            checked[str(name)] = model
            continue
        if not isinstance(model, Mapping):
            raise DataError(f"models[{name!r}] is a {type(model).__name__}: give a dict of {', '.join(SPEC_KEYS)} "
                            "or a BayesFit from fit_bayes")
        unknown = sorted(set(model) - set(SPEC_KEYS))
        if unknown:
            raise DataError(f"models[{name!r}] has unknown keys {unknown}: a specification may set {', '.join(SPEC_KEYS)}")
        if "family" not in model:
            raise DataError(f"models[{name!r}] needs a family: one of {', '.join(FAMILIES)}")
        checked[str(name)] = dict(model)
    return checked


def _takes_no_support(family: str) -> bool:
    """Whether a known family takes no fixed support (an unknown one is left to FitOptions' error)."""
    return family in REGISTRY and not REGISTRY[family].takes_support


def _check_spec(data: Any, spec: dict[str, Any], columns: dict[str, str]) -> None:
    """Validates a specification against the data before anything is fitted (a bad last model fails at once)."""
    options = FitOptions(family=spec["family"], mu=spec["mu"], mu_prior=spec["mu_prior"], support=spec["support"],
                         num_grid=spec["num_grid"])
    options.resolve_mu(load_preferences(data, **columns, p_column=spec["p_column"], group_column=spec["group_column"]))


def _bic_table(data: Any, models: dict[str, dict[str, Any]], columns: dict[str, Any], progress) -> tuple:
    import jax

    from jaxpref.bayes.model import statistics
    from jaxpref.core.likelihood import marginal_loglik
    from jaxpref.estimator import fit_attentiveness

    scores, pointwise, num_params, fits = {}, {}, {}, {}
    for name, spec in models.items():
        progress(f"fitting {name} by EM")
        fit = fit_attentiveness(data, **{**columns, **spec})
        with jax.enable_x64(fit.dtype == "float64"):
            stats, row_of_user = statistics(fit.data, np.dtype(fit.dtype))
            family_params = fit.state.family
            per_row, _ = marginal_loglik(stats, family_params.eta_grid, family_params.log_weights, fit.state.mu)
        pointwise[name] = np.asarray(per_row, np.float64)[row_of_user]
        scores[name] = fit.bic
        num_params[name] = round((fit.bic + 2.0 * fit.loglik) / math.log(fit.data.num_users))
        fits[name] = fit
    best = min(scores, key=scores.get)
    rows = []
    for name, spec in models.items():
        num_users = pointwise[name].shape[0]
        difference = pointwise[best] - pointwise[name]
        rows.append(
            {
                "model": name,
                "family": spec["family"],
                "score": scores[name],
                "se": 2.0 * math.sqrt(num_users * np.var(pointwise[name])),
                "diff": scores[name] - scores[best],
                "diff_se": 2.0 * math.sqrt(num_users * np.var(difference)),
                "num_params": num_params[name],
                "warning": False,
            }
        )
    table = pd.DataFrame(rows).sort_values("diff", kind="stable").reset_index(drop=True)
    relative = np.exp(-0.5 * table["diff"].to_numpy())
    table["weight"] = relative / relative.sum()
    return table, fits, []


def _same_users(fits: dict[str, Any]) -> None:
    """LOO differences pair users: every fit must hold the same users in the same order."""
    names = list(fits)
    reference = fits[names[0]].data.user_ids
    for name in names[1:]:
        ids = fits[name].data.user_ids
        if ids.shape != reference.shape or not np.array_equal(ids, reference):
            raise DataError(f"models {names[0]!r} and {name!r} were fitted to different users: "
                            "compare fits of the same data (same users, same user_column)")


def _predictive_check(fit: Any, group_column: str | None, seed: int):
    """The fit's posterior predictive check, split by ``group_column`` when the model has one mu for all.

    A model without groups replicates each user's labels in every group under its one mu; only
    split by group can the check see that the groups' gaps differ (pooled, the mixture of two
    gaps looks like one).
    """
    import jax

    from jaxpref.bayes.model import design, group_names, observed_counts, replicate_counts

    data = fit.data
    if group_column is None or data.group_column == group_column or data.p is not None or (
        fit.mu_known.shape[0] != 1 or group_column not in data.frame.columns
    ):
        return checks.predictive_check(fit.inference_data)
    split = load_preferences(data.frame, user_column=data.user_column, label_column=data.label_column,
                             group_column=group_column)
    dtype = np.dtype(fit.dtype)
    with jax.enable_x64(fit.dtype == "float64"):
        replicated = replicate_counts(seed, fit.config, fit.samples, design(split, dtype), fit.mu_known.astype(dtype))
    observed_k, n = observed_counts(split)
    return checks.count_check(observed_k, n, replicated.reshape((-1,) + replicated.shape[2:]),
                              [str(name) for name in group_names(split)])


def _information_table(data, models, method, columns, sampler, evidence, progress) -> tuple:
    import warnings

    import arviz as az

    from jaxpref.bayes.model import fit_bayes

    from jaxpref.bayes.model import PARAMETER_SITES

    fits, seed = {}, sampler["seed"]
    for name, model in models.items():
        if isinstance(model, dict):
            progress(f"fitting {name} by NUTS ({model['family']})")
            with warnings.catch_warnings():
                # Reported below under the model's name.
                warnings.simplefilter("ignore", checks.ConvergenceWarning)
                fits[name] = fit_bayes(data, **{**columns, **sampler, **model})
        else:
            fits[name] = model
    _same_users(fits)
    progress(f"PSIS-LOO, WAIC and predictive checks of {len(fits)} models")
    problems = []
    for name, fit in fits.items():
        if fit.method == "nuts":
            parameters = [site for site in PARAMETER_SITES if site in fit.inference_data.posterior]
            problems += [f"{name}: {problem}" for problem in checks.convergence_problems(fit.inference_data, parameters)]
    with warnings.catch_warnings():
        # arviz warns about high Pareto k / WAIC variance; that is reported in "warning" and "problems".
        warnings.simplefilter("ignore", UserWarning)
        table = az.compare({name: fit.inference_data for name, fit in fits.items()}, ic=method, scale="log")
        pareto_k = {}
        for name, fit in fits.items():
            if method == "loo":
                pareto_k[name] = np.asarray(az.loo(fit.inference_data, pointwise=True).pareto_k)
                problems += checks.pareto_k_problems(pareto_k[name], name, fit.data.user_ids)
    check_groups = next((fit.data.group_column for fit in fits.values() if fit.data.group_column), None)
    p_values = {name: float(_predictive_check(fit, check_groups, seed).table["p_value"].iloc[-1])
                for name, fit in fits.items()}
    score_column, penalty_column = f"elpd_{method}", f"p_{method}"
    names = table.index.to_list()
    result = pd.DataFrame(
        {
            "model": names,
            "family": [fits[name].family for name in names],
            "score": table[score_column].to_numpy(float),
            "se": table["se"].to_numpy(float),
            "diff": table["elpd_diff"].to_numpy(float),
            "diff_se": table["dse"].to_numpy(float),
            "weight": table["weight"].to_numpy(float),
            "num_params": table[penalty_column].to_numpy(float),
            "warning": table["warning"].to_numpy(bool),
            "pareto_k_max": [float(pareto_k[name].max()) if name in pareto_k else math.nan for name in names],
            "ppc_p_value": [p_values[name] for name in names],
        }
    )
    for name in names:
        if p_values[name] < MISFIT_P_VALUE:
            problems.append(
                f"{name}: posterior predictive p-value {p_values[name]:.3f} < {MISFIT_P_VALUE}: the model does not "
                "reproduce how users' counts spread (per group: checks.predictive_check); whatever its rank, "
                "try the structure it lacks (per-group mu, another family)"
            )
    if evidence:
        from jaxpref.bayes.evidence import log_evidence

        progress("marginal likelihoods by bridge sampling")
        values = {name: log_evidence(fits[name]) for name in names}
        result["log_evidence"] = [values[name].log_evidence for name in names]
        result["log_evidence_sd"] = [values[name].mc_sd for name in names]
        result["log_bf"] = result["log_evidence"] - result.loc[0, "log_evidence"]
    return result, fits, problems


def compare_models(
    data: Any,
    models: Mapping[str, Any] | None = None,
    method: str = "loo",
    *,
    families: Sequence[str] | str | None = None,
    evidence: bool = False,
    mu: Any = None,
    mu_prior: tuple[float, float] | None = None,
    support: tuple[float, float] | None = None,
    num_grid: int = 64,
    seed: int = 0,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    user_column: str = "user",
    label_column: str = "label",
    p_column: str | None = None,
    group_column: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Fits each model specification once (or takes existing fits) and ranks them.

    Args:
        data: labels (see `jaxpref.io.data.load_preferences`); the users every model must share.
        models: ``{name: spec}`` where a spec is a dict of `SPEC_KEYS` (e.g.
            ``{"family": "beta", "group_column": "topic"}``; keys it omits take the shared
            options below) or an already fitted `BayesFit` (loo/waic only).
        method: ``loo`` (PSIS-LOO over users), ``waic`` (both NumPyro NUTS) or ``bic`` (EM).
        families: instead of ``models``, one spec per family with the shared options.
        evidence: also compute log marginal likelihoods and Bayes factors (loo/waic).
        mu, mu_prior, support, num_grid, p_column, group_column: shared defaults of the specs.
        seed, num_warmup, num_samples, num_chains: NUTS settings (loo/waic); seed of EM restarts.
        user_column, label_column: column names.
        progress: called with a line before each step (the CLI shows it).

    Returns:
        A `Comparison`.
    """
    if method not in METHODS:
        raise DataError(f"method={method!r} must be one of {', '.join(METHODS)}")
    if (models is None) == (families is None):
        raise DataError("pass models={name: spec or fit, ...} or families=[...], not both and not neither")
    shared = {"mu": mu, "mu_prior": mu_prior, "support": support, "num_grid": num_grid,
              "group_column": group_column, "p_column": p_column}
    if families is not None:
        models = {family: {"family": family} for family in _check_families(families)}
    models = _check_models(models)
    # The shared support goes to the families that take one; a spec that sets one for another family gets
    # FitOptions' error.
    specs = {
        name: {**shared, **({"support": None} if _takes_no_support(spec["family"]) else {}), **spec}
        if isinstance(spec, dict) else spec
        for name, spec in models.items()
    }
    columns = {"user_column": user_column, "label_column": label_column}
    progress = progress or (lambda line: None)
    for spec in specs.values():
        if isinstance(spec, dict):
            _check_spec(data, spec, columns)
    if method == "bic":
        if not all(isinstance(spec, dict) for spec in specs.values()):
            raise DataError("method='bic' refits by EM: give specifications, not BayesFits (or use method='loo')")
        table, fits, problems = _bic_table(data, specs, {**columns, "seed": seed}, progress)
    else:
        sampler = {"num_warmup": num_warmup, "num_samples": num_samples, "num_chains": num_chains, "seed": seed}
        table, fits, problems = _information_table(data, specs, method, columns, sampler, evidence, progress)
    diff_se = np.nan_to_num(table["diff_se"].to_numpy(float))
    within_noise = (table["diff"].to_numpy() < SMALL_DIFFERENCE[method]) | (table["diff"].to_numpy() < 2.0 * diff_se)
    within_noise[0] = False
    table["tied_with_best"] = within_noise
    table["rank"] = np.arange(len(table))
    for column in ("pareto_k_max", "ppc_p_value"):
        if column not in table:
            table[column] = math.nan
    extra = [column for column in ("log_evidence", "log_evidence_sd", "log_bf") if column in table]
    table = table[COLUMNS + extra]
    table.attrs.update(method=method, scale="bic" if method == "bic" else "elpd", tie=bool(within_noise.any()),
                       explanation=RANK_VS_WEIGHT, problems=list(problems))
    checks.warn(problems, "compare")
    return Comparison(table, fits, problems)


def compare(
    data: Any,
    families: Sequence[str] | str | None = None,
    method: str = "loo",
    *,
    models: Mapping[str, Any] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Ranks model specifications, existing fits, or P_eta families; the table of `compare_models`.

    Args:
        data: labels (see `jaxpref.io.data.load_preferences`).
        families: candidates (a list, or a comma-separated string); all of `FAMILIES` when
            neither ``families`` nor ``models`` is given.
        method: ``loo``, ``waic`` or ``bic``.
        models: ``{name: spec or BayesFit}`` (see `compare_models`).
        **options: the shared options of `compare_models`.

    Returns:
        DataFrame, best first, with columns ``model, family, rank, score, se, diff, diff_se,
        weight, num_params, tied_with_best, warning, pareto_k_max, ppc_p_value`` (plus
        ``log_evidence, log_evidence_sd, log_bf`` with ``evidence=True``; see the module
        docstring; ``num_params`` is p_loo / p_waic for loo/waic, the parameter count for bic;
        ``warning`` flags unreliable PSIS/WAIC estimates). ``attrs`` hold ``method``, ``scale``
        (``elpd``: higher is better; ``bic``: lower is better), ``tie`` (whether any
        candidate is tied with the best), ``explanation`` (rank vs weight) and ``problems``.

    Example:
        >>> table = compare(frame, ["point", "two_point", "beta"], method="bic")  # doctest: +SKIP
        >>> table = compare(frame, models={"one": {"family": "beta"},             # doctest: +SKIP
        ...                                "topic": {"family": "beta", "group_column": "topic"}})
    """
    if models is None and families is None:
        families = FAMILIES
    return compare_models(data, models, method, families=families, **options).table


def ranking_json(table: pd.DataFrame) -> dict[str, Any]:
    """The ``jaxpref compare --json`` object: ``{"ranking": [...], "method", "scale", "tie", "explanation",
    "problems"}``."""

    def clean(value):
        if isinstance(value, (np.bool_, bool)):
            return bool(value)
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return None if not math.isfinite(value) else float(value)
        return value

    ranking = [{key: clean(value) for key, value in row.items()} for row in table.to_dict(orient="records")]
    return {"ranking": ranking, "method": table.attrs["method"], "scale": table.attrs["scale"],
            "tie": table.attrs["tie"], "explanation": table.attrs.get("explanation", RANK_VS_WEIGHT),
            "problems": table.attrs.get("problems", [])}
